"""The macvlan driver: containers get a macvlan child of a host interface, on its L2 segment.

create_network settles the parent (parent.py) and records it, with whether the driver made it;
join creates the macvlan child straight inside the sandbox (mode bridge, private, vepa or
passthru), with the 02:42 MAC, MTU, address and — unless the network is internal — the default
route via the network's gateway; a dual-stack network (option `netdiag.macvlan.ipv6_subnet`)
gives the child its IPv6 address too (the host number of its IPv4 one, `nodad`) and an IPv6
default route via the IPv6 gateway, as Docker 28 does for an `--ipv6` macvlan network. As the
kernel dictates, the host cannot reach its own macvlan children through the parent (see the
macvlan-host-isolation rule).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

from netdiag.drivers.api import Capability, namespace_ref
from netdiag.drivers.common import device, links, state
from netdiag.drivers.ipam import IPV6_ADDRESS, ipv6_companion, with_ipv6
from netdiag.drivers.macvlan import parent as parents
from netdiag.drivers.macvlan.options import PARENT_KEY, MacvlanOptions, parse
from netdiag.errors import DriverError
from netdiag.findings.driver_rules import DEVICE_MISSING, MTU_DIFFERS
from netdiag.findings.finding import Evidence, Finding
from netdiag.findings.repair import ManualStep, Repair, Safety, SetMtu
from netdiag.model.docker import docker_mac
from netdiag.netns import entered
from netdiag.rtnl_write import Rtnl, RtnlError, macvlan_data
from netdiag.store.records import Endpoint, Network, Scope

CREATED_KEY = "netdiag.macvlan.created_parent"  # the parent the driver made, to remove later


class MacvlanDriver:
    name = "macvlan"
    capability = Capability(Scope.LOCAL)
    uses_ipam = True

    def __init__(self, store):
        self.store = store

    def parse_options(self, options: Mapping[str, str]) -> MacvlanOptions:
        return parse(options)

    def _options(self, network: Network) -> MacvlanOptions:
        return parse({k: v for k, v in network.options if k != CREATED_KEY})

    def create_network(self, network: Network) -> Network:
        options = self._options(network)
        parent, created = parents.prepare(network.host, network.id, options)
        kept = {k: v for k, v in network.options if k != PARENT_KEY} | {PARENT_KEY: parent}
        if created:
            kept[CREATED_KEY] = parent
        return replace(network, options=tuple(sorted(kept.items())),
                       internal=network.internal or not options.parent)

    def delete_network(self, network: Network) -> None:
        created = network.option(CREATED_KEY)
        if created:
            parents.remove(network.host, created)

    def create_endpoint(self, network: Network, endpoint: Endpoint) -> Endpoint:
        endpoint = replace(endpoint, mac=endpoint.mac or docker_mac(endpoint.ip))
        return with_ipv6(endpoint, network.subnet, self._options(network).subnet6)

    def delete_endpoint(self, network: Network, endpoint: Endpoint) -> None:
        pass  # the child went with leave(); nothing else exists per endpoint

    def _mtu(self, network: Network, options: MacvlanOptions) -> int:
        parent_mtu = parents.mtu_of(network.host, network.option(PARENT_KEY))
        if options.mtu > parent_mtu:
            raise DriverError(f"macvlan MTU {options.mtu} is larger than parent "
                              f"{network.option(PARENT_KEY)}'s MTU {parent_mtu}")
        return options.mtu or parent_mtu

    def join(self, network: Network, endpoint: Endpoint, sandbox: str) -> Endpoint:
        options = self._options(network)
        mtu = self._mtu(network, options)
        ifname = endpoint.ifname or "eth0"
        temporary = f"mv{endpoint.id[:8]}"
        self._add_child(network, options, temporary, sandbox, mtu)
        prefix = ipaddress.ip_network(network.subnet).prefixlen
        gateway = "" if network.internal else network.gateway
        address6 = endpoint.datum(IPV6_ADDRESS)
        gateway6 = "" if network.internal or not address6 else \
            ipv6_companion(network.subnet, network.gateway, options.subnet6).split("/")[0]
        links.configure(sandbox, temporary, ifname, endpoint.mac, mtu, f"{endpoint.ip}/{prefix}",
                        gateway, address6, gateway6)
        return replace(endpoint, sandbox=sandbox, ifname=ifname,
                       data=tuple(sorted((dict(endpoint.data) | {"mtu": str(mtu)}).items())))

    def hand_over(self, network: Network, endpoint: Endpoint, name: str) -> Endpoint:
        """The child made in the host namespace as `name`, for the engine to move, name and
        address, with the endpoint's MAC (Docker's remote drivers)."""
        options = self._options(network)
        self._add_child(network, options, name, network.host, self._mtu(network, options))
        return endpoint

    def take_back(self, network: Network, endpoint: Endpoint) -> None:
        pass  # the child stays until the endpoint is deleted

    def _add_child(self, network: Network, options: MacvlanOptions, name: str, where: str,
                   mtu: int) -> None:
        parent = network.option(PARENT_KEY)
        target = os.open(where, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with entered(network.host), Rtnl() as rt:
                rt.add_link(name, "macvlan", up=False, mtu=mtu,
                            lower=device.index_of(rt, parent), netns_fd=target,
                            data=macvlan_data(options.mode))
        except RtnlError as exc:
            raise DriverError(f"cannot create a {options.mode} macvlan on {parent}: "
                              f"{exc}") from None
        finally:
            os.close(target)

    def leave(self, network: Network, endpoint: Endpoint) -> Endpoint:
        if endpoint.sandbox and os.path.exists(endpoint.sandbox):
            links.delete_link_in(endpoint.sandbox, endpoint.ifname)
        return replace(endpoint, sandbox="")

    # --- CHECK ----------------------------------------------------------------------------

    def check(self, network: Network, endpoints: Sequence[Endpoint]) -> Iterator[Finding]:
        host = namespace_ref(network.host)
        parent = network.option(PARENT_KEY)
        if state.link_named(state.read(network.host, state.LINKS), parent) is None:
            text = f"macvlan parent {parent} of network {network.name} is gone"
            yield DEVICE_MISSING.finding(
                host, parent, text, evidence=[Evidence(text, host.id, "link", parent)],
                repair=Repair("recreate the network", Safety.MANUAL,
                              (ManualStep(f"recreate {parent} or the network "
                                          f"{network.name}", host.id),)))
            return
        for endpoint in endpoints:
            if endpoint.sandbox and os.path.exists(endpoint.sandbox):
                yield from _check_child(network, endpoint)


def _check_child(network: Network, endpoint: Endpoint) -> Iterator[Finding]:
    ref = namespace_ref(endpoint.sandbox)
    child = state.link_named(state.read(endpoint.sandbox, state.LINKS), endpoint.ifname)
    if child is None:
        text = f"macvlan {endpoint.ifname} of {endpoint.name} on {network.name} is gone"
        yield DEVICE_MISSING.finding(
            ref, endpoint.ifname, text,
            evidence=[Evidence(text, ref.id, "link", endpoint.ifname)],
            repair=Repair("reconnect the container", Safety.MANUAL,
                          (ManualStep(f"netdiag net disconnect/connect {network.name} "
                                      f"{endpoint.name}", ref.id),)))
        return
    mtu, expected = child.mtu, int(endpoint.datum("mtu") or 0)
    if expected and mtu != expected:
        text = f"{endpoint.ifname} of {endpoint.name} has MTU {mtu}, the network's is {expected}"
        yield MTU_DIFFERS.finding(
            ref, endpoint.ifname, text,
            evidence=[Evidence(f"{endpoint.ifname} mtu {mtu}", ref.id, "link",
                               endpoint.ifname)],
            repair=Repair(f"set {endpoint.ifname}'s MTU to {expected}", Safety.SAFE,
                          (SetMtu(ref.id, endpoint.ifname, expected),)))
