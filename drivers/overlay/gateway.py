"""The gateway bridge: each host's `docker_gwbridge`, through which overlay containers reach out.

Like Docker, it is created on the first overlay endpoint of a host and then kept; its subnet is
the lowest free local pool of that host (usually 172.18.0.0/16), its address the pool's first,
and traffic leaving through anything else is masqueraded. The pool is found again from the
bridge's address, so nothing beyond IPAM's own records needs storing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from netdiag import netns
from netdiag.drivers.api import Pool
from netdiag.drivers.ipam import DefaultIpam, local_space
from netdiag.drivers.ipam.host import networks_to_avoid
from netdiag.drivers.overlay.dataplane import index_of, netlink_in
from netdiag.errors import CollectError

NAME = "docker_gwbridge"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


@dataclass(frozen=True, slots=True)
class GatewayBridge:
    pool: Pool
    gateway: str  # the bridge's address, the containers' default gateway

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.pool.subnet).prefixlen


def _existing(host: str) -> tuple[str, str] | None:
    """(subnet, address) of the host's gateway bridge, if it exists."""
    with netlink_in(host) as ipr:
        found = ipr.link_lookup(ifname=NAME)
        if not found:
            return None
        for addr in ipr.get_addr(family=2, index=found[0]):
            iface = ipaddress.ip_interface(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")
            return str(iface.network), str(iface.ip)
    return None


def ensure(ipam: DefaultIpam, host: str) -> GatewayBridge:
    """The host's gateway bridge, created (with its pool, address and NAT) if missing."""
    known = _existing(host)
    if known:
        subnet, address = known
        for pool in _pools(ipam, host):
            if pool.subnet == subnet:
                return GatewayBridge(pool, address)
        pool = ipam.request_pool(local_space(host), subnet)  # a bridge the store forgot: adopt
        ipam.request_address(pool.id, address, owner=NAME)
        return GatewayBridge(pool, address)
    pool = ipam.request_pool(local_space(host), avoid=networks_to_avoid(host))
    gateway = ipam.request_address(pool.id, owner=NAME)
    bridge = GatewayBridge(pool, gateway)
    _create(host, bridge)
    return bridge


def _pools(ipam: DefaultIpam, host: str) -> list[Pool]:
    with ipam.store.transaction(write=False) as tx:
        return tx.pools(local_space(host))


def _create(host: str, bridge: GatewayBridge) -> None:
    with netlink_in(host) as ipr:
        ipr.link("add", ifname=NAME, kind="bridge")
        index = index_of(ipr, NAME)
        ipr.addr("add", index=index, address=bridge.gateway, prefixlen=bridge.prefixlen)
        ipr.link("set", index=index, state="up")
    rule = ["POSTROUTING", "-s", bridge.pool.subnet, "!", "-o", NAME, "-j", "MASQUERADE"]
    with netns.entered(host):
        try:
            netns.run_helper(["iptables", "-t", "nat", "-C", *rule])
        except CollectError:  # -C fails when the rule is missing
            netns.run_helper(["iptables", "-t", "nat", "-A", *rule])
        IP_FORWARD.write_text("1\n")
