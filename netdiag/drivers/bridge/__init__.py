"""The bridge driver: a Linux bridge per network in a host namespace, a veth per endpoint.

Like Docker's: the bridge is `br-` + 12 hex of the network id (or the name option) and holds
the gateway address; each endpoint is a veth pair whose host side (`veth` + 7 hex) is a port of
the bridge and whose other side becomes eth0, eth1... in the sandbox, with the network MTU on
both ends, the address, and a default route via the gateway unless the network is internal.
The firewall is Docker's classic layout (firewall.py); published ports are DNAT rules.
A dual-stack network (option `subnet6`) gets the same in IPv6, as Docker 28 builds an `--ipv6`
network: the IPv6 gateway on the bridge, each endpoint an IPv6 address (recorded in its data as
`ipv6_address`) and default route, IPv6 forwarding on in the host namespace, and the firewall
rules mirrored in ip6tables (MASQUERADE included: NAT66 for the ULA subnet; a port published
on every address DNATed to the endpoint's IPv6 address too).

Each operation is a list of named steps, one module per concern (device, addresses,
forwarding, firewall, verify), run with rollback. Netlink sockets are opened inside the
namespace by entering it in the calling thread (netns.entered): under a millisecond, against
about 10 ms for pyroute2's IPRoute(netns=...), which forks. The requests that build devices,
addresses and routes are packed by netdiag/rtnl_write.py (a plain socket) rather than
pyroute2, whose per-request cost dominated joining an endpoint; reading (verify) uses the
snapshot's collectors (drivers/common/state.py).

Where netdiag differs from Docker: no userland proxy process (published ports are DNAT only,
so 127.0.0.1:PORT on the host namespace does not answer unless the network has `hairpin`);
`leave` deletes the veth inside the sandbox instead of moving it back to the host first.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

from netdiag.drivers.api import Capability, SetupStep, run_steps
from netdiag.drivers.bridge import addresses, forwarding, verify
from netdiag.drivers.bridge.options import BridgeOptions, parse
from netdiag.drivers.common import device, firewall, iptables
from netdiag.drivers.common import ports as published
from netdiag.drivers.ipam import IPV6_ADDRESS, ipv6_companion, with_ipv6
from netdiag.errors import Conflict
from netdiag.findings.finding import Finding
from netdiag.model.docker import docker_mac
from netdiag.netns import entered
from netdiag.rtnl_write import Rtnl
from netdiag.store import Store
from netdiag.store.records import Endpoint, Network, Scope


class BridgeDriver:
    name = "bridge"
    capability = Capability(Scope.LOCAL)
    uses_ipam = True

    def __init__(self, store: Store):
        self.store = store

    def parse_options(self, options: Mapping[str, str]) -> BridgeOptions:
        return parse(options)

    # networks -----------------------------------------------------------------------------

    def create_network(self, network: Network) -> Network:
        opts = options_of(network)
        bridge = bridge_name(network)
        families = _families(opts)
        gateways = _gateways(network, opts)  # a subnet6 too small is refused before building
        with entered(network.host), Rtnl() as rt:
            drop_policy = {family: not forwarding.ip_forward_enabled(family)
                           for family in families}

            def firewall_up() -> None:
                for family in families:
                    policies = [("filter", "FORWARD", "DROP")] if drop_policy[family] else []
                    rules = firewall.host_rules(opts.hairpin, family) + [
                        rule for rule in _network_rules(network, opts) if rule.family == family
                    ] + firewall.jump_rules(family)
                    iptables.apply_add(firewall.CHAINS, rules, policies, family)

            def forwarding_up() -> None:
                for family in families:
                    forwarding.enable_ip_forward(family)
                if opts.hairpin:
                    forwarding.enable_route_localnet(bridge)

            def addresses_up() -> None:
                index = device.index_of(rt, bridge)
                for address in gateways:
                    ip, prefixlen = address.split("/")
                    addresses.add_address(rt, index, ip, int(prefixlen))

            run_steps(f"bridge network {network.name}", [
                SetupStep("device", lambda: device.create_bridge(rt, bridge, opts.mtu),
                     lambda: device.delete_link(rt, bridge)),
                SetupStep("addresses", addresses_up),
                SetupStep("forwarding", forwarding_up),
                SetupStep("firewall", firewall_up,
                     lambda: iptables.apply_delete(_network_rules(network, opts))),
                SetupStep("verify",
                          lambda: verify.bridge_ready(network.host, bridge, gateways)),
            ])
        return network

    def delete_network(self, network: Network) -> None:
        opts = options_of(network)
        with entered(network.host), Rtnl() as rt:
            iptables.apply_delete(_network_rules(network, opts))
            device.delete_link(rt, bridge_name(network))

    # endpoints ----------------------------------------------------------------------------

    def create_endpoint(self, network: Network, endpoint: Endpoint) -> Endpoint:
        # Names and MAC only: the veth pair is made at join, when the sandbox is known, so
        # that its container side is born there (one netlink request instead of four).
        endpoint = replace(endpoint, host_ifname="veth" + endpoint.id[:7],
                           mac=docker_mac(endpoint.ip))
        return with_ipv6(endpoint, network.subnet, options_of(network).subnet6)

    def delete_endpoint(self, network: Network, endpoint: Endpoint) -> None:
        with entered(network.host), Rtnl() as rt:
            device.delete_link(rt, endpoint.host_ifname)

    def join(self, network: Network, endpoint: Endpoint, sandbox: str) -> Endpoint:
        opts = options_of(network)
        ifname = endpoint.ifname or "eth0"
        prefixlen = int(endpoint.address.split("/")[1])

        def plug() -> None:
            self._plug(network, endpoint, ifname, sandbox)

        def unplug() -> None:
            with entered(network.host), Rtnl() as rt:
                device.delete_link(rt, endpoint.host_ifname)

        def configure() -> None:
            with entered(sandbox), Rtnl() as rt:
                device.loopback_up(rt)  # Docker's sandbox does this for every container
                index = device.up(rt, ifname)
                addresses.add_address(rt, index, endpoint.ip, prefixlen)
                address6 = endpoint.datum(IPV6_ADDRESS)
                if address6:
                    ip6, prefixlen6 = address6.split("/")
                    addresses.add_address(rt, index, ip6, int(prefixlen6))
                if not opts.internal:
                    _add_gateway_route(rt, index, network.gateway)
                    if address6:
                        _add_gateway_route(rt, index, _gateway6(network, opts))

        run_steps(f"join {endpoint.name}", [SetupStep("device", plug, unplug),
                                            SetupStep("addresses", configure)])
        return replace(endpoint, sandbox=sandbox, ifname=ifname)

    def hand_over(self, network: Network, endpoint: Endpoint, name: str) -> Endpoint:
        """The join a container engine finishes itself (Docker's remote drivers): the veth
        pair on the bridge, its container side left in the host namespace as `name` for the
        engine to move into the sandbox, name and address."""
        self._plug(network, endpoint, name, network.host)
        return endpoint

    def take_back(self, network: Network, endpoint: Endpoint) -> None:
        pass  # the pair stays until the endpoint is deleted

    def _plug(self, network: Network, endpoint: Endpoint, ifname: str, sandbox: str) -> None:
        opts = options_of(network)
        with entered(network.host), Rtnl() as rt:
            bridge = device.index_of(rt, bridge_name(network))
            device.create_veth(rt, endpoint.host_ifname, ifname, sandbox, mtu=opts.mtu,
                               bridge=bridge, mac=endpoint.mac)
            if opts.hairpin:
                device.set_hairpin(rt, endpoint.host_ifname)

    def leave(self, network: Network, endpoint: Endpoint) -> Endpoint:
        if endpoint.sandbox and os.path.exists(endpoint.sandbox):
            with entered(endpoint.sandbox), Rtnl() as rt:
                device.delete_link(rt, endpoint.ifname, only_mac=endpoint.mac)
        return replace(endpoint, sandbox="")

    # published ports (optional capability) ------------------------------------------------

    def program_external_connectivity(self, network: Network, endpoint: Endpoint) -> Endpoint:
        if not endpoint.ports:
            return endpoint
        opts = options_of(network)
        if opts.internal:
            raise Conflict(f"network {network.name} is internal: it cannot publish ports")
        ports = published.publish(self.store, network.host, endpoint.id, bridge_name(network),
                                  endpoint.ip, endpoint.ports,
                                  default_host_ip=opts.host_binding_ipv4, hairpin=opts.hairpin,
                                  ip6=_ip6(endpoint))
        return replace(endpoint, ports=ports)

    def revoke_external_connectivity(self, network: Network, endpoint: Endpoint) -> None:
        if not endpoint.ports:
            return
        published.unpublish(self.store, network.host, endpoint.id, bridge_name(network),
                            endpoint.ip, endpoint.ports, hairpin=options_of(network).hairpin,
                            ip6=_ip6(endpoint))

    # check --------------------------------------------------------------------------------

    def check(self, network: Network, endpoints: Sequence[Endpoint]) -> Iterator[Finding]:
        opts = options_of(network)
        rules = _network_rules(network, opts) + [
            rule for family in _families(opts) for rule in firewall.jump_rules(family)] + [
            rule for ep in endpoints
            for rule in firewall.port_rules(bridge_name(network), ep.ip, ep.ports,
                                            hairpin=opts.hairpin, ip6=_ip6(ep))]
        return verify.check(network, endpoints, bridge_name(network), opts.mtu, rules,
                            _gateways(network, opts))


def options_of(network: Network) -> BridgeOptions:
    """The network's typed options; `--internal` counts as the internal option."""
    opts = parse(dict(network.options))
    return replace(opts, internal=opts.internal or network.internal)


def bridge_name(network: Network) -> str:
    return parse(dict(network.options)).bridge_name or f"br-{network.id[:12]}"


def _families(opts: BridgeOptions) -> tuple[int, ...]:
    return (4, 6) if opts.subnet6 else (4,)


def _ip6(endpoint: Endpoint) -> str:
    """The endpoint's IPv6 address without its prefix length ("" when not dual stack)."""
    return endpoint.datum(IPV6_ADDRESS).split("/")[0]


def _gateway6(network: Network, opts: BridgeOptions) -> str:
    return ipv6_companion(network.subnet, network.gateway, opts.subnet6).split("/")[0]


def _gateways(network: Network, opts: BridgeOptions) -> list[str]:
    """The bridge's addresses (CIDR): the IPv4 gateway, and the IPv6 one when dual stack."""
    found = [f"{network.gateway}/{ipaddress.ip_network(network.subnet).prefixlen}"]
    if opts.subnet6:
        found.append(ipv6_companion(network.subnet, network.gateway, opts.subnet6))
    return found


def _network_rules(network: Network, opts: BridgeOptions) -> list[iptables.FwRule]:
    return [rule for subnet in (network.subnet, opts.subnet6) if subnet
            for rule in firewall.network_rules(bridge_name(network), subnet, icc=opts.icc,
                                               masquerade=opts.masquerade,
                                               internal=opts.internal, hairpin=opts.hairpin)]


def _add_gateway_route(rt: Rtnl, index: int, gateway: str) -> None:
    # A sandbox keeps the default route of the first network that gave it one (Docker picks
    # one gateway endpoint per sandbox).
    try:
        addresses.add_default_route(rt, index, gateway)
    except Conflict:
        pass


DRIVER = BridgeDriver
