"""The default IPAM: Docker's predefined pools, lowest free first, and addresses within a pool.

Local networks take the lowest free pool of Docker's 31 local defaults (172.17-19/16, the /16s
of 172.20/14, 172.24/14 and 172.28/14, then the /20s of 192.168/16), skipping pools that
overlap another pool of the same address space or a network the caller asks to avoid (the host
namespace's on-link routes and nameservers, see host.py). Global networks take /24s of
10.0.0.0/8. Inside a pool the network and broadcast addresses are reserved and allocation is
lowest free, so the gateway (requested first) gets the first address.

A dual-stack network's IPv6 addresses are not pooled: an endpoint's IPv6 address has the host
number of its IPv4 one in the network's IPv6 subnet (ipv6_companion), and so has the gateway.
Both families are handed out lowest free from the same start, so this gives the addresses
Docker 28's sequential IPv6 allocation gives a network whose IPv4 and IPv6 members are the same
(gateway ::1, first container ::2); it differs only for fixed IPv6 addresses and gateways,
which netdiag does not take.

Every request is one store transaction: choosing and recording happen under the write lock,
so concurrent processes never get the same pool or address. Error wording follows Docker's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import replace
from ipaddress import IPv4Network, IPv6Network

from netdiag.errors import Conflict, UsageError
from netdiag.store import Store
from netdiag.store.records import Endpoint, Pool

LOCAL_DEFAULTS = (("172.17.0.0/16", 16), ("172.18.0.0/16", 16), ("172.19.0.0/16", 16),
                  ("172.20.0.0/14", 16), ("172.24.0.0/14", 16), ("172.28.0.0/14", 16),
                  ("192.168.0.0/16", 20))
GLOBAL_DEFAULTS = (("10.0.0.0/8", 24),)
GLOBAL_SPACE = "global"
EXHAUSTED = "all predefined address pools have been fully subnetted"
# An endpoint's datum on a dual-stack network (bridge, macvlan, overlay): its IPv6 address
# (CIDR), which the drivers configure and the lab's DNS answers AAAA with.
IPV6_ADDRESS = "ipv6_address"


def local_space(host: str) -> str:
    """Each host namespace is its own Docker daemon, with its own local address space."""
    return f"local:{host}"


def predefined(space: str) -> Iterator[IPv4Network]:
    """The default pools of an address space, in the order they are handed out."""
    for base, size in GLOBAL_DEFAULTS if space == GLOBAL_SPACE else LOCAL_DEFAULTS:
        yield from ipaddress.ip_network(base).subnets(new_prefix=size)


def parse_network(text: str, what: str = "subnet") -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}") from None
    if net.version != 4:
        raise UsageError(f"{what} {text}: only IPv4 is supported")
    if str(net) != text and "/" in text:
        raise UsageError(f"invalid {what} {text!r}: did you mean {net}?")
    return net


def parse_network6(text: str, what: str = "IPv6 subnet") -> IPv6Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}") from None
    if net.version != 6:
        raise UsageError(f"{what} {text} is not IPv6")
    return net


def ipv6_companion(subnet4: str, address4: str, subnet6: str) -> str:
    """The IPv6 address (CIDR) of the endpoint that has `address4` in `subnet4`: the same host
    number in `subnet6`, which must have at least as many host bits."""
    net4, net6 = ipaddress.ip_network(subnet4), parse_network6(subnet6)
    if net6.max_prefixlen - net6.prefixlen < net4.max_prefixlen - net4.prefixlen:
        raise UsageError(f"IPv6 subnet {subnet6} is smaller than the IPv4 subnet {subnet4}: "
                         "it needs at least as many host addresses")
    host = int(ipaddress.ip_address(address4)) - int(net4.network_address)
    return f"{net6.network_address + host}/{net6.prefixlen}"


def with_ipv6(endpoint: Endpoint, subnet4: str, subnet6: str) -> Endpoint:
    """The endpoint with its IPv6 address as a datum when the network is dual stack
    (`subnet6`), as it is otherwise."""
    if not subnet6:
        return endpoint
    address6 = ipv6_companion(subnet4, endpoint.ip, subnet6)
    return replace(endpoint, data=(*endpoint.data, (IPV6_ADDRESS, address6)))


def usable_range(pool: Pool) -> tuple[int, int]:
    """First and last allocatable address (as ints): not the subnet's network or broadcast."""
    subnet = ipaddress.ip_network(pool.subnet)
    first, last = int(subnet.network_address), int(subnet.broadcast_address)
    if subnet.prefixlen < 31:
        first, last = first + 1, last - 1
    if pool.ip_range:
        sub = ipaddress.ip_network(pool.ip_range)
        first = max(first, int(sub.network_address))
        last = min(last, int(sub.broadcast_address))
    return first, last


class DefaultIpam:
    """The embedded IPAM (libnetwork's "default"), keeping its state in the store."""

    def __init__(self, store: Store):
        self.store = store

    def request_pool(self, space: str, subnet: str = "", ip_range: str = "",
                     avoid: Sequence[str] = ()) -> Pool:
        if ip_range and not subnet:
            raise UsageError("ip-range needs an explicit subnet")
        if subnet:
            net = parse_network(subnet)
            if ip_range and not parse_network(ip_range, "ip-range").subnet_of(net):
                raise UsageError(f"ip-range {ip_range} is not inside subnet {subnet}")
            pool = Pool(id=_pool_id(space, str(net), ip_range), space=space, subnet=str(net),
                        ip_range=ip_range)
            with self.store.transaction() as tx:
                tx.add_pool(pool)
            return pool
        avoided = [ipaddress.ip_network(a, strict=False) for a in avoid]
        with self.store.transaction() as tx:
            taken = [ipaddress.ip_network(p.subnet) for p in tx.pools(space)]
            for candidate in predefined(space):
                if any(candidate.overlaps(other) for other in taken + avoided):
                    continue
                pool = Pool(id=_pool_id(space, str(candidate)), space=space,
                            subnet=str(candidate))
                tx.add_pool(pool)
                return pool
        raise Conflict(EXHAUSTED)

    def release_pool(self, pool_id: str) -> None:
        with self.store.transaction() as tx:
            tx.delete_pool(pool_id)

    def request_address(self, pool_id: str, address: str = "", owner: str = "") -> str:
        with self.store.transaction() as tx:
            pool = tx.pool(pool_id)
            if not address:
                first, last = usable_range(pool)
                return str(ipaddress.ip_address(tx.take_address(pool_id, first, last, owner)))
            wanted = _static_address(pool, address)
            tx.reserve_address(pool_id, wanted, owner)
            return address

    def release_address(self, pool_id: str, address: str) -> None:
        with self.store.transaction() as tx:
            tx.release_address(pool_id, int(ipaddress.ip_address(address)))


def _pool_id(space: str, subnet: str, ip_range: str = "") -> str:
    return f"{space}/{subnet}" + (f"/{ip_range}" if ip_range else "")


def _static_address(pool: Pool, address: str) -> int:
    """A requested address: inside the subnet, and neither its network nor broadcast address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"invalid address {address!r}") from None
    subnet = ipaddress.ip_network(pool.subnet)
    if ip not in subnet:
        raise UsageError(f"address {address} is not in subnet {pool.subnet}")
    if subnet.prefixlen < 31 and ip in (subnet.network_address, subnet.broadcast_address):
        raise UsageError(f"address {address} is the network or broadcast address of "
                         f"{pool.subnet}")
    return int(ip)
