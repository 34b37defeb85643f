"""overlapping-subnets: two networks a namespace can reach overlap, so part of one is shadowed.

What it finds
    In one namespace: two connected networks on different interfaces that overlap (two
    bridges, a bridge and the uplink); a connected network (container, bridge or overlay
    subnet) that overlaps a route via another interface (a VPN or office network); and an
    overlay subnet that overlaps a network of its underlay. For each it says which range is
    shadowed and which interface traffic to it really takes (the longest prefix wins; for
    equal prefixes, the route the kernel prefers). Default routes and catch-all routes
    shorter than /8 (VPN "0.0.0.0/1" tricks) are not overlaps; the bound is the option
    `overlapping-subnets.min-prefixlen`. IPv6 is judged alike (global prefixes, ULA
    included); link-local addresses — fe80::/64 on every interface — are no networks to
    overlap.

Why it matters
    A destination can only be reached through one route. When Docker picks 10.8.0.0/16 for
    a bridge and the office VPN routes 10.0.0.0/8, every office host in 10.8.0.0/16 becomes
    unreachable from this machine — traffic goes into the bridge and nobody answers. The
    reverse case (a more specific VPN route inside a bridge subnet) makes some containers
    unreachable. Overlay subnets overlapping the underlay break the VTEPs' own traffic.

Example
    ND101 overlapping-subnets  host: br-web
      172.18.0.0/16 on br-web overlaps route 172.16.0.0/12 via 10.99.0.1 dev tun0: traffic
      to 172.18.0.0/16 takes br-web, so 172.18.0.0/16 behind tun0 is shadowed; br-web
      serves web
        · connected network 172.18.0.0/16 on br-web
        · route 172.16.0.0/12 via 10.99.0.1 dev tun0
        · traffic to 172.18.0.0/16 leaves by br-web
        · web is on br-web
      repair (manual): Move 172.18.0.0/16 (br-web) out of 172.16.0.0/12

Repair
    Manual: move the Docker network to a free range (recreate it with `--subnet`, and set
    `default-address-pools` in daemon.json so it does not come back), or narrow the VPN's
    routes. Nothing is changed automatically: both sides are somebody's configuration.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import chain

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import NamespaceState, Route, Snapshot
from netdiag.model.index import (
    MAIN_TABLE,
    InterfaceRef,
    SnapshotIndex,
    bits,
    format_network,
    index,
    nested_pairs,
    network_interval,
    route_family_dst,
)

RULE = Rule(code="ND101", name="overlapping-subnets", severity=Severity.ERROR,
            summary="two connected networks, or a connected network and a route, overlap")


@dataclass(frozen=True, slots=True)
class _Net:
    """A network reachable from a namespace: connected (an address) or routed."""

    family: int
    first: int
    prefixlen: int
    dev: str
    connected: bool
    gateway: str = ""
    namespace: int = 0
    metric: int = 0  # a route's; an address's prefix route has the kernel's default

    @property
    def cidr(self) -> str:
        return format_network(self.family, self.first, self.prefixlen)

    def describe(self) -> str:
        if self.connected:
            return f"{self.cidr} on {self.dev}"
        via = f" via {self.gateway}" if self.gateway else ""
        return f"route {self.cidr}{via} dev {self.dev}"

    def evidence(self) -> Evidence:
        if self.connected:
            return Evidence(f"connected network {self.describe()}", self.namespace, "address",
                            self.cidr)
        return Evidence(self.describe(), self.namespace, "route", self.cidr)


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topo = index(snapshot)
    min_prefixlen = max(1, int(config.option("overlapping-subnets.min-prefixlen", "8")))
    for state in snapshot.namespaces:
        connected = _connected(state)
        if not connected:
            continue
        pairs = list(nested_pairs(_blocks(connected)))
        pairs += _route_pairs(connected, _routes(topo, state, min_prefixlen,
                                                 _slash8s(connected)))
        yield from _findings(topo, state, pairs)
    yield from _overlay_overlaps(topo, snapshot)


def _connected(state: NamespaceState) -> list[_Net]:
    nets = []
    for address in state.addresses:
        if address.scope != "global" or address.ifname == "lo":
            continue
        family, first, _, prefixlen = network_interval(address.cidr)
        if prefixlen == bits(family):
            continue  # a host address (/32 VIP) routes nowhere by itself
        nets.append(_Net(family, first, prefixlen, address.ifname, True,
                         namespace=state.ref.id, metric=0 if family == 4 else 256))
    return nets


def _blocks(nets: list[_Net]) -> list[tuple[int, int, _Net]]:
    """Intervals for nested_pairs; IPv6 is shifted above all of IPv4 so families never meet."""
    blocks = []
    for net in nets:
        first = net.first + (0 if net.family == 4 else 1 << 32)
        blocks.append((first, first + (1 << (bits(net.family) - net.prefixlen)) - 1,
                       net))
    return blocks


def _slash8s(connected: list[_Net]) -> frozenset[int]:
    """The IPv4 /8 blocks (first octets) that connected networks touch."""
    octets: set[int] = set()
    for net in connected:
        if net.family == 4:
            last = net.first | ((1 << (32 - net.prefixlen)) - 1)
            octets.update(range(net.first >> 24, (last >> 24) + 1))
    return frozenset(octets)


def _routes(topo: SnapshotIndex, state: NamespaceState, min_prefixlen: int,
            slash8s: frozenset[int] | None = None) -> Iterator[tuple[tuple, Route]]:
    """Routes to somewhere else, with their parsed destination; connected routes are the
    addresses' own and catch-all routes shorter than `min_prefixlen` are no overlap.

    With `slash8s`, the IPv4 routes are only those of /8 or longer inside one of these /8
    blocks, as the index's main table files them (one list per first octet, in table
    order), block by block in address order — the order the kernel lists an IPv4 table in
    — and then the IPv6 routes: a BGP-fed table holds a million routes, and walking them
    all dominated the rule. A table the index could not file is walked whole.
    """
    routes: Iterable[Route] = state.routes
    if slash8s is not None and min_prefixlen >= 8:
        table = topo.table(state.ref.id, 4)
        blocks = [table.in_block(octet) for octet in sorted(slash8s)]
        if None not in blocks:
            routes = [*chain.from_iterable(blocks),
                      *topo.routes_in(state.ref.id, 6, MAIN_TABLE)]
    for route in routes:
        if (route.table != MAIN_TABLE or route.type != "unicast"
                or route.dst == "default" or _connected_route(route)):
            continue
        parsed = route_family_dst(route)
        if parsed[3] >= min_prefixlen:
            yield parsed, route


def _connected_route(route: Route) -> bool:
    """An address's own prefix route (and IPv6's fe80::/64 on every interface): the kernel's,
    without a gateway. IPv4 gives them scope link; IPv6 routes all have scope global."""
    return route.protocol == "kernel" and (route.scope == "link" or (
        route.family == 6 and not route.gateway and not route.nexthops))


def _route_pairs(connected: list[_Net], routes: Iterator[tuple[tuple, Route]]
                 ) -> list[tuple[_Net, _Net]]:
    """(outer, inner) pairs of a route and a connected network, without pairing routes with
    each other: a big table has 100k routes and a handful of connected networks. A connected
    network inside a route is found by bisecting the sorted networks; one containing a route
    by one dict probe per prefix length in use (CIDR blocks only nest, never cross)."""
    by_start: dict[int, list[_Net]] = {}
    for net in sorted(connected, key=lambda n: (n.family, n.first)):
        by_start.setdefault(net.family, []).append(net)
    firsts = {family: [n.first for n in nets] for family, nets in by_start.items()}
    by_block = {(n.family, n.prefixlen, n.first): n for n in connected}
    lengths = {family: sorted({n.prefixlen for n in nets}) for family, nets in by_start.items()}
    pairs = []
    for parsed, route in routes:
        family, first, last, prefixlen = parsed
        nets = by_start.get(family)
        if nets is None:
            continue
        width = bits(family)
        for length in lengths[family]:
            if length >= prefixlen:
                break
            host_bits = width - length
            outer = by_block.get((family, length, (first >> host_bits) << host_bits))
            if outer is not None:
                pairs.append((outer, _route_net(route, parsed)))
        low = bisect.bisect_left(firsts[family], first)
        high = bisect.bisect_right(firsts[family], last)
        for inner in nets[low:high]:
            if inner.prefixlen > prefixlen:
                pairs.append((_route_net(route, parsed), inner))
            elif inner.prefixlen == prefixlen:
                pairs.append((inner, _route_net(route, parsed)))
    return pairs


def _route_net(route: Route, parsed: tuple[int, int, int, int], namespace: int = 0) -> _Net:
    family, first, _, prefixlen = parsed
    return _Net(family, first, prefixlen, route.dev, False, route.gateway, namespace,
                route.metric)


def _findings(topo: SnapshotIndex, state: NamespaceState, pairs: list[tuple[_Net, _Net]]
              ) -> Iterator[Finding]:
    seen: set[tuple[str, str]] = set()
    for outer, inner in pairs:
        if outer.dev == inner.dev:
            continue
        outer = replace(outer, namespace=state.ref.id)
        inner = replace(inner, namespace=state.ref.id)
        key = (outer.describe(), inner.describe())
        if key not in seen:
            seen.add(key)
            yield _finding(topo, state, outer, inner)


def _finding(topo: SnapshotIndex, state: NamespaceState, outer: _Net, inner: _Net) -> Finding:
    ns_id = state.ref.id
    taken = _taken(topo, ns_id, outer, inner)
    lost = outer if taken is inner else inner
    subject_net = inner if inner.connected else outer
    shadowed = inner.cidr if inner.prefixlen > outer.prefixlen else lost.cidr
    users = topo.attached(ns_id, subject_net.dev)
    message = (f"{inner.describe()} overlaps {outer.describe()}: traffic to {inner.cidr} takes "
               f"{taken.dev}, so {shadowed} behind {lost.dev} is shadowed")
    if users:
        message += f"; {subject_net.dev} serves {', '.join(ref.display for ref in users)}"
    evidence = [inner.evidence(), outer.evidence(),
                Evidence(f"traffic to {inner.cidr} leaves by {taken.dev}", ns_id, "link",
                         taken.dev)]
    evidence += [Evidence(f"{ref.display} is on {subject_net.dev}", ref.id, "namespace",
                          ref.display) for ref in users]
    return RULE.finding(state.ref, subject_net.dev, message, evidence=evidence,
                        related=tuple(ref.id for ref in users),
                        repair=_repair(ns_id, subject_net, outer if subject_net is inner
                                       else inner))


def _taken(topo: SnapshotIndex, ns_id: int, outer: _Net, inner: _Net) -> _Net:
    """Which of two overlapping networks the kernel sends traffic for `inner` to: the longer
    prefix; for equal prefixes the lower metric; on a tie the address's own prefix route (it
    is there first), and between two addresses the route the table lists first."""
    if inner.prefixlen > outer.prefixlen:
        return inner
    if outer.metric != inner.metric or outer.connected != inner.connected:
        return min((outer, inner), key=lambda net: (net.metric, not net.connected))
    best = min((r for r in topo.routes_to(ns_id, inner.cidr)
                if r.table == MAIN_TABLE and r.type == "unicast"),
               key=lambda r: r.metric, default=None)
    return outer if best is not None and best.dev == outer.dev else inner


def _repair(ns_id: int, ours: _Net, theirs: _Net) -> Repair:
    return Repair(f"Move {ours.cidr} ({ours.dev}) out of {theirs.cidr}", Safety.MANUAL, (
        ManualStep(f"recreate the network on {ours.dev} with a subnet outside {theirs.cidr} "
                   "(docker network create --subnet ...; daemon.json default-address-pools), "
                   f"or narrow {theirs.describe()}", ns_id),))


# --- overlay subnets against their underlay ---------------------------------------------------


def _overlay_overlaps(topo: SnapshotIndex, snapshot: Snapshot) -> Iterator[Finding]:
    done: set[tuple[int, int]] = set()  # (segment, underlay namespace)
    # An overlay's networks, per segment, read once: a fleet's overlay spans every node, and
    # each node's underlay is compared with the same networks (but its own).
    on_segment: dict[object, list[tuple[int, _Net]]] = {}
    for state in snapshot.namespaces:
        for link in state.links:
            if link.vxlan is None:
                continue
            underlay_ns = topo.underlay(state.ref.id, link)
            segment_id = topo.segment_ids.get(InterfaceRef(state.ref.id, link.name), -1)
            key = (segment_id, underlay_ns)
            underlay = topo.namespace(underlay_ns) if underlay_ns is not None else None
            if underlay is None or key in done:
                continue
            done.add(key)
            segment = topo.segment(state.ref.id, link.name)
            cached = segment_id if segment_id >= 0 else (state.ref.id, link.name)
            if cached not in on_segment:
                on_segment[cached] = [(endpoint.namespace, net) for endpoint in segment
                                      for net in _connected_on(topo, endpoint)]
            # One of each network: a thousand containers on one subnet are one network to
            # compare (and not a million pairs of it with itself).
            overlay = _first_of_each([net for ns_id, net in on_segment[cached]
                                      if ns_id != underlay_ns])
            yield from _overlay_against(topo, state, link.name, set(segment), overlay,
                                        underlay)


def _overlay_against(topo: SnapshotIndex, state: NamespaceState, vxlan: str,
                     members: set[InterfaceRef], overlay: list[_Net],
                     underlay: NamespaceState) -> Iterator[Finding]:
    under = _connected(underlay) + [_route_net(route, parsed, underlay.ref.id)
                                    for parsed, route in _routes(topo, underlay, 8)]
    under = [net for net in under if InterfaceRef(underlay.ref.id, net.dev) not in members]
    tagged = [(first, last, (True, net)) for first, last, net in _blocks(overlay)]
    tagged += [(first, last, (False, net)) for first, last, net in _blocks(under)]
    seen: set[tuple[str, str]] = set()
    for (outer_is_overlay, outer), (inner_is_overlay, inner) in nested_pairs(tagged):
        if outer_is_overlay == inner_is_overlay:
            continue
        ours, theirs = (outer, inner) if outer_is_overlay else (inner, outer)
        if (ours.cidr, theirs.cidr) in seen:
            continue
        seen.add((ours.cidr, theirs.cidr))
        message = (f"overlay subnet {ours.cidr} (VXLAN {vxlan}) overlaps underlay "
                   f"{theirs.describe()} in {underlay.ref.display}: overlay endpoints cannot "
                   f"reach underlay hosts in {inner.cidr}")
        yield RULE.finding(state.ref, vxlan, message,
                           evidence=(ours.evidence(), theirs.evidence()),
                           repair=_repair(state.ref.id, ours, theirs),
                           related=(underlay.ref.id,))


def _first_of_each(nets: list[_Net]) -> list[_Net]:
    seen: set[str] = set()
    return [net for net in nets if not (net.cidr in seen or seen.add(net.cidr))]


def _connected_on(topo: SnapshotIndex, endpoint: InterfaceRef) -> list[_Net]:
    state = topo.namespace(endpoint.namespace)
    if state is None:
        return []
    return [net for net in _connected(state) if net.dev == endpoint.link]
