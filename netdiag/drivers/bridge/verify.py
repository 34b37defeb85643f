"""Step and check: does the kernel hold what the bridge driver configured?

`bridge_ready` is the last step of creating a network. `check` is the driver's CHECK verb: it
reads the host namespace (bridge, veths, firewall) and each joined sandbox, compares them with
the store's records and the rules the driver would write, and yields ordinary Findings with a
repair where one is mechanical (restore an MTU, re-add a rule, bring a device up).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from netdiag.drivers.api import namespace_ref
from netdiag.drivers.common import iptables, state
from netdiag.drivers.common.iptables import FwRule
from netdiag.drivers.common.ports import missing_rule
from netdiag.drivers.ipam import IPV6_ADDRESS
from netdiag.errors import DriverError
from netdiag.findings.driver_rules import ADDRESS_MISSING, DEVICE_DOWN, DEVICE_MISSING, MTU_DIFFERS
from netdiag.findings.finding import Evidence, Finding
from netdiag.findings.repair import ManualStep, Repair, Safety, SetLinkUp, SetMtu
from netdiag.model import NamespaceRef
from netdiag.netns import entered
from netdiag.store.records import Endpoint, Network


def bridge_ready(host: str, bridge: str, gateways: Sequence[str]) -> None:
    """The bridge is up and holds the gateways (CIDR: IPv4's, and IPv6's when dual stack)."""
    links = _links(host)
    for gateway in gateways:
        if gateway not in links.get(bridge, {}).get("addresses", ()):
            raise DriverError(f"{bridge} has no address {gateway}")
    if not links[bridge]["up"]:
        raise DriverError(f"{bridge} is not up")


def _links(path: str) -> dict[str, dict]:
    """name → {mtu, up, addresses} of the namespace at `path`."""
    found = state.read(path, state.LINKS_AND_ADDRESSES)
    return {link.name: {"mtu": link.mtu, "up": link.admin_up,
                        "addresses": [a.cidr for family in (4, 6)
                                      for a in state.addresses_of(found, link.name, family)]}
            for link in found.links}


def check(network: Network, endpoints: Sequence[Endpoint], bridge: str, mtu: int,
          rules: Sequence[FwRule], gateways: Sequence[str]) -> Iterator[Finding]:
    host = namespace_ref(network.host)
    links = _links(network.host)
    with entered(network.host):
        saved = {family: iptables.read(family) for family in {r.family for r in rules}}
    for gateway in gateways:
        yield from _device(host, links, bridge, mtu, gateway,
                           f"bridge of network {network.name}")
    for ep in endpoints:
        yield from _device(host, links, ep.host_ifname, mtu, "",
                           f"host side of endpoint {ep.name}")
        if ep.sandbox:
            yield from _sandbox(ep, mtu)
    for family, have in saved.items():
        for rule in iptables.missing(have, [r for r in rules if r.family == family]):
            yield missing_rule(host, network, rule)


def _sandbox(ep: Endpoint, mtu: int) -> Iterator[Finding]:
    if not os.path.exists(ep.sandbox):
        return  # reconcile's business: the container is gone, not broken
    ref = namespace_ref(ep.sandbox)
    links = _links(ep.sandbox)
    for address in (ep.address, ep.datum(IPV6_ADDRESS)):
        if address:
            yield from _device(ref, links, ep.ifname, mtu, address, f"endpoint {ep.name}")


def _device(ref: NamespaceRef, links: dict[str, dict], name: str, mtu: int, address: str,
            role: str) -> Iterator[Finding]:
    link = links.get(name)
    if link is None:
        yield DEVICE_MISSING.finding(
            ref, name, f"{name} ({role}) is missing from {ref.display}",
            evidence=[Evidence(f"no device {name} in {ref.display}", ref.id, "link", name)],
            repair=Repair("reconnect the endpoint (netdiag net disconnect, then connect)",
                          Safety.MANUAL, (ManualStep(f"recreate {name}", ref.id),)))
        return
    if link["mtu"] != mtu:
        yield MTU_DIFFERS.finding(
            ref, name, f"{name} ({role}) has MTU {link['mtu']}, the network's is {mtu}",
            evidence=[Evidence(f"{name} mtu {link['mtu']}", ref.id, "link", name)],
            repair=Repair(f"set the MTU of {name} back to {mtu}", Safety.SAFE,
                          (SetMtu(ref.id, name, mtu),)))
    if not link["up"]:
        yield DEVICE_DOWN.finding(
            ref, name, f"{name} ({role}) is down",
            evidence=[Evidence(f"{name} is not UP", ref.id, "link", name)],
            repair=Repair(f"bring {name} up", Safety.SAFE, (SetLinkUp(ref.id, name),)))
    if address and address not in link["addresses"]:
        have = ", ".join(link["addresses"]) or "none"
        yield ADDRESS_MISSING.finding(
            ref, name, f"{name} ({role}) lacks its address {address}",
            evidence=[Evidence(f"{name} addresses: {have}", ref.id, "address", name)],
            repair=Repair(f"add {address} to {name}", Safety.MANUAL,
                          (ManualStep(f"ip address add {address} dev {name}", ref.id),)))
