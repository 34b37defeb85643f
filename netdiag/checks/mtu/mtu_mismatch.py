"""mtu-mismatch: two ends of a path disagree on the largest packet, so big packets vanish.

What it finds
    * the two ends of a veth pair with different MTUs;
    * a bridge whose ports disagree with each other, or whose own MTU is above its ports';
    * a VXLAN device whose MTU plus the encapsulation overhead (50 bytes over IPv4, 70 over
      IPv6) exceeds the MTU of the underlay interface its packets leave by — found by looking
      up the route to each FDB destination and remote VTEP in the underlay's namespace;
    * a container interface whose MTU is above what its path to the uplink allows (veth,
      bridge, the namespace's default route out, and on through further namespaces);
    * interfaces below IPv6's minimum MTU of 1280 on a segment that carries IPv6 (an
      interface on it holds a global or ULA IPv6 address, or Docker says the network on its
      bridge is IPv6) — one finding per segment, in place of the mismatches above: the kernel
      deletes an interface's IPv6 addresses when its MTU goes below 1280, so what is left to
      see is the small MTU beside the IPv6 of its neighbours.
    The evidence is the path hop by hop, with each MTU and each encapsulation overhead.
    With `check --probe`, the DF ping sweeps sent from the namespace are cited as evidence.

Why it matters
    Small packets pass, large ones are dropped: ping works, DNS works, TLS handshakes and
    file transfers hang. A veth or bridge port drops frames larger than its MTU without a
    word; a VXLAN packet too big for the underlay is dropped after encapsulation, where no
    ICMP "fragmentation needed" ever reaches the sender. Cloud networks (1460), VPNs (1420)
    and nested overlays are the usual culprits; Docker does not infer the MTU from the uplink.
    IPv6 goes further: every link must carry 1280 bytes, senders never make packets smaller
    than that whatever ICMPv6 "packet too big" says, and an interface set below 1280 silently
    loses IPv6 altogether — a dual-stack container with `com.docker.network.driver.mtu=1200`
    is IPv4-only.

Example
    ND201 mtu-mismatch  netns host1: vx0
      vx0 MTU 1500 + 50 VXLAN overhead = 1550 exceeds u1's MTU 1500 in the underlay:
      encapsulated packets above it are dropped; the overlay carries host2
        · host1: vx0 mtu 1500 (VNI 42, +50 bytes VXLAN over IPv4 = 1550)
        · host1: u1 mtu 1500 (route 10.200.0.0/24 towards VTEP 10.200.0.2)
      repair (safe): Lower the MTU of vx0 and everything bridged with it to 1450
        $ ip netns exec host1 ip link set dev vx0 mtu 1450

    ND201 mtu-mismatch  container web: eth0
      eth0 has MTU 1500 but its path out allows 1400 (eth0 in host): larger packets need
      fragmentation or PMTU discovery, which firewalls often break
        · web: eth0 mtu 1500 (default route)
        · host: veth1a2b3c4 mtu 1500 (veth peer)
        · host: br-web mtu 1500 (bridge)
        · host: eth0 mtu 1400 (default route)

    ND201 mtu-mismatch  container web: eth0
      eth0, veth1a2b3c4 in host have MTU 1200, below IPv6's minimum of 1280, on a segment
      that carries IPv6: the kernel turns IPv6 off on such an interface (its IPv6 addresses
      are deleted), and IPv6 packets above 1200 bytes, which no sender makes smaller than
      1280, are dropped
        · web: eth0 mtu 1200
        · host: veth1a2b3c4 mtu 1200
        · fd00:db8::1/64 on br-web in host
      repair (unsafe): Raise the MTU of eth0, veth1a2b3c4 in host to 1280 and add back their
      IPv6 addresses

Repair
    Lower the MTU to the computed value: the smaller end of a veth pair, the smallest port
    of a bridge, the underlay MTU minus the overhead for VXLAN and everything bridged with it,
    the path MTU for a container. For Docker set `com.docker.network.driver.mtu` (or "mtu" in
    daemon.json) so new containers get it too. Lowering is safe, except below 1280 where IPv6
    runs (then it is unsafe: IPv6 stops working there). Below IPv6's minimum, raise the MTU to
    1280 (unsafe: the path beyond must carry it) and add back the IPv6 addresses the kernel
    deleted (reconnect the container; SLAAC addresses come back by themselves).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain

from netdiag.findings import probes as probe_evidence
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety, SetMtu
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Link, NamespaceState, Snapshot, intent
from netdiag.model.facts import IPV6_MIN_MTU, VXLAN_OVERHEAD
from netdiag.model.index import (
    InterfaceRef,
    SnapshotIndex,
    index,
    ip_int,
    is_container,
    is_link_local_ipv6,
)

RULE = Rule(code="ND201", name="mtu-mismatch", severity=Severity.ERROR,
            summary="veth ends, bridge ports, VXLAN and underlay, or a container and its path "
                    "disagree on the MTU, or an IPv6 segment has links below 1280")

MAX_PATH_NAMESPACES = 8  # a container's path to the uplink crosses a few namespaces at most


@dataclass(frozen=True, slots=True)
class _Hop:
    namespace: int
    link: Link
    limit: int  # the largest packet this hop passes (its MTU, or a route's MTU)
    note: str = ""
    binding: bool = True  # False: shown for context, but does not limit forwarded packets

    def evidence(self, topo: SnapshotIndex) -> Evidence:
        ref = topo.ref(self.namespace)
        where = ref.display if ref else str(self.namespace)
        note = f" ({self.note})" if self.note else ""
        return Evidence(f"{where}: {self.link.name} mtu {self.limit}{note}", self.namespace,
                        "link", self.link.name)


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topo = index(snapshot)
    ipv6 = _ipv6_segments(snapshot, topo)
    for finding in chain(_below_ipv6_minimum(topo, ipv6), _veth_pairs(topo, ipv6),
                         _bridges(topo, ipv6), _vxlans(topo, ipv6),
                         _container_paths(topo, ipv6)):
        # With `check --probe`, what the DF sweeps from this namespace measured.
        measured = probe_evidence.path_mtu(snapshot, finding.namespace.id)
        yield replace(finding, evidence=finding.evidence + measured) if measured else finding


def _lower(topo: SnapshotIndex, endpoints: list[InterfaceRef], mtu: int, what: str,
           ipv6: dict[int, Evidence]) -> Repair:
    """Set `mtu` on every interface of `endpoints` that is above it (lowering is safe —
    unless it goes below IPv6's minimum where IPv6 runs: the kernel turns IPv6 off there)."""
    steps = []
    for endpoint in dict.fromkeys(endpoints):
        link = topo.link(endpoint.namespace, endpoint.link)
        if link is not None and link.mtu > mtu and link.kind != "loopback":
            steps.append(SetMtu(endpoint.namespace, endpoint.link, mtu))
    if mtu < IPV6_MIN_MTU and any(topo.segment_ids.get(e) in ipv6 for e in endpoints):
        return Repair(f"Lower the MTU of {what} to {mtu} (below {IPV6_MIN_MTU}: IPv6 stops "
                      "working there)", Safety.UNSAFE, tuple(steps))
    return Repair(f"Lower the MTU of {what} to {mtu}", Safety.SAFE, tuple(steps))


# --- below IPv6's minimum ---------------------------------------------------------------------


def _ipv6_segments(snapshot: Snapshot, topo: SnapshotIndex) -> dict[int, Evidence]:
    """L2 segment id → why it carries IPv6: a global (or ULA) IPv6 address on one of its
    interfaces, or a Docker network the engine says is IPv6 on its bridge."""
    found: dict[int, Evidence] = {}
    for ns_id, state in topo.namespaces.items():
        for address in state.addresses:
            if address.family != 6 or is_link_local_ipv6(address.address) or \
                    address.ifname == "lo":
                continue
            segment = topo.segment_ids.get(InterfaceRef(ns_id, address.ifname))
            if segment is not None and segment not in found:
                found[segment] = Evidence(
                    f"{address.cidr} on {address.ifname} in {state.ref.display}", ns_id,
                    "address", address.cidr)
    for engine, host in intent.engines(snapshot):
        for network in intent.bridge_networks(engine):
            bridge = intent.bridge_name(network)
            segment = topo.segment_ids.get(InterfaceRef(host.ref.id, bridge))
            if network.ipv6 and segment is not None:
                found.setdefault(segment, Evidence(
                    f"{intent.who(engine)}: network {network.name} on {bridge} is IPv6",
                    host.ref.id, "docker", network.name))
    return found


def _below_ipv6_minimum(topo: SnapshotIndex, ipv6: dict[int, Evidence]) -> Iterator[Finding]:
    """One finding per IPv6 segment with interfaces below 1280, on the first of them that
    holds addresses (the one whose IPv6 went away)."""
    low: dict[int, list[_Hop]] = {}
    for (ns_id, name), link in topo.links.items():
        segment = topo.segment_ids.get(InterfaceRef(ns_id, name))
        if link.mtu < IPV6_MIN_MTU and link.kind != "loopback" and segment in ipv6:
            low.setdefault(segment, []).append(_Hop(ns_id, link, link.mtu))
    for segment, hops in low.items():
        hops.sort(key=lambda h: (not any(a.ifname == h.link.name
                                         for a in topo.namespace(h.namespace).addresses),
                                 topo.ref(h.namespace).display, h.link.name))
        first = hops[0]
        names = ", ".join(h.link.name if h.namespace == first.namespace
                          else f"{h.link.name} in {topo.ref(h.namespace).display}"
                          for h in hops)
        smallest = min(h.limit for h in hops)
        message = (f"{names} {'has' if len(hops) == 1 else 'have'} MTU {smallest}, below "
                   f"IPv6's minimum of {IPV6_MIN_MTU}, on a segment that carries IPv6: the "
                   f"kernel turns IPv6 off on such an interface (its IPv6 addresses are "
                   f"deleted), and IPv6 packets above {smallest} bytes, which no sender makes "
                   f"smaller than {IPV6_MIN_MTU}, are dropped")
        why = ipv6[segment]
        steps = tuple(SetMtu(h.namespace, h.link.name, IPV6_MIN_MTU) for h in hops)
        yield RULE.finding(
            topo.ref(first.namespace), first.link.name, message,
            evidence=[h.evidence(topo) for h in hops] + [why],
            related=tuple(sorted(({h.namespace for h in hops} | {why.namespace})
                                 - {first.namespace, None})),
            repair=Repair(f"Raise the MTU of {names} to {IPV6_MIN_MTU} and add back their "
                          "IPv6 addresses", Safety.UNSAFE, steps + (ManualStep(
                              "add back the IPv6 addresses the kernel deleted (a container: "
                              "reconnect it to its network; SLAAC addresses come back by "
                              "themselves)", first.namespace),)))


# --- veth pairs -------------------------------------------------------------------------------


def _veth_pairs(topo: SnapshotIndex, ipv6: dict[int, Evidence]) -> Iterator[Finding]:
    for (ns_id, name), link in topo.links.items():
        peer = topo.peer(ns_id, link)
        if peer is None:
            continue
        peer_ns, peer_link = peer
        # Report each pair once, on its larger end (the one to change).
        if link.mtu <= peer_link.mtu or _below_minimum_reported(topo, ipv6, peer_ns,
                                                                 peer_link):
            continue
        hops = (_Hop(ns_id, link, link.mtu), _Hop(peer_ns, peer_link, peer_link.mtu, "peer"))
        peer_ref = topo.ref(peer_ns)
        message = (f"veth {name} has MTU {link.mtu} but its peer {peer_link.name} in "
                   f"{peer_ref.display if peer_ref else peer_ns} has {peer_link.mtu}: frames "
                   f"above {peer_link.mtu} bytes are dropped")
        yield RULE.finding(topo.ref(ns_id), name, message,
                           evidence=[h.evidence(topo) for h in hops],
                           repair=_lower(topo, [InterfaceRef(ns_id, name)], peer_link.mtu, name,
                                         ipv6),
                           related=(peer_ns,) if peer_ns != ns_id else ())


# --- bridges ----------------------------------------------------------------------------------


def _below_minimum_reported(topo: SnapshotIndex, ipv6: dict[int, Evidence], ns_id: int,
                            link: Link) -> bool:
    """Is `link` below IPv6's minimum on an IPv6 segment? Then raising it is the repair,
    not lowering the rest to it (_below_ipv6_minimum reports it)."""
    return link.mtu < IPV6_MIN_MTU and topo.segment_ids.get(InterfaceRef(ns_id, link.name)) in ipv6


def _bridges(topo: SnapshotIndex, ipv6: dict[int, Evidence]) -> Iterator[Finding]:
    for (ns_id, name), bridge in topo.links.items():
        if bridge.kind != "bridge":
            continue
        ports = topo.bridge_ports(ns_id, name)
        if not ports:
            continue
        smallest = min(port.mtu for port in ports)
        if all(port.mtu == smallest for port in ports) and bridge.mtu <= smallest:
            continue
        if smallest < IPV6_MIN_MTU and topo.segment_ids.get(InterfaceRef(ns_id, name)) in ipv6:
            continue
        evidence = [_Hop(ns_id, bridge, bridge.mtu, "bridge").evidence(topo)]
        evidence += [_Hop(ns_id, port, port.mtu, "port").evidence(topo)
                     for port in sorted(ports, key=lambda p: (p.mtu, p.name))]
        larger = sorted(p.name for p in ports if p.mtu > smallest)
        problem = (f"its ports disagree ({', '.join(larger)} above {smallest})" if larger
                   else f"its MTU {bridge.mtu} is above its ports' {smallest}")
        endpoints = [InterfaceRef(ns_id, name)]
        for port in ports:
            endpoints.append(InterfaceRef(ns_id, port.name))
            peer = topo.peer(ns_id, port)
            if peer is not None:  # lower both ends of a veth, or the pair disagrees next
                endpoints.append(InterfaceRef(peer[0], peer[1].name))
        related = tuple(sorted({e.namespace for e in endpoints if e.namespace != ns_id}))
        yield RULE.finding(topo.ref(ns_id), name,
                           f"bridge {name}: {problem}; frames above {smallest} bytes are "
                           "dropped on the smaller ports",
                           severity=Severity.WARNING, evidence=evidence, related=related,
                           repair=_lower(topo, endpoints, smallest, f"{name} and its ports",
                                         ipv6))


# --- VXLAN over its underlay ------------------------------------------------------------------


def _vxlans(topo: SnapshotIndex, ipv6: dict[int, Evidence]) -> Iterator[Finding]:
    for (ns_id, name), link in topo.links.items():
        if link.vxlan is None:
            continue
        underlay = topo.underlay(ns_id, link)
        if underlay is None or topo.namespace(underlay) is None:
            continue
        worst = _tightest_underlay(topo, ns_id, link, underlay)
        if worst is None:
            continue
        overhead, path = worst
        allowed = path[-1].limit - overhead
        if link.mtu <= allowed:
            continue
        head = _Hop(ns_id, link, link.mtu,
                    f"VNI {link.vxlan.vni}, +{overhead} bytes VXLAN over IPv"
                    f"{4 if overhead == VXLAN_OVERHEAD[4] else 6} = {link.mtu + overhead}")
        endpoints = [InterfaceRef(ns_id, name)] + list(topo.segment(ns_id, name))
        message = (f"{name} MTU {link.mtu} + {overhead} VXLAN overhead = {link.mtu + overhead} "
                   f"exceeds {path[-1].link.name}'s MTU {path[-1].limit} in the underlay: "
                   f"encapsulated packets above it are dropped")
        users = topo.attached(ns_id, name)
        if users:
            message += f"; the overlay carries {', '.join(ref.display for ref in users)}"
        yield RULE.finding(topo.ref(ns_id), name, message,
                           evidence=[head.evidence(topo)] + [h.evidence(topo) for h in path],
                           related=tuple(sorted(({e.namespace for e in endpoints} | {underlay})
                                                - {ns_id})),
                           repair=_lower(topo, endpoints, allowed,
                                         f"{name} and everything bridged with it", ipv6))


def _vxlan_destinations(topo: SnapshotIndex, ns_id: int, link: Link) -> list[str]:
    state = topo.namespace(ns_id)
    found = [link.vxlan.remote] if link.vxlan.remote else []
    found += [entry.dst for entry in state.fdb if entry.ifname == link.name and entry.dst
              and entry.dst not in ("0.0.0.0", "::")]
    return list(dict.fromkeys(found))


def _tightest_underlay(topo: SnapshotIndex, ns_id: int, link: Link, underlay: int
                       ) -> tuple[int, list[_Hop]] | None:
    """(overhead, path) of the destination whose underlay leaves the least room."""
    best: tuple[int, list[_Hop]] | None = None
    for dst in _vxlan_destinations(topo, ns_id, link):
        family, _ = ip_int(dst)
        out = topo.egress(underlay, dst)
        if out is None:
            continue  # no route: vxlan-fdb-stale reports that
        route, dev = out
        path = [_Hop(underlay, dev, dev.mtu, f"route {route.dst} towards VTEP {dst}")]
        if route.mtu and route.mtu < dev.mtu:
            path.append(_Hop(underlay, dev, route.mtu, f"route {route.dst} mtu {route.mtu}"))
        candidate = (VXLAN_OVERHEAD[family], path)
        if best is None or path[-1].limit - candidate[0] < best[1][-1].limit - best[0]:
            best = candidate
    if best is None and link.vxlan.dev:
        dev = topo.link(underlay, link.vxlan.dev)
        if dev is not None:
            best = (VXLAN_OVERHEAD[4], [_Hop(underlay, dev, dev.mtu, "VXLAN lower device")])
    return best


# --- a container's path to the uplink ---------------------------------------------------------


def _container_paths(topo: SnapshotIndex, ipv6: dict[int, Evidence]) -> Iterator[Finding]:
    for state in topo.namespaces.values():
        if not is_container(state.ref):
            continue
        start = _default_egress(topo, state)
        if start is None:
            continue
        path = _path_out(topo, state.ref.id, start)
        if len(path) < 2:
            continue
        tightest = min((hop for hop in path[1:] if hop.binding), key=lambda hop: hop.limit)
        if start.mtu <= tightest.limit:
            continue
        # A veth whose ends disagree is reported as such: do not report it twice.
        if len(path) > 1 and path[1].link.kind == "veth" and path[1].limit < start.mtu:
            continue
        ns_id = state.ref.id
        endpoints = [InterfaceRef(ns_id, start.name)]
        peer = topo.peer(ns_id, start)
        if peer is not None:
            endpoints.append(InterfaceRef(peer[0], peer[1].name))
        where = topo.ref(tightest.namespace)
        message = (f"{start.name} has MTU {start.mtu} but its path out allows {tightest.limit} "
                   f"({tightest.link.name} in {where.display if where else tightest.namespace}): "
                   f"larger packets need fragmentation or PMTU discovery, which firewalls "
                   f"often break")
        yield RULE.finding(state.ref, start.name, message, severity=Severity.WARNING,
                           evidence=[h.evidence(topo) for h in path],
                           related=tuple(sorted({h.namespace for h in path} - {ns_id})),
                           repair=_lower(topo, endpoints, tightest.limit,
                                         f"{start.name} (and its veth peer)", ipv6))


def _default_egress(topo: SnapshotIndex, state: NamespaceState) -> Link | None:
    out = topo.default_egress(state.ref.id)
    return out[1] if out is not None else None


def _path_out(topo: SnapshotIndex, ns_id: int, start: Link) -> list[_Hop]:
    """Hops from `start` through veth peers, bridges and each namespace's default route."""
    path = [_Hop(ns_id, start, start.mtu, "default route")]
    link, visited = start, {ns_id}
    while len(visited) <= MAX_PATH_NAMESPACES:
        peer = topo.peer(ns_id, link)
        if peer is None:
            break
        ns_id, link = peer
        if ns_id in visited:
            break
        visited.add(ns_id)
        path.append(_Hop(ns_id, link, link.mtu, "veth peer"))
        if link.master:
            bridge = topo.link(ns_id, link.master)
            if bridge is not None:  # routed traffic enters the bridge; its MTU limits output only
                path.append(_Hop(ns_id, bridge, bridge.mtu, "bridge", binding=False))
        out = topo.default_egress(ns_id)
        if out is None:
            break
        route, link = out
        limit = min(link.mtu, route.mtu) if route.mtu else link.mtu
        path.append(_Hop(ns_id, link, limit, "default route"
                         + (f", route mtu {route.mtu}" if route.mtu else "")))
    return path
