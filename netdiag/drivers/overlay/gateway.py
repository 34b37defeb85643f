"""The gateway bridge: each host's `docker_gwbridge`, through which overlay containers reach out.

Like Docker, it is created on the first overlay endpoint of a host and then kept; its subnet is
the lowest free local pool of that host (usually 172.18.0.0/16), its address the pool's first,
and traffic leaving through anything else is masqueraded. The pool is found again from the
bridge's address, so nothing beyond IPAM's own records needs storing.

Published ports (`-p` on an overlay network, not the swarm routing mesh) go through this bridge
as in Docker: the host's port is DNATed to the container's gateway-bridge address (eth1) by the
bridge driver's published-port rules (drivers.bridge.ports) with this bridge's name, after the
host-wide jumps into the DOCKER chains that a Docker host has (`port_prerequisites`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from netdiag import netns
from netdiag.drivers.common import device, firewall, iptables, state
from netdiag.drivers.common.iptables import FwRule, RulePlacement
from netdiag.drivers.ipam import DefaultIpam, local_space
from netdiag.drivers.ipam.host import networks_to_avoid
from netdiag.errors import DriverError
from netdiag.rtnl_write import Rtnl, RtnlError
from netdiag.store.records import Endpoint, Pool

NAME = "docker_gwbridge"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
PORT_CHAINS = (("nat", firewall.DOCKER), ("filter", firewall.DOCKER))


@dataclass(frozen=True, slots=True)
class GatewayBridge:
    pool: Pool
    gateway: str  # the bridge's address, the containers' default gateway

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.pool.subnet).prefixlen


def _existing(host: str) -> tuple[str, str] | None:
    """(subnet, address) of the host's gateway bridge, if it exists."""
    for address in state.addresses_of(state.read(host, state.LINKS_AND_ADDRESSES), NAME):
        interface = ipaddress.ip_interface(address.cidr)
        return str(interface.network), str(interface.ip)
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
    subnet = ipaddress.ip_network(bridge.pool.subnet)
    with netns.entered(host), Rtnl() as rt:
        index = device.create_bridge(rt, NAME, 1500)
        try:
            rt.add_address(index, bridge.gateway, subnet.prefixlen,
                           str(subnet.broadcast_address))
        except RtnlError as exc:
            raise DriverError(f"cannot address {NAME} on {host}: {exc}") from None
    # Docker's rules for docker_gwbridge are a bridge network's with icc off: masquerading,
    # FORWARD's accepts out of it and for the answers back, the isolation stages. Without the
    # accepts, a host whose FORWARD policy is DROP (a bridge network made it so) drops what
    # overlay containers send out.
    rules = firewall.network_rules(NAME, bridge.pool.subnet, icc=False, masquerade=True,
                                   internal=False, hairpin=False) + firewall.jump_rules()
    with netns.entered(host):
        iptables.apply_add(firewall.CHAINS, rules)
        IP_FORWARD.write_text("1\n")


# --- published ports ----------------------------------------------------------------------


def port_prerequisites() -> list[FwRule]:
    """What published ports need on the host besides their own rules, kept once written:
    nat PREROUTING/OUTPUT → DOCKER (the DNATs) and FORWARD -o docker_gwbridge → DOCKER (the
    accepts), as Docker writes them for docker_gwbridge."""
    return firewall.host_rules(hairpin=False) + [
        FwRule("filter", "FORWARD", f"-o {NAME} -j {firewall.DOCKER}", RulePlacement.INSERT)]


def address_of(endpoint: Endpoint) -> str:
    """The endpoint's address on the gateway bridge (its eth1); "" on internal networks."""
    return endpoint.datum("gw_address").split("/")[0]


def port_rules(endpoint: Endpoint) -> list[FwRule]:
    """The DNAT, accept and hairpin rules of the endpoint's published ports."""
    if not endpoint.ports or not address_of(endpoint):
        return []
    return firewall.port_rules(NAME, address_of(endpoint), endpoint.ports, hairpin=False)
