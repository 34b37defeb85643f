"""A read-only index over one Snapshot, shared by the rules.

Rules ask the same questions again and again — which link is this veth's peer, which ports
does this bridge have, which L2 segment is this interface on, which route does this namespace
take to that address, which namespace owns that address — so the answers are indexed once per
Snapshot here. Everything is pure: the index is built from the Snapshot alone and never changes.

Route lookup is longest-prefix match in one table (main by default), one dict probe per prefix
length; policy rules (`ip rule`) are not evaluated. Networks are turned into integer intervals
(`network_interval`) so overlaps can be found by sorting instead of comparing every pair.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from netdiag.model import (
    Address,
    Link,
    NamespaceRef,
    NamespaceState,
    NsKind,
    PolicyRule,
    Route,
    Snapshot,
)

MAIN_TABLE = 254
TABLE_NAMES = {253: "default", 254: "main", 255: "local"}
_ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit", "local")


# --- addresses as integers --------------------------------------------------------------------


def ip_int(address: str) -> tuple[int, int]:
    """(family, integer value) of an IPv4 or IPv6 address; ValueError for anything else."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
    except OSError:
        pass
    try:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, address.split("%")[0]), "big")
    except OSError:
        raise ValueError(f"not an IP address: {address!r}") from None


def is_multicast(address: str) -> bool:
    """A multicast group (a VXLAN device's flooding group), not a host; False for non-IPs."""
    try:
        family, value = ip_int(address)
    except ValueError:
        return False
    return value >> 28 == 0xE if family == 4 else value >> 120 == 0xFF


def is_link_local_ipv6(address: str) -> bool:
    """An IPv6 link-local address (fe80::/10): every IPv6 interface has one, and no router
    forwards to or from it; False for IPv4 and for non-IPs."""
    try:
        family, value = ip_int(address)
    except ValueError:
        return False
    return family == 6 and value >> 118 == 0x3FA


def bits(family: int) -> int:
    return 32 if family == 4 else 128


def network_interval(cidr: str) -> tuple[int, int, int, int]:
    """"10.1.0.0/16" → (family, first, last, prefixlen). "default" is the whole IPv4 space."""
    if cidr == "default":
        return 4, 0, (1 << 32) - 1, 0
    address, _, length = cidr.partition("/")
    try:  # IPv4 inline: big routing tables make this the hottest function of a check
        family, width = 4, 32
        value = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
    except OSError:
        family, value = ip_int(address)
        width = 128
    prefixlen = int(length) if length else width
    host_bits = width - prefixlen
    first = (value >> host_bits) << host_bits
    return family, first, first | ((1 << host_bits) - 1), prefixlen


def format_network(family: int, first: int, prefixlen: int) -> str:
    # IPv4 by inet_ntop (the same text, ten times faster: a big table's findings cite
    # thousands of networks); IPv6 by ipaddress, whose compressed form the reports keep
    address = socket.inet_ntop(socket.AF_INET, first.to_bytes(4, "big")) if family == 4 \
        else ipaddress.IPv6Address(first)
    return f"{address}/{prefixlen}"


def route_family_dst(route: Route) -> tuple[int, int, int, int]:
    if route.dst == "default":
        width = bits(route.family)
        return route.family, 0, (1 << width) - 1, 0
    return network_interval(route.dst)


def is_default(route: Route) -> bool:
    return route.dst == "default" or route.dst.endswith("/0")


def nested_pairs(intervals: Iterable[tuple[int, int, object]]) -> Iterator[tuple[object, object]]:
    """Every (outer, inner) pair of overlapping CIDR intervals, in n·log n plus output size.

    CIDR blocks never partly overlap — two are either disjoint or one contains the other — so
    after sorting by (first, widest first) the blocks still open form a chain of ancestors.
    Each item is (first, last, payload); equal blocks pair up too (earlier one as outer).
    """
    open_blocks: list[tuple[int, int, object]] = []
    for first, last, payload in sorted(intervals, key=lambda item: (item[0], -item[1])):
        while open_blocks and open_blocks[-1][1] < first:
            open_blocks.pop()
        for _, _, outer in open_blocks:
            yield outer, payload
        open_blocks.append((first, last, payload))


# --- the index ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InterfaceRef:
    """One interface, named by its namespace id and link name."""

    namespace: int
    link: str


_AF = {4: socket.AF_INET, 6: socket.AF_INET6}
_LENGTHS = {family: {str(n): n for n in range(bits(family) + 1)} for family in (4, 6)}
_MASKS = {family: [((1 << bits(family)) - 1) ^ ((1 << (bits(family) - n)) - 1)
                   for n in range(bits(family) + 1)] for family in (4, 6)}


# Where RouteTable splits a destination's text ("10.1.0.0/16": the first octet; "2001:db8::/32":
# the first group), how far to shift an address for that part, and how it is written.
_HEADS = {4: (".", 24, str), 6: (":", 112, "{:x}".format)}
# Prefix lengths (as the text after "/") that keep the first octet / group fixed, and shorter.
_NARROW = {family: frozenset(map(str, range(width, bits(family) + 1)))
           for family, width in ((4, 8), (6, 16))}
_WIDE = {family: frozenset(map(str, range(width))) for family, width in ((4, 8), (6, 16))}


class RouteTable:
    """Longest-prefix lookup over one namespace's routes of one family and table.

    A BGP-fed table holds a million routes and a check looks up a few hundred addresses in
    it, so the routes are only filed by the text their destination starts with (the first
    octet or group, written as the kernel writes it) and parsed one bucket at a time, the
    first time an address in it is looked up. Routes shorter than that part (a default
    route) are parsed at once. A destination in any other form (no length, a length or first
    part written another way: hand-written snapshots) makes the whole table parsed at once,
    which gives the same answers.
    """

    __slots__ = ("family", "defaults", "_buckets", "_built", "_wide", "_filed")

    def __init__(self, family: int, routes: Iterable[Route]):
        self.family = family
        self._built: dict[int, _Prefixes] = {}
        routes = list(routes)
        split = _split(family, routes)
        self._filed = split is not None
        if split is None:
            self._buckets, wide = {}, routes
        else:
            self._buckets, wide = split
        self._wide = _Prefixes(family, wide)
        # the routes to the whole address space ("default", "0.0.0.0/0"), in table order
        self.defaults = tuple(route for route in wide if is_default(route))

    def lookup(self, value: int) -> Route | None:
        _, shift, written = _HEADS[self.family]
        head = value >> shift
        table = self._built.get(head)
        if table is None:
            # (get, not pop: two threads building the same bucket at once build the same)
            table = self._built[head] = _Prefixes(self.family,
                                                  self._buckets.get(written(head), ()))
        found = table.lookup(value)  # every route of a bucket is longer than the wide ones
        return found if found is not None else self._wide.lookup(value)

    def in_block(self, head: int) -> list[Route] | None:
        """The routes (of the looked-up types) that lie inside the block of first octet
        (IPv6: first group) `head` and are at least that long — /8 or longer, /16 for IPv6
        — in table order and unparsed; None when the table is not filed that way (a
        destination in another form), and only a look through all its routes can tell."""
        if not self._filed:
            return None
        return self._buckets.get(_HEADS[self.family][2](head), [])


def _split(family: int, routes: list[Route]) -> tuple[dict[str, list[Route]], list[Route]] | None:
    """(usable routes by the first part of their destination, those shorter than it), or
    None when a destination is written in a form the split cannot place."""
    separator, shift, written = _HEADS[family]
    narrow, wide_lengths, types = _NARROW[family], _WIDE[family], _ROUTE_TYPES
    buckets: dict[str, list[Route]] = {}
    wide: list[Route] = []
    for route in routes:
        if route.type not in types:
            continue
        dst = route.dst
        head, separated, rest = dst.partition(separator)
        _, slash, length = rest.rpartition("/")
        if separated and slash and length in narrow:
            same_head = buckets.get(head)
            if same_head is None:
                buckets[head] = [route]
            else:
                same_head.append(route)
        elif (slash and length in wide_lengths) or dst == "default":
            wide.append(route)
        else:
            return None
    if family == 6 and "" in buckets:  # "::1/128": the first group is 0
        if "0" in buckets:  # written both ways: their order decides a tie, so parse all
            return None
        buckets["0"] = buckets.pop("")
    for head in buckets:  # written as lookup writes it: "10", "2001", not "010" or "300"
        try:
            number = int(head, 10 if family == 4 else 16)
        except ValueError:
            return None
        if written(number) != head or number >> (bits(family) - shift):
            return None
    return buckets, wide


class _Prefixes:
    """Longest-prefix lookup over a list of routes, parsed as it is built."""

    __slots__ = ("family", "_by_length", "_lengths")

    def __init__(self, family: int, routes: Iterable[Route]):
        self.family = family
        by_length: dict[int, dict[int, Route]] = defaultdict(dict)
        # route_family_dst inlined for the common form ("a.b.c.d/len" in the table's own
        # family): a table of 1M routes is built in half the time. Anything else ("default",
        # no length, another family) takes route_family_dst itself.
        pton, af, from_bytes = socket.inet_pton, _AF[family], int.from_bytes
        lengths, masks, types = _LENGTHS[family], _MASKS[family], _ROUTE_TYPES
        for route in routes:
            if route.type not in types:
                continue
            address, _, length = route.dst.partition("/")
            try:
                prefixlen = lengths[length]
                first = from_bytes(pton(af, address), "big") & masks[prefixlen]
            except (KeyError, OSError):
                _, first, _, prefixlen = route_family_dst(route)
            same_length = by_length[prefixlen]
            have = same_length.get(first)
            if have is None or route.metric < have.metric:
                same_length[first] = route
        self._by_length = dict(by_length)
        self._lengths = sorted(by_length, reverse=True)

    def lookup(self, value: int) -> Route | None:
        width = bits(self.family)
        for prefixlen in self._lengths:
            host_bits = width - prefixlen
            route = self._by_length[prefixlen].get((value >> host_bits) << host_bits)
            if route is not None:
                return route
        return None


@dataclass(frozen=True, slots=True)
class SnapshotIndex:
    """The index. Build it with `index(snapshot)`; all mappings are read-only by convention."""

    snapshot: Snapshot
    namespaces: dict[int, NamespaceState]
    links: dict[tuple[int, str], Link]
    ports: dict[tuple[int, str], tuple[Link, ...]]
    owners: dict[str, tuple[tuple[int, Address], ...]]  # address → where it is configured
    segment_ids: dict[InterfaceRef, int]
    segment_members: dict[int, tuple[InterfaceRef, ...]]
    # VXLAN device → (its underlay namespace, the underlay interface that carries its outer
    # packets, "" when unknown)
    carriers: dict[InterfaceRef, tuple[int | None, str]]
    # Memos filled on first use (rules ask about a few namespaces of a big snapshot); they
    # only ever cache what the snapshot already determines, so the index stays pure.
    _tables: dict[tuple[int, int, int], RouteTable] = field(default_factory=dict)
    _defaults: dict[tuple[int, int], Route | None] = field(default_factory=dict)
    _by_dst: dict[int, dict[str, list[Route]]] = field(default_factory=dict)
    _by_table: dict[int, dict[tuple[int, int], list[Route]]] = field(default_factory=dict)
    _rules: dict[tuple[int, int], tuple[PolicyRule, ...]] = field(default_factory=dict)
    _macvlans: dict[InterfaceRef | None, list[InterfaceRef]] = field(default_factory=dict)
    _broadcasts: dict[int, dict[int, Address]] = field(default_factory=dict)
    _sysctls: dict[int, dict[str, str]] = field(default_factory=dict)

    def namespace(self, ns_id: int) -> NamespaceState | None:
        return self.namespaces.get(ns_id)

    def sysctl(self, ns_id: int, name: str) -> str | None:
        """A namespace's sysctl ("net.ipv4.ip_forward" → "1"), None when not read. Indexed
        on first use: the flow engine asks at every hop, and a host with 1000 veths has
        6000 per-interface sysctls to look through."""
        found = self._sysctls.get(ns_id)
        if found is None:
            state = self.namespaces.get(ns_id)
            found = self._sysctls[ns_id] = {s.name: s.value for s in state.sysctls} \
                if state is not None else {}
        return found.get(name)

    def ref(self, ns_id: int) -> NamespaceRef | None:
        state = self.namespaces.get(ns_id)
        return state.ref if state else None

    def link(self, ns_id: int, name: str) -> Link | None:
        return self.links.get((ns_id, name))

    def peer(self, ns_id: int, link: Link) -> tuple[int, Link] | None:
        """The other end of a veth, when its namespace is in the snapshot."""
        if link.kind != "veth" or not link.peer_name:
            return None
        peer_ns = ns_id if link.peer_namespace is None else link.peer_namespace
        peer = self.links.get((peer_ns, link.peer_name))
        return (peer_ns, peer) if peer is not None else None

    def lower(self, ns_id: int, link: Link) -> InterfaceRef | None:
        """A macvlan's lower device, the one it sends and receives by (in its namespace, or
        where it was created before it moved into a container's)."""
        if link.kind != "macvlan":
            return None
        if link.parent:
            return InterfaceRef(ns_id, link.parent)
        if link.peer_name and link.peer_namespace is not None:
            return InterfaceRef(link.peer_namespace, link.peer_name)
        return None

    def broadcast_holder(self, ns_id: int, dst: str) -> Address | None:
        """The namespace's IPv4 address whose subnet has `dst` as its broadcast address (the
        kernel adds a broadcast route for it; /31 and /32 have none), or None — the first
        such address, as the kernel's local table has it. Indexed on first use: it is asked
        at every route decision, and a host may hold thousands of addresses."""
        found = self._broadcasts.get(ns_id)
        if found is None:
            found = self._broadcasts[ns_id] = {}
            state = self.namespaces.get(ns_id)
            for address in state.addresses if state is not None else ():
                if address.family != 4 or address.prefixlen > 30:
                    continue
                host = (1 << (32 - address.prefixlen)) - 1
                if address.broadcast:
                    found.setdefault(ip_int(address.broadcast)[1], address)
                found.setdefault(ip_int(address.address)[1] | host, address)
        if ":" in dst:
            return None
        return found.get(ip_int(dst)[1])

    def macvlans_on(self, lower: InterfaceRef) -> list[InterfaceRef]:
        """The macvlan devices on a lower device."""
        if not self._macvlans:  # filled once: the key None says it was, even with none found
            self._macvlans[None] = []
            if any(link.kind == "macvlan" for link in self.links.values()):
                for (ns_id, name), link in self.links.items():
                    found = self.lower(ns_id, link)
                    if found is not None:
                        self._macvlans.setdefault(found, []).append(InterfaceRef(ns_id, name))
        return self._macvlans.get(lower, [])

    def bridge_ports(self, ns_id: int, bridge: str) -> tuple[Link, ...]:
        return self.ports.get((ns_id, bridge), ())

    def segment(self, ns_id: int, link: str) -> tuple[InterfaceRef, ...]:
        """Every interface on the same L2 segment (veth pairs, bridges, macvlans, one VNI)."""
        seg = self.segment_ids.get(InterfaceRef(ns_id, link))
        return self.segment_members[seg] if seg is not None else (InterfaceRef(ns_id, link),)

    def same_segment(self, a: InterfaceRef, b: InterfaceRef) -> bool:
        if a == b:
            return True
        seg = self.segment_ids.get(a)
        return seg is not None and seg == self.segment_ids.get(b)

    def attached(self, ns_id: int, link: str) -> tuple[NamespaceRef, ...]:
        """The other namespaces on this interface's L2 segment: the containers on a bridge."""
        ids = {e.namespace for e in self.segment(ns_id, link) if e.namespace != ns_id}
        return tuple(sorted((self.namespaces[i].ref for i in ids if i in self.namespaces),
                            key=lambda ref: ref.display))

    def segments(self) -> tuple[tuple[InterfaceRef, ...], ...]:
        return tuple(self.segment_members.values())

    def table(self, ns_id: int, family: int = 4, table: int = MAIN_TABLE) -> RouteTable:
        key = (ns_id, family, table)
        found = self._tables.get(key)
        if found is None:  # built on first use: most rules only ask a few namespaces
            found = RouteTable(family, self.routes_in(ns_id, family, table))
            self._tables[key] = found
        return found

    def routes_in(self, ns_id: int, family: int, table: int) -> list[Route]:
        """The namespace's routes of `family` in `table` (of any type), in table order.

        Sorted into their tables in one pass on first use: a route decision looks in the
        local, main and default tables, and a BGP-fed host holds a million routes."""
        by_table = self._by_table.get(ns_id)
        if by_table is None:
            filing: dict[tuple[int, int], list[Route]] = defaultdict(list)
            state = self.namespaces.get(ns_id)
            for route in state.routes if state is not None else ():
                filing[route.family, route.table].append(route)
            # stored whole (a TUI worker may ask at the same time), as a plain dict: asking
            # about an empty table must not add it
            by_table = self._by_table[ns_id] = dict(filing)
        return by_table.get((family, table), [])

    def policy_rules(self, ns_id: int, family: int) -> tuple[PolicyRule, ...]:
        """The namespace's policy rules (`ip rule`) of `family` in the order the kernel tries
        them (by priority; equal ones as read), none when none were read. Sorted on first
        use: every route decision goes through them."""
        key = (ns_id, family)
        found = self._rules.get(key)
        if found is None:
            state = self.namespaces.get(ns_id)
            found = self._rules[key] = tuple(sorted(
                (r for r in (state.rules if state is not None else ()) if r.family == family),
                key=lambda r: r.priority))
        return found

    def has_routes(self, ns_id: int, family: int, table: int) -> bool:
        """Whether the namespace has any route of `family` in `table`, of any type."""
        return bool(self.routes_in(ns_id, family, table))

    def lookup_route(self, ns_id: int, address: str, table: int = MAIN_TABLE) -> Route | None:
        family, value = ip_int(address)
        return self.table(ns_id, family, table).lookup(value)

    def routes_to(self, ns_id: int, dst: str) -> list[Route]:
        """Every route of a namespace (any table) whose destination is exactly `dst`."""
        by_dst = self._by_dst.get(ns_id)
        if by_dst is None:  # one pass over the strings, no parsing: cheap even for 1M routes
            by_dst = defaultdict(list)
            state = self.namespaces.get(ns_id)
            for route in state.routes if state else ():
                by_dst[route.dst].append(route)
            self._by_dst[ns_id] = by_dst
        return by_dst.get(dst, [])

    def default_route(self, ns_id: int, family: int = 4) -> Route | None:
        """The main table's default route (lowest metric): from the table's own list of
        them (lookups build that table anyway; it is split, not parsed, when big)."""
        key = (ns_id, family)
        if key not in self._defaults:
            defaults = [r for r in self.table(ns_id, family).defaults if r.type == "unicast"]
            self._defaults[key] = min(defaults, key=lambda r: r.metric, default=None)
        return self._defaults[key]

    def default_egress(self, ns_id: int, family: int = 4) -> tuple[Route, Link] | None:
        """The default route and the interface it leaves by."""
        route = self.default_route(ns_id, family)
        if route is None:
            return None
        link = self.links.get((ns_id, _route_dev(route)))
        return (route, link) if link is not None else None

    def egress(self, ns_id: int, address: str) -> tuple[Route, Link] | None:
        """The route and the interface a namespace sends traffic for `address` out of."""
        route = self.lookup_route(ns_id, address)
        if route is None:
            return None
        link = self.links.get((ns_id, _route_dev(route)))
        return (route, link) if link is not None else None

    def owners_of(self, address: str) -> tuple[tuple[int, Address], ...]:
        return self.owners.get(address, ())

    def owner_seen_from(self, ns_id: int, address: str) -> tuple[int, Address] | None:
        """The holder of `address` that traffic from `ns_id` actually reaches: itself, or the
        one on the L2 segment its route to the address leaves by. Private addresses repeat
        across hosts (every Docker host has 172.17.0.1), so the first holder would often be
        the wrong one; None when no holder is on that path, or the path is unknown."""
        owners = self.owners_of(address)
        for owner in owners:
            if owner[0] == ns_id:
                return owner
        found = self.egress(ns_id, address) if owners else None
        if found is None:
            return None
        _, link = found
        for owner in owners:
            if self.same_segment(InterfaceRef(ns_id, link.name),
                                 InterfaceRef(owner[0], owner[1].ifname)):
                return owner
        return None

    def underlay(self, ns_id: int, vxlan: Link) -> int | None:
        """The namespace a VXLAN device's encapsulated packets are routed in.

        That is the namespace the device was created in: its own when it holds the device's
        `local` address, the one its link-netnsid was resolved to (`peer_namespace`), the
        only holder of its `local` address, its own when it never moved (no link-netnsid),
        and otherwise the host's (where Docker creates overlay VXLAN devices before moving
        them).
        """
        if vxlan.vxlan is None:
            return None
        return _underlay_of(self.namespaces, self.owners, ns_id, vxlan)

    def on_paths_of(self, chosen: Iterable[int]) -> frozenset[int]:
        """The chosen namespaces and every namespace on their paths: what `check --ns`
        reports about.

        That is each namespace on an L2 segment of a chosen one (veth peers, the bridge's
        host, the other containers on that bridge, and across an overlay its other hosts'
        sandboxes and containers), and for every VXLAN device on those segments the
        namespace its packets are routed in (the underlay) with the namespaces on the
        segment of the interface that carries them (the switch, the other hosts).
        """
        reached = set(chosen)
        segments: set[int] = set()
        for ns_id in chosen:
            state = self.namespaces.get(ns_id)
            for link in state.links if state else ():
                segment = self.segment_ids.get(InterfaceRef(ns_id, link.name))
                if segment is not None:
                    segments.add(segment)
        for segment in segments:
            for member in self.segment_members[segment]:
                reached.add(member.namespace)
                underlay, device = self.carriers.get(member, (None, ""))
                if underlay in self.namespaces:
                    reached.add(underlay)
                    if device:
                        reached.update(e.namespace for e in self.segment(underlay, device))
        return frozenset(reached)

    def overlay(self, ns_id: int, vxlan: Link) -> int | None:
        """An id of the overlay a VXLAN device belongs to (the same for all its devices)."""
        return self.segment_ids.get(InterfaceRef(ns_id, vxlan.name))


def _route_dev(route: Route) -> str:
    return route.dev or (route.nexthops[0][1] if route.nexthops else "")


def index(snapshot: Snapshot) -> SnapshotIndex:
    """The SnapshotIndex of a snapshot; every rule in one engine run shares the same one."""
    return _LAST.index(snapshot)


class _LastIndex:
    """A one-slot cache keyed by identity: all rules of a run ask for the same snapshot, and
    building the index of a big host costs more than any single rule.

    The slot is one (snapshot, index) tuple, read once and replaced whole, so threads asking
    about different snapshots at once (the TUI's workers) each get their own snapshot's index:
    at worst one of them builds it again.
    """

    __slots__ = ("_entry",)

    def __init__(self) -> None:
        self._entry: tuple[Snapshot | None, SnapshotIndex | None] = (None, None)

    def index(self, snapshot: Snapshot) -> SnapshotIndex:
        cached, built = self._entry
        if cached is snapshot and built is not None:
            return built
        built = _build(snapshot)
        self._entry = (snapshot, built)
        return built


_LAST = _LastIndex()


def _build(snapshot: Snapshot) -> SnapshotIndex:
    namespaces = {state.ref.id: state for state in snapshot.namespaces}
    links: dict[tuple[int, str], Link] = {}
    ports: dict[tuple[int, str], list[Link]] = defaultdict(list)
    owners: dict[str, list[tuple[int, Address]]] = defaultdict(list)
    for ns_id, state in namespaces.items():
        for link in state.links:
            links[(ns_id, link.name)] = link
            if link.master:
                ports[(ns_id, link.master)].append(link)
        for address in state.addresses:
            owners[address.address].append((ns_id, address))
    segment_ids, members, carriers = _segments(namespaces, links, owners)
    return SnapshotIndex(snapshot=snapshot, namespaces=namespaces, links=links,
                    ports={key: tuple(value) for key, value in ports.items()},
                    owners={key: tuple(value) for key, value in owners.items()},
                    segment_ids=segment_ids, segment_members=members, carriers=carriers)


def _segments(namespaces: dict[int, NamespaceState], links: dict[tuple[int, str], Link],
              owners: dict[str, list[tuple[int, Address]]]
              ) -> tuple[dict[InterfaceRef, int], dict[int, tuple[InterfaceRef, ...]],
                         dict[InterfaceRef, tuple[int | None, str]]]:
    """Union-find over interfaces joined at layer 2.

    First everything a cable joins (bridge ports, veth pairs, macvlans and their parents);
    then the VXLAN devices of one overlay (`_same_overlay`).
    """
    parent: dict[InterfaceRef, InterfaceRef] = {}

    def find(item: InterfaceRef) -> InterfaceRef:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(a: InterfaceRef, b: InterfaceRef) -> None:
        parent[find(a)] = find(b)

    vxlans: list[tuple[InterfaceRef, Link]] = []
    for (ns_id, name), link in links.items():
        here = InterfaceRef(ns_id, name)
        find(here)
        if link.master:
            union(here, InterfaceRef(ns_id, link.master))
        if link.kind == "veth" and link.peer_name:
            peer_ns = ns_id if link.peer_namespace is None else link.peer_namespace
            if (peer_ns, link.peer_name) in links:
                union(here, InterfaceRef(peer_ns, link.peer_name))
        if link.kind == "macvlan" and link.parent:
            union(here, InterfaceRef(ns_id, link.parent))
        elif link.kind == "macvlan" and link.peer_name and link.peer_namespace is not None:
            union(here, InterfaceRef(link.peer_namespace, link.peer_name))  # moved into a container
        if link.vxlan is not None:
            vxlans.append((here, link))
    # Overlays are joined from what the cabled segments alone show, before any of them is.
    carriers = _carriers(namespaces, links, owners, vxlans)
    for a, b in _same_overlay(namespaces, owners, vxlans, carriers, find):
        union(a, b)
    groups: dict[InterfaceRef, list[InterfaceRef]] = defaultdict(list)
    for item in list(parent):
        groups[find(item)].append(item)
    segment_ids: dict[InterfaceRef, int] = {}
    members: dict[int, tuple[InterfaceRef, ...]] = {}
    for number, group in enumerate(groups.values()):
        members[number] = tuple(sorted(group, key=lambda e: (e.namespace, e.link)))
        for item in group:
            segment_ids[item] = number
    return segment_ids, members, carriers


def _carriers(namespaces: dict[int, NamespaceState], links: dict[tuple[int, str], Link],
              owners: dict[str, list[tuple[int, Address]]],
              vxlans: list[tuple[InterfaceRef, Link]]
              ) -> dict[InterfaceRef, tuple[int | None, str]]:
    """Each VXLAN device's underlay namespace and the interface there that carries it."""
    tables: dict[tuple[int, int], RouteTable] = {}
    found: dict[InterfaceRef, tuple[int | None, str]] = {}
    for here, link in vxlans:
        underlay = _underlay_of(namespaces, owners, here.namespace, link)
        state = namespaces.get(underlay) if underlay is not None else None
        remotes = _remotes(namespaces[here.namespace], link)
        device = _underlay_device(state, link, remotes[:1], links, tables) if state else ""
        found[here] = (underlay, device)
    return found


def _same_overlay(namespaces: dict[int, NamespaceState],
                  owners: dict[str, list[tuple[int, Address]]],
                  vxlans: list[tuple[InterfaceRef, Link]],
                  carriers: dict[InterfaceRef, tuple[int | None, str]],
                  find) -> Iterator[tuple[InterfaceRef, InterfaceRef]]:
    """Pairs of VXLAN devices that are one overlay.

    An overlay is not a VNI: two independent Swarms on one machine both start at VNI 4096. Two
    devices of one VNI and UDP port are one overlay when
    * one sends to the other: a remote VTEP of one (its `remote`, or an FDB entry's `dst`) is
      held by the other's underlay namespace — the holder its underlay reaches by its route
      (addresses repeat across separate underlays), or the only holder when none is on that
      path (the hosts of a fleet snapshot share no cable);
    * or their outer packets leave on one underlay segment (or from one namespace);
    * or neither knows any remote VTEP yet, and they belong to the same lab and Docker
      networks: nothing else tells them apart.
    """
    roots: dict[InterfaceRef, list[InterfaceRef]] = defaultdict(list)
    for ns_id, state in namespaces.items():
        for link in state.links:
            roots[find(InterfaceRef(ns_id, link.name))].append(InterfaceRef(ns_id, link.name))

    def members(root: InterfaceRef) -> list[InterfaceRef]:
        return roots.get(root, [])

    by_vni: dict[tuple[int, int], list[tuple[InterfaceRef, Link]]] = defaultdict(list)
    for here, link in vxlans:
        by_vni[(link.vxlan.vni, link.vxlan.dstport)].append((here, link))
    tables: dict[tuple[int, int], RouteTable] = {}
    for devices in by_vni.values():
        if len(devices) < 2:
            continue
        by_underlay: dict[int, list[InterfaceRef]] = defaultdict(list)
        for here, _ in devices:
            if carriers[here][0] is not None:
                by_underlay[carriers[here][0]].append(here)
        where: dict[tuple, InterfaceRef] = {}
        no_remote: dict[tuple, InterfaceRef] = {}
        for here, link in devices:
            underlay, device = carriers[here]
            remotes = _remotes(namespaces[here.namespace], link)
            place = ("segment", find(InterfaceRef(underlay, device))) if device \
                else ("namespace", underlay)
            yield here, where.setdefault(place, here)
            if not remotes:
                ref = namespaces[here.namespace].ref
                yield here, no_remote.setdefault((ref.lab, ref.docker_networks), here)
            for remote in remotes:
                holder = _vtep_holder(namespaces, owners, underlay, remote, tables, find,
                                      members)
                for other in by_underlay.get(holder, ()) if holder is not None else ():
                    yield here, other


def _vtep_holder(namespaces: dict[int, NamespaceState],
                 owners: dict[str, list[tuple[int, Address]]], underlay: int | None,
                 remote: str, tables, find, members) -> int | None:
    """The namespace holding VTEP address `remote` as seen from `underlay`: the holder on
    the segment its route to `remote` leaves by, when that segment reaches other namespaces
    of the snapshot (a cable netdiag can see); else the only holder (a physical NIC, whose
    other end is on another machine: the hosts of a fleet snapshot)."""
    holders = owners.get(remote, ())
    if underlay is None or underlay not in namespaces:
        return holders[0][0] if len(holders) == 1 else None
    device = _route_device(namespaces[underlay], remote, tables)
    segment = find(InterfaceRef(underlay, device)) if device else None
    for holder, address in holders:
        if segment is not None and find(InterfaceRef(holder, address.ifname)) == segment:
            return holder
    cabled = segment is not None and any(e.namespace != underlay for e in members(segment))
    return holders[0][0] if len(holders) == 1 and not cabled else None


def _underlay_of(namespaces: dict[int, NamespaceState],
                 owners: dict[str, list[tuple[int, Address]]], ns_id: int, vxlan: Link
                 ) -> int | None:
    """The namespace a VXLAN device's encapsulated packets are routed in
    (SnapshotIndex.underlay)."""
    info = vxlan.vxlan
    holders = [owner_ns for owner_ns, _ in owners.get(info.local, ())] if info.local else []
    if ns_id in holders:
        return ns_id
    if vxlan.peer_namespace is not None:
        return vxlan.peer_namespace
    if len(holders) == 1:  # addresses repeat across hosts: only a sole holder is certain
        return holders[0]
    if vxlan.parent_netnsid is None:
        return ns_id
    for state in namespaces.values():
        if state.ref.kind is NsKind.HOST:
            return state.ref.id
    return None


def remote_vteps(state: NamespaceState, vxlan: Link) -> list[str]:
    """The remote VTEPs a device sends to (unicast): its `remote`, its FDB entries' dst."""
    return [address for address in _remotes(state, vxlan) if not is_multicast(address)]


def _remotes(state: NamespaceState, vxlan: Link) -> list[str]:
    """The remote VTEPs a device sends to: its `remote` or group, and its FDB entries' dst."""
    info = vxlan.vxlan
    found = [info.remote or info.group] if info.remote or info.group else []
    found += [e.dst for e in state.fdb if e.ifname == vxlan.name and e.dst]
    return list(dict.fromkeys(found))


def _underlay_device(underlay: NamespaceState, vxlan: Link, remote: list[str],
                     links: dict[tuple[int, str], Link], tables) -> str:
    """The interface of the underlay namespace that carries the device's outer packets: the
    one holding its local address, its `dev`, or the one the route to `remote` leaves by."""
    info = vxlan.vxlan
    ns_id = underlay.ref.id
    if info.local:
        for address in underlay.addresses:
            if address.address == info.local:
                return address.ifname
    if info.dev and (ns_id, info.dev) in links:
        return info.dev
    return _route_device(underlay, remote[0], tables) if remote else ""


def _route_device(state: NamespaceState, address: str, tables) -> str:
    """The interface a namespace's main table sends `address` out of ("" if none)."""
    try:
        family, value = ip_int(address)
    except ValueError:
        return ""
    key = (state.ref.id, family)
    if key not in tables:
        tables[key] = RouteTable(family, (r for r in state.routes
                                          if r.family == family and r.table == MAIN_TABLE))
    route = tables[key].lookup(value)
    return _route_dev(route) if route is not None else ""


def is_container(ref: NamespaceRef) -> bool:
    """A namespace an application runs in (a container or a lab node), not the host's."""
    return ref.kind is not NsKind.HOST
