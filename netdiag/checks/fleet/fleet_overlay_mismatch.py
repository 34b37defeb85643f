"""fleet-overlay-mismatch: the nodes of one overlay disagree about it.

What it finds
    In a fleet snapshot, across the machines that share a VXLAN overlay:
    * a node sends the overlay's frames (a forwarding entry, or the device's `remote`) to a
      VTEP address that is another live node's, and that node has no VXLAN device of that VNI
      and port in the namespace holding the address: it is missing from the overlay its peers
      list, or it runs the overlay under another VNI (its devices are named in the evidence);
    * the overlay's VXLAN devices have different MTUs on different nodes: a frame one node
      sends at its MTU is too big for the other's side and is dropped without a word;
    * the interfaces on the overlay have addresses in a subnet on one node that the others,
      which share theirs, do not use: the containers on that node are not on the network the
      others are (nodes that each have a subnet of their own are a design, not a fault).
    An overlay is what netdiag/model/index.py joins: devices of one VNI and port that send
    to each other. One address twice on the overlay is duplicate-address's, a forwarding entry
    to a VTEP no node of the fleet owns is vxlan-fdb-stale's: both see across nodes in a fleet
    snapshot.

Why it matters
    Each node's own view is consistent, so every single-host check passes; the fault is only
    between them. A node missing from the overlay swallows what its peers send; an MTU that
    differs breaks large transfers in one direction only; a node with another subnet answers
    no ARP for the others' addresses.

Example
    ND952 fleet-overlay-mismatch  node m2: vx100
      the overlay VNI 100 has MTU 1400 on m2 but 1450 on m1, m3: frames up to 1450 bytes
      from m1, m3 are dropped on m2's side
        · m1: vx100 mtu 1450
        · m2: vx100 mtu 1400
        · m3: vx100 mtu 1450

Repair
    Manual: make the nodes agree, as the control plane that made the overlay would: create
    the missing device (or rejoin the node to the network), or set the MTU or subnet the
    other nodes use. Which node is wrong is for a person to decide (usually the minority).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Link, Snapshot
from netdiag.model.index import SnapshotIndex, index, remote_vteps

RULE = Rule(code="ND952", name="fleet-overlay-mismatch", severity=Severity.ERROR,
            summary="the nodes of one overlay disagree: a node missing from it, or another "
                    "MTU or subnet")


@dataclass(frozen=True, slots=True)
class Device:
    machine: str
    namespace: int
    link: Link
    underlay: int | None


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    if len(snapshot.machines) < 2:
        return
    topology = index(snapshot)
    devices = _devices(snapshot, topology)
    yield from _missing_members(topology, devices)
    overlays: dict[int | None, list[Device]] = defaultdict(list)
    for device in devices:
        overlays[topology.overlay(device.namespace, device.link)].append(device)
    for members in overlays.values():
        if len({d.machine for d in members}) > 1:
            yield from _mtus(topology, members)
            yield from _subnets(topology, members)


def _devices(snapshot: Snapshot, topology: SnapshotIndex) -> list[Device]:
    return [Device(state.ref.machine, state.ref.id, link,
                   topology.underlay(state.ref.id, link))
            for state in snapshot.namespaces if state.ref.machine
            for link in state.links if link.vxlan is not None]


def _missing_members(topology: SnapshotIndex, devices: list[Device]) -> Iterator[Finding]:
    by_underlay: dict[int, list[Device]] = defaultdict(list)
    for device in devices:
        if device.underlay is not None:
            by_underlay[device.underlay].append(device)
    said: set[tuple[int, str, str]] = set()
    for device in devices:
        info = device.link.vxlan
        state = topology.namespace(device.namespace)
        for remote in remote_vteps(state, device.link):
            holders = [(h, a) for h, a in topology.owners_of(remote)
                       if topology.ref(h).machine not in ("", device.machine)]
            if len({topology.ref(h).machine for h, _ in holders}) != 1:
                continue  # a group, nobody's, or several nodes' (an address reused): unclear
            for holder, address in holders[:1]:
                other = topology.ref(holder).machine
                if (device.namespace, remote, other) in said:
                    continue
                theirs = by_underlay.get(holder, [])
                if any(d.link.vxlan.vni == info.vni and d.link.vxlan.dstport == info.dstport
                       for d in theirs):
                    continue
                said.add((device.namespace, remote, other))
                evidence = [Evidence(f"{device.link.name}: VNI {info.vni}, port "
                                     f"{info.dstport}, sends to VTEP {remote}",
                                     device.namespace, "link", device.link.name),
                            Evidence(f"{remote} is on {address.ifname} of node {other} "
                                     f"({topology.ref(holder).display})", holder, "address",
                                     remote)]
                evidence += [Evidence(f"node {other} has {d.link.name}: VNI "
                                      f"{d.link.vxlan.vni}, port {d.link.vxlan.dstport}",
                                      d.namespace, "link", d.link.name) for d in theirs]
                has = (f"its VXLAN devices there are VNI "
                       f"{', '.join(str(d.link.vxlan.vni) for d in theirs)}") if theirs \
                    else "it has no VXLAN device there"
                yield RULE.finding(
                    topology.ref(device.namespace), device.link.name,
                    f"node {device.machine} sends overlay VNI {info.vni} to VTEP {remote}, "
                    f"node {other}'s, but {other} is not on that overlay ({has}): what "
                    f"{device.machine} sends there is dropped",
                    evidence=evidence, related=(holder,),
                    repair=_manual(f"put node {other} on overlay VNI {info.vni} (or remove "
                                   f"{device.machine}'s entries for {remote})"))


def _mtus(topology: SnapshotIndex, members: list[Device]) -> Iterator[Finding]:
    by_mtu: dict[int, list[Device]] = defaultdict(list)
    for device in members:
        by_mtu[device.link.mtu].append(device)
    if len(by_mtu) < 2:
        return
    usual = max(by_mtu, key=lambda mtu: (len({d.machine for d in by_mtu[mtu]}), mtu))
    others = ", ".join(sorted({d.machine for d in by_mtu[usual]}))
    vni = members[0].link.vxlan.vni
    evidence = [Evidence(f"{d.machine}: {d.link.name} mtu {d.link.mtu}", d.namespace, "link",
                         d.link.name) for d in members]
    for mtu, odd in sorted(by_mtu.items()):
        if mtu == usual:
            continue
        for device in odd:
            smaller, larger = sorted((mtu, usual))
            direction = (f"frames up to {usual} bytes from {others} are dropped on "
                         f"{device.machine}'s side") if mtu < usual else \
                (f"frames up to {mtu} bytes from {device.machine} are dropped on the others' "
                 "side")
            yield RULE.finding(
                topology.ref(device.namespace), device.link.name,
                f"the overlay VNI {vni} has MTU {mtu} on {device.machine} but {usual} on "
                f"{others}: {direction}",
                evidence=evidence, related=tuple(d.namespace for d in by_mtu[usual]),
                repair=_manual(f"give {device.link.name} on {device.machine} the MTU the "
                               f"other nodes use ({usual}), or lower theirs to {smaller} "
                               f"(not above {larger})"))


def _subnets(topology: SnapshotIndex, members: list[Device]) -> Iterator[Finding]:
    """Per node, the networks of the addresses on the overlay's segment; a node whose
    networks share nothing with the others'."""
    networks: dict[str, set[ipaddress.IPv4Network]] = defaultdict(set)
    first: dict[str, Device] = {}
    for device in members:
        first.setdefault(device.machine, device)
    for endpoint in topology.segment(members[0].namespace, members[0].link.name):
        machine = topology.ref(endpoint.namespace).machine
        for address in topology.namespace(endpoint.namespace).addresses:
            if address.ifname == endpoint.link and address.family == 4 and \
                    address.prefixlen < 32 and not address.address.startswith("169.254."):
                networks[machine].add(ipaddress.ip_network(
                    f"{address.address}/{address.prefixlen}", strict=False))
    def share(a: set, b: set) -> bool:
        return any(x.overlaps(y) for x in a for y in b)

    for machine, own in sorted(networks.items()):
        others = sorted(m for m in networks if m != machine)
        rest = set().union(*(networks[m] for m in others))
        # Only the odd one out: when the other nodes share a subnet among themselves. Nodes
        # that each have their own (a routed design) or two that differ are no majority.
        agree = any(share(networks[a], networks[b]) for a in others for b in others if a < b)
        if share(own, rest) or not agree or machine not in first:
            continue
        device = first[machine]
        yield RULE.finding(
            topology.ref(device.namespace), device.link.name,
            f"on the overlay VNI {device.link.vxlan.vni}, node {machine} is on "
            f"{_listed(own)} but {', '.join(others)} on {_listed(rest)}: they do not share "
            "a subnet, so they never resolve each other's addresses",
            severity=Severity.WARNING,
            evidence=[Evidence(f"{m}: {_listed(n)}", None, "address", "") for m, n in
                      sorted(networks.items())],
            repair=_manual(f"address the overlay's interfaces on {machine} in the subnet "
                           "the other nodes use"))


def _listed(networks) -> str:
    return ", ".join(str(n) for n in sorted(networks))


def _manual(text: str) -> Repair:
    return Repair(text, Safety.MANUAL, (ManualStep(text),))
