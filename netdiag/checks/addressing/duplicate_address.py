"""duplicate-address: one IP address, or one MAC address, twice on the same layer-2 segment.

What it finds
    * An IPv4 or IPv6 address configured on two interfaces in different namespaces that share
      one L2 segment (joined by bridges, veth pairs, macvlans or one VXLAN VNI). Host routes
      (/32, /128) are left out: a service VIP is meant to sit on several endpoints at once; so
      is an overlay's gateway address on each host's overlay bridge. IPv6 link-local addresses
      are left out too (routers share fe80::1 on purpose): a clash among those is what the
      kernel's duplicate address detection reports, below.
    * An IPv6 address whose duplicate address detection (DAD) failed (`ip addr` shows it
      `dadfailed tentative`): another node on the link answered for it when it was added —
      a holder the snapshot may not show (another machine, a namespace that was not read).
      When the snapshot shows the other holder, this is said in the finding above instead.
    * A MAC address on two of a bridge's ports — for a veth port, the MAC of its far end, the
      interface the container actually sends from.

Why it matters
    Two hosts answering ARP (or IPv6 neighbour solicitations) for one address split its
    traffic by whoever answered last: connections reset at random, work from one client and
    fail from another, and the symptoms come and go with neighbour cache timeouts. An IPv6
    address whose DAD failed is never used at all: it stays on the interface, looking
    configured, while nothing is sent from it or reaches it (a link-local one takes IPv6's
    neighbour discovery on that interface with it). Two interfaces with one MAC make the
    bridge move that MAC between ports with every frame (FDB flapping), so each sees only
    part of its traffic. All usually come from a static address or MAC set by hand, a lab or
    a restored snapshot that reused an allocation, or IPAM state that was lost.

Example
    Containers web and api on bridge br0 both have 172.18.0.5/16 — api was started with
    `--ip 172.18.0.5` after IPAM had already given that address to web.

    ND102 duplicate-address  container api: fd00:db8::5
      fd00:db8::5 on eth0 failed duplicate address detection: another node on the link
      answered for it, so the kernel never uses it — nothing is sent from it and nothing
      reaches it
        · fd00:db8::5/64 on eth0: dadfailed

Repair
    Manual: give one of the interfaces another address (or MAC); find out which allocation
    was wrong first — the other one is what clients expect. After a failed DAD, delete and
    re-add the address (or set the link down and up) so that the kernel checks it again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Address, Snapshot
from netdiag.model.index import InterfaceRef, SnapshotIndex, index, is_link_local_ipv6

RULE = Rule(code="ND102", name="duplicate-address", severity=Severity.ERROR,
            summary="An IP address or a MAC address is used twice on one L2 segment, or an "
                    "IPv6 address failed duplicate address detection")

_NO_MAC = ("", "00:00:00:00:00:00")
DAD_FAILED = "dadfailed"  # Address.flags: IPv6 duplicate address detection found it taken


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topology = index(snapshot)
    reported: set[str] = set()
    for finding in _duplicate_ips(topology):
        reported.add(finding.subject)
        yield finding
    yield from _dad_failures(topology, reported)
    yield from _duplicate_macs(topology)


def _shared_on_purpose(owned: Address) -> bool:
    """Addresses meant to sit on several interfaces at once, or never routed: host routes
    (a service VIP on several endpoints), loopback, and IPv6 link-local addresses (the same
    fe80::1 on many routers; a clash among those is what DAD reports)."""
    if owned.family == 4:
        return owned.prefixlen == 32 or owned.address.startswith("127.")
    return owned.prefixlen == 128 or owned.address == "::1" or \
        is_link_local_ipv6(owned.address)


def _duplicate_ips(topology: SnapshotIndex) -> Iterator[Finding]:
    for address, owners in sorted(topology.owners.items()):
        if len({ns for ns, _ in owners}) < 2:
            continue
        by_segment: dict[int, list[tuple[int, Address]]] = defaultdict(list)
        for ns_id, owned in owners:
            if _shared_on_purpose(owned):
                continue
            segment = topology.segment_ids.get(InterfaceRef(ns_id, owned.ifname))
            if segment is not None:
                by_segment[segment].append((ns_id, owned))
        for segment, holders in by_segment.items():
            if len({ns for ns, _ in holders}) > 1 and not _overlay_gateway(topology, holders):
                yield _ip_finding(topology, address, segment, holders)


def _overlay_gateway(topology: SnapshotIndex, holders: list[tuple[int, Address]]) -> bool:
    """Every holder is a bridge with a VXLAN port: the overlay gateway, which Docker puts on
    each host's br0 on purpose (the VXLAN proxy answers ARP for it locally)."""
    return all(topology.link(ns_id, owned.ifname).kind == "bridge"
               and any(port.vxlan is not None
                       for port in topology.bridge_ports(ns_id, owned.ifname))
               for ns_id, owned in holders)


def _ip_finding(topology: SnapshotIndex, address: str, segment: int,
                holders: list[tuple[int, Address]]) -> Finding:
    holders = sorted(holders, key=lambda h: (topology.ref(h[0]).display, h[1].ifname))
    evidence = [Evidence(f"{owned.cidr} on {owned.ifname} in {topology.ref(ns_id).display}"
                         + (" (its duplicate address detection failed)"
                            if DAD_FAILED in owned.flags else ""),
                         ns_id, "address", owned.cidr) for ns_id, owned in holders]
    bridges = [e for e in topology.segment_members[segment]
               if topology.link(e.namespace, e.link).kind == "bridge"]
    if bridges:
        evidence.append(Evidence(
            "they share the L2 segment of bridge " + ", ".join(
                f"{b.link} in {topology.ref(b.namespace).display}" for b in bridges),
            bridges[0].namespace, "link", bridges[0].link))
    names = " and ".join(f"{owned.ifname} in {topology.ref(ns_id).display}"
                         for ns_id, owned in holders)
    first_ns = holders[0][0]
    return RULE.finding(
        topology.ref(first_ns), address,
        f"{address} is configured on {names}, which share one L2 segment",
        evidence=evidence, related=tuple(dict.fromkeys(ns for ns, _ in holders[1:])),
        repair=Repair(f"give all but one holder of {address} another address", Safety.MANUAL, (
            ManualStep(f"decide which interface should keep {address} and re-address the "
                       "others (for a container: reconnect it to the network)", first_ns),)))


def _dad_failures(topology: SnapshotIndex, reported: set[str]) -> Iterator[Finding]:
    """IPv6 addresses the kernel found taken when it added them, whose other holder the
    snapshot does not show (another machine on the link, a namespace not read)."""
    for ns_id, state in topology.namespaces.items():
        for owned in state.addresses:
            if DAD_FAILED not in owned.flags or owned.address in reported:
                continue
            reported.add(owned.address)
            yield RULE.finding(
                state.ref, owned.address,
                f"{owned.address} on {owned.ifname} failed duplicate address detection: "
                f"another node on the link answered for it, so the kernel never uses it — "
                f"nothing is sent from it and nothing reaches it",
                evidence=[Evidence(f"{owned.cidr} on {owned.ifname}: dadfailed", ns_id,
                                   "address", owned.cidr)],
                repair=Repair(f"give {owned.address} to one node only", Safety.MANUAL, (
                    ManualStep(f"find the other node using {owned.address} on {owned.ifname}'s "
                               "link and re-address one of them; then delete and re-add the "
                               "address here (or set the link down and up) so that DAD runs "
                               "again", ns_id),)))


def _duplicate_macs(topology: SnapshotIndex) -> Iterator[Finding]:
    for (ns_id, bridge), ports in sorted(topology.ports.items()):
        by_mac: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
        for port in ports:
            peer = topology.peer(ns_id, port)
            far_ns, far = peer if peer is not None else (ns_id, port)
            if far.mac.lower() not in _NO_MAC:
                by_mac[far.mac.lower()].append((far_ns, far.name, port.name))
        for mac, users in sorted(by_mac.items()):
            if len(users) < 2:
                continue
            evidence = [Evidence(f"{name} in {topology.ref(n).display} has {mac} "
                                 f"(bridge port {port})", n, "link", name)
                        for n, name, port in users]
            yield RULE.finding(
                topology.ref(ns_id), bridge,
                f"MAC {mac} is used behind {len(users)} ports of bridge {bridge} "
                f"({', '.join(port for _, _, port in users)})",
                evidence=evidence,
                related=tuple(dict.fromkeys(n for n, _, _ in users if n != ns_id)),
                repair=Repair(f"give each interface behind {bridge} its own MAC", Safety.MANUAL,
                              (ManualStep(f"change the MAC of all but one interface using {mac}",
                                          ns_id),)))
