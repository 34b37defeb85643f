"""A packet's way through the namespaces of a snapshot, and its reply's way back.

The walk follows what the kernel does:

* sent from a namespace: OUTPUT (raw, mangle, nat, filter), routing with policy rules (again
  if OUTPUT's DNAT changed the destination), POSTROUTING, then out of the route's device;
* on the wire: the next hop's holder is found on the device's layer-2 segment — through veth
  pairs and bridges, where the bridge checks its ports (state, hairpin, the FDB) and, with
  `bridge-nf-call-iptables`, runs the namespace's PREROUTING, FORWARD and POSTROUTING with
  `physdev` for frames it bridges; nftables' `bridge` tables judge the frames a bridge
  forwards, passes up or sends, and `netdev` tables those a device receives or sends;
* arriving: rp_filter, PREROUTING (DNAT), routing, then INPUT and a listening socket — or
  forwarding (`ip_forward` and the interface's `forwarding`), FORWARD, POSTROUTING (SNAT,
  MASQUERADE, to the address the kernel's masquerade picks: a packet leaving by lo takes
  another device's global address), the MTU with DF, and the next segment;
* 127.0.0.0/8 stays on lo unless route_localnet is on for the device: a loopback source
  routed out of another device (after an OUTPUT DNAT of 127.0.0.1:PORT), or a loopback source
  or destination arriving by one, is dropped as the kernel's routing drops it.

A frame into a VXLAN device is encapsulated to the VTEP its forwarding entry names, and the
outer UDP packet walks the underlays like any other packet. NAT is remembered per namespace
as conntrack would, so the reply (ESTABLISHED, no nat table) is translated back where the
forward packet was translated. A packet that leaves what the snapshot holds (a NIC whose other
end is not in it) ends there as `unknown`, and its reply is simulated coming back in. A macvlan
sends straight to its siblings in bridge mode and otherwise out of its lower device's wire,
never up into the lower device; frames arriving on the lower device reach its macvlans.

IPv6 takes the same way with the kernel's IPv6 differences: its own policy rules and tables,
source address selection (RFC 6724's rules as the kernel applies them), neighbour discovery
for ARP, `net.ipv6.conf.all.forwarding` (or an in-interface's `force_forwarding`) to forward,
no forwarding of a link-local source, no fragmenting by routers (a packet bigger than the next
link's MTU is dropped with Packet Too Big; only its sender fragments), ip6tables and the
`ip6`/`inet` nftables chains, and no rp_filter (IPv6 has none; netfilter's rpfilter is a rule).
Special destinations: the unspecified address (0.0.0.0, ::) is the sender itself, as the
kernel's connect makes it (127.0.0.1, ::1); a broadcast or a multicast group is not a flow
with one end, so its answer is `unknown`, saying what the address is — except an IPv4 group
no route covers, which the kernel refuses (ENETUNREACH): no-route; and an echo request to
all nodes (ff02::1) or all hosts (224.0.0.1), whose first answer is the sender's own: it is a
member of the group on the way out, the kernel loops a copy back (IP_MULTICAST_LOOP) and
answers it unless it ignores echoes to a group (net.ipv6.icmp.echo_ignore_multicast, default
0; net.ipv4.icmp_echo_ignore_broadcasts, default 1 — a value the snapshot did not read is
the default); when the sender ignores it, whether a neighbour answers is `unknown`. An
IPv4-mapped IPv6 destination (::ffff:10.0.0.1) is the IPv4 flow it stands for. A link-local
IPv6 destination needs its interface (fe80::1%eth0), as a socket does.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import replace

from netdiag.flows import nftables, routing
from netdiag.flows.netfilter import (
    ACCEPT,
    CONNTRACK_NAT,
    DROP,
    EVERY_PRIORITY,
    Netfilter,
    PacketPlace,
)
from netdiag.flows.packet import (
    BRIDGE,
    CONNTRACK,
    DELIVERED,
    DENIED,
    FIREWALL,
    FORWARDING,
    HAIRPIN,
    LINK_DOWN,
    LOOP,
    MTU,
    NEIGHBOUR,
    NEIGHBOUR_UNREACHABLE,
    NO_LISTENER,
    NO_ROUTE,
    NULL_ROUTED,
    ROUTE,
    RP_FILTER,
    SOCKET,
    TOO_BIG,
    UNKNOWN,
    UNMODELLED,
    Drop,
    Flow,
    Hop,
    Packet,
    PathResult,
    StepKind,
    Trace,
    TraceStep,
)
from netdiag.model import Link, NamespaceState, Snapshot
from netdiag.model.facts import VXLAN_OVERHEAD, WILDCARD_ADDRESSES, primary_address
from netdiag.model.index import (
    InterfaceRef,
    SnapshotIndex,
    index,
    ip_int,
    is_link_local_ipv6,
    is_multicast,
    network_interval,
)

MAX_HOPS = 64  # the default TTL: a packet still moving after that many routers is in a loop
BRIDGE_NF = "net.bridge.bridge-nf-call-iptables"
BRIDGE_NF6 = "net.bridge.bridge-nf-call-ip6tables"  # the same switch for IPv6 frames
ALL_NODES = ("224.0.0.1", "ff02::1")  # every multicast-capable interface has joined them
# family → the switch that makes the kernel ignore an echo to a group, and its default
# (net/ipv4/icmp.c icmp_rcv: RTCF_MULTICAST too; net/ipv6/icmp.c icmpv6_echo_reply)
ECHO_IGNORE_GROUP = {4: ("net.ipv4.icmp_echo_ignore_broadcasts", "1"),
                     6: ("net.ipv6.icmp.echo_ignore_multicast", "0")}

Binding = tuple[str, Packet, Packet]  # ("dnat" | "snat", before, after)

# A stop's cause when its site does not name another (a DENIED that is not netfilter's does).
_CAUSE = {DENIED: FIREWALL, NO_ROUTE: ROUTE, NULL_ROUTED: ROUTE, LOOP: ROUTE,
          NEIGHBOUR_UNREACHABLE: NEIGHBOUR, TOO_BIG: MTU, NO_LISTENER: SOCKET,
          UNKNOWN: UNMODELLED}


def _local_route(table, address: str) -> bool:
    """Whether table local holds the kernel's `local ADDRESS` route."""
    route = table.lookup(ip_int(address)[1])
    return route is not None and route.type == "local" and \
        route.dst.split("/")[0] == address


class Engine:
    """The flow engine over one snapshot: `path(source, packet)` for any number of flows."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.topo: SnapshotIndex = index(snapshot)
        self.netfilter = Netfilter()
        self.no_sockets = {g.namespace for g in snapshot.gaps if g.collector == "sockets"}
        self._local: dict[int, frozenset[str]] = {}
        self._interface_addresses: dict[tuple[int, str, str, int], str] = {}
        # per namespace, by device: a host has 1000s of addresses, asked at every hop
        self._addresses4: dict[int, dict[str, list]] = {}
        self._primary4: dict[int, dict[str, list]] = {}

    def local_addresses(self, state: NamespaceState) -> frozenset[str]:
        """The namespace's own addresses (addrtype LOCAL, fib type local, rp_filter), indexed
        on first use. An IPv6 one only once the kernel has taken it up: the kernel asks table
        local, which has no route for an address on a link without carrier (or tentative),
        where the snapshot holds table local's IPv6 routes at all."""
        found = self._local.get(state.ref.id)
        if found is None:
            local6 = self.topo.table(state.ref.id, 6, routing.LOCAL_TABLE) \
                if any(a.family == 6 for a in state.addresses) else None
            read = local6 is not None and _local_route(local6, "::1")  # lo's: table read

            def taken_up(address: str) -> bool:
                return not read or _local_route(local6, address)

            found = self._local[state.ref.id] = frozenset(
                a.address for a in state.addresses if a.family == 4 or taken_up(a.address))
        return found

    def interface_address(self, state: NamespaceState, dev: str, near: str = "",
                          family: int = 4) -> str:
        """interface_address, remembered: a host's thousand veths give it a thousand
        link-local addresses to look through, at every hop of every flow."""
        key = (state.ref.id, dev, near, family)
        found = self._interface_addresses.get(key)
        if found is None:
            by_device = self._addresses4.get(state.ref.id)
            if by_device is None and family == 4:
                by_device = self._addresses4[state.ref.id] = _by_device(
                    a for a in state.addresses if a.family == 4)
            found = self._interface_addresses[key] = interface_address(state, dev, near, family,
                                                                       by_device)
        return found

    def masquerade_source(self, state: NamespaceState, dev: str, near: str, family: int
                          ) -> str:
        """masquerade_source, remembered beside interface_address."""
        key = (state.ref.id, dev, "masquerade " + near, family)
        found = self._interface_addresses.get(key)
        if found is None:
            primary = self._primary4.get(state.ref.id)
            if primary is None and family == 4:
                primary = self._primary4[state.ref.id] = _by_device(
                    a for a in _primary4(state) if a.scope == "global")
            found = self._interface_addresses[key] = masquerade_source(state, dev, near, family,
                                                                       primary)
        return found

    def path(self, source: int, packet: Packet, exit_at: tuple[int, str] | None = None
             ) -> PathResult:
        """The fate of `packet` sent from namespace `source` (its src chosen by routing when
        empty), and of its reply. A packet that leaves what the snapshot holds — by a device
        whose other end is not in it, or by `exit_at` (namespace, device) — ends there
        (unknown); its reply is then simulated coming back in by that device."""
        state = self.topo.namespace(source)
        packet = _canonical(packet)
        if ip_int(packet.dst)[1] == 0:  # 0.0.0.0 or ::: connect() makes it the loopback
            packet = replace(packet, dst=packet.src if packet.family == 4 and packet.src
                             else routing.LOOPBACK[packet.family])
        if not packet.src:
            packet = replace(packet, src=self.source_address(source, packet.dst, packet.scope))
        flow = Flow(state.ref, packet)
        leg = _Leg(self, {}, exit_at=exit_at)
        forward = leg.send(source, packet)
        if forward.exited is not None:
            ns_id, device, left = forward.exited
            back = _Leg(self, leg.bindings, reply_to=(source, packet))
            reply = back.arrive(ns_id, self.topo.link(ns_id, device), left.swapped())
            return PathResult(flow, forward, reply)
        if forward.disposition != DELIVERED:
            return PathResult(flow, forward, None)
        back = _Leg(self, leg.bindings, reply_to=(source, packet))
        reply = back.send(forward.namespace, _reply(forward, packet))
        return PathResult(flow, forward, reply)

    def arriving(self, ns_id: int, link: str, packet: Packet) -> PathResult:
        """The fate of `packet` arriving from beyond the snapshot on interface `link` of
        namespace `ns_id` (a client on the host's network), and of its reply, which is
        delivered when it leaves by that interface towards the client."""
        state = self.topo.namespace(ns_id)
        packet = _canonical(packet)
        device = self.topo.link(ns_id, link)
        flow = Flow(state.ref, packet)
        leg = _Leg(self, {})
        forward = leg.arrive(ns_id, device, packet)
        if forward.disposition != DELIVERED:
            return PathResult(flow, forward, None)
        back = _Leg(self, leg.bindings, reply_to=(ns_id, packet), reply_by=link)
        reply = back.send(forward.namespace, _reply(forward, packet))
        return PathResult(flow, forward, reply)

    def fib(self, ns_id: int):
        """nftables' fib lookup in a namespace: (dst, src, iif, mark) → the device of a
        unicast route to dst, or "" (no route, or one that is not unicast)."""
        def lookup(dst: str, src: str, iif: str, mark: int) -> str:
            decision = routing.decide(self.topo, ns_id, dst, src, iif, mark)
            return decision.dev if decision.kind == "unicast" else ""
        return lookup

    def source_address(self, ns_id: int, dst: str, scope: str = "") -> str:
        """The address the kernel would send from: the route's preferred source, else an
        address of its device (in the next hop's subnet first), else any of the namespace
        (IPv6: the kernel's source address selection)."""
        try:
            decision = group_route(self.topo, ns_id, dst, scope) if ":" in dst and \
                is_multicast(dst) else routing.decide(self.topo, ns_id, dst, scope=scope)
        except ValueError:
            return ""
        state = self.topo.namespace(ns_id)
        if decision.route is not None and decision.route.prefsrc:
            return decision.route.prefsrc
        if decision.kind == "local":
            return dst
        if ":" in dst:
            return select_source(state, dst, decision.dev)
        return interface_address(state, decision.dev, decision.next_hop(dst)) or \
            primary_address(state)


def group_route(topo: SnapshotIndex, ns_id: int, group: str, scope: str) -> routing.Decision:
    """The route of an IPv6 packet to `group`: the multicast route ff00::/8 the kernel puts
    in table local for each interface (by `scope`, if there is one); a snapshot without
    table local is routed as for any other destination."""
    if not topo.has_routes(ns_id, 6, routing.LOCAL_TABLE):
        return routing.decide(topo, ns_id, group, scope=scope)
    for route in topo.routes_to(ns_id, "ff00::/8"):
        if route.type == "multicast" and route.table == routing.LOCAL_TABLE and \
                scope in ("", route.dev):
            return routing.Decision("multicast", route, routing.LOCAL_TABLE)
    return routing.Decision("none")


def _canonical(packet: Packet) -> Packet:
    """The addresses as the snapshot writes them (fd00:0::2 is fd00::2), a link-local
    destination's scope (fe80::1%eth0) moved to the packet's `scope`; an IPv4-mapped
    destination (::ffff:10.0.0.1) is the IPv4 flow the kernel sends for it."""
    dst, _, scope = packet.dst.partition("%")
    src = packet.src.partition("%")[0]
    if ":" not in dst:
        return packet
    address = ipaddress.IPv6Address(dst)
    if address.ipv4_mapped is not None:
        mapped = ipaddress.IPv6Address(src).ipv4_mapped if ":" in src else None
        return replace(packet, dst=str(address.ipv4_mapped),
                       src=str(mapped) if mapped else "" if ":" in src else src)
    return replace(packet, dst=str(address), src=str(ipaddress.IPv6Address(src)) if src else "",
                   scope=scope or packet.scope)


def _reply(forward: Trace, sent: Packet) -> Packet:
    """The reply to a delivered packet; to a link-local source, by the interface the packet
    came in on (the socket's scope). An IPv6 echo reply is as big as the request as it was
    sent: its fragments were put together again (an IPv4 one may be fragmented on its way)."""
    reply = forward.delivered_as.swapped()
    if is_multicast(reply.src):  # the sender answered its own echo to a group, from itself
        reply = replace(reply, src=reply.dst)
    if reply.family == 6:
        reply = replace(reply, size=sent.size)
    if is_link_local_ipv6(reply.dst) and forward.hops:
        reply = replace(reply, scope=forward.hops[-1].into)
    return reply


def interface_address(state: NamespaceState, dev: str, near: str = "", family: int = 4,
                      addresses4: dict[str, list] | None = None) -> str:
    """An address of `dev`: IPv4, the one whose subnet holds `near`, else its first; IPv6,
    the one the kernel's source address selection picks for `near` out of `dev` (which may
    be another interface's, as for MASQUERADE), or `dev`'s link-local one without `near`.
    `addresses4`: the IPv4 addresses _by_device, when the caller keeps them."""
    if family == 6:
        return select_source(state, near or "fe80::", dev, only_dev=not near)
    found = addresses4.get(dev, ()) if addresses4 is not None else \
        [a for a in state.addresses if a.ifname == dev and a.family == 4]
    if near:
        for address in found:
            if routing.within(near, address.cidr):
                return address.address
    return found[0].address if found else ""


def masquerade_source(state: NamespaceState, dev: str, near: str, family: int,
                      primary4: dict[str, list] | None = None) -> str:
    """The source MASQUERADE gives a packet leaving by `dev` towards `near` (IPv4: the next
    hop; IPv6: the destination). IPv4 as nf_nat_masquerade_ipv4 asks inet_select_addr(dev,
    next hop, RT_SCOPE_UNIVERSE): a primary global-scope address of `dev`, the first whose
    subnet holds the next hop, else its first; when `dev` has none (lo: 127.0.0.1 is scope
    host), the first primary global-scope address of any device, lo first and then in the
    order of the kernel's device list (ifindex order: a device joins the list's end). So the
    host's own packet to its bridge address leaves lo masqueraded to its uplink's address.
    IPv6 as nf_nat_masquerade_ipv6 asks ipv6_dev_get_saddr: source address selection for
    the destination, over every device's addresses. `primary4`: the global-scope ones of
    _primary4(state) _by_device, when the caller keeps them."""
    if family == 6:
        return interface_address(state, dev, near, 6)
    if primary4 is None:
        primary4 = _by_device(a for a in _primary4(state) if a.scope == "global")
    own = primary4.get(dev)
    if own:
        return next((a.address for a in own if near and routing.within(near, a.cidr)),
                    own[0].address)
    # a device's addresses share its ifindex: the lowest device's first, as over them all
    firsts = [addresses[0] for addresses in primary4.values()]
    return min(firsts, key=lambda a: a.ifindex).address if firsts else ""


def _by_device(addresses) -> dict[str, list]:
    """`addresses` by device name, each device's in their order."""
    found: dict[str, list] = {}
    for address in addresses:
        found.setdefault(address.ifname, []).append(address)
    return found


def _primary4(state: NamespaceState) -> list:
    """The IPv4 addresses that are not secondary: the kernel marks an address secondary
    when an earlier one on its device has the same subnet (inet_insert_ifa), and lists a
    device's addresses in that order."""
    primary, subnets = [], set()
    for address in (a for a in state.addresses if a.family == 4):
        # integers, not ipaddress (40x slower): asked at every masquerade, of every address
        subnet = (address.ifname, network_interval(address.cidr))
        if subnet not in subnets:
            subnets.add(subnet)
            primary.append(address)
    return primary


def proxy_answers(state: NamespaceState, device: str, address: str) -> bool:
    """Does the VXLAN device `device`, in proxy mode, answer ARP or a neighbour solicitation
    for `address`? Only from a neighbour entry of its own in a connected state (vxlan_core.c's
    arp_reduce and neigh_reduce ask NUD_CONNECTED: permanent, noarp or reachable; a request
    they cannot answer is dropped)."""
    return any(n.ifname == device and n.address == address and n.mac
               and {"permanent", "noarp", "reachable"} & set(n.state) for n in state.neighbours)


def select_source(state: NamespaceState, dst: str, dev: str, only_dev: bool = False) -> str:
    """The IPv6 source address the kernel picks for `dst` out of `dev` (ipv6_dev_get_saddr,
    RFC 6724 section 5): the destination itself, then an address of a scope no smaller than
    the destination's (the smallest such; else the largest), not deprecated, on `dev`, with
    the longest prefix in common. A link-local destination takes only `dev`'s addresses, as
    `only_dev` asks; an address whose duplicate address detection failed is never used."""
    dst_scope = _scope6(dst)
    _, dst_value = ip_int(dst)
    local_only = only_dev or dst_scope <= _SCOPE6["link"]
    candidates = [a for a in state.addresses if a.family == 6 and "dadfailed" not in a.flags
                  and "tentative" not in a.flags and (a.ifname == dev or not local_only)]

    def rank(address) -> tuple:
        scope = _scope6(address.address)
        _, value = ip_int(address.address)
        common = 128 - (value ^ dst_value).bit_length()
        return (address.address == dst,
                scope >= dst_scope, -scope if scope >= dst_scope else scope,
                "deprecated" not in address.flags, address.ifname == dev,
                min(common, address.prefixlen))

    best = max(candidates, key=rank, default=None)
    return best.address if best is not None else ""


# The scope of an IPv6 unicast address, as the kernel ranks them (larger is wider).
_SCOPE6 = {"host": 1, "link": 2, "global": 14}


def _scope6(address: str) -> int:
    _, value = ip_int(address.partition("%")[0])
    if value == 1:
        return _SCOPE6["host"]
    if is_link_local_ipv6(address) or value >> 120 == 0xFF and value >> 112 & 0xF == 2:
        return _SCOPE6["link"]
    return _SCOPE6["global"]


def _broadcast_of_what(topo: SnapshotIndex, ns_id: int, decision: routing.Decision, dst: str
                       ) -> str:
    """"the broadcast address of 10.0.0.0/24 (on eth0)", or of the whole network."""
    if dst == routing.LIMITED_BROADCAST:
        return "the limited broadcast address (every host of the link)"
    holder = topo.broadcast_holder(ns_id, dst)
    if holder is None:
        return f"a broadcast address here ({decision.text})"
    return f"the broadcast address of {ipaddress.ip_interface(holder.cidr).network} (on " \
           f"{holder.ifname})"


def _route_mtu(link: Link, decision: routing.Decision) -> int:
    """The MTU a packet routed out of `link` meets: the device's, or the route's if smaller."""
    return min(link.mtu, decision.route.mtu or link.mtu) if decision.route else link.mtu


class _Stop(Exception):  # noqa: N818 - control flow inside one leg, never leaves this module
    def __init__(self, disposition: str, drop: Drop | None = None,
                 delivered: tuple[int, Packet] | None = None,
                 exited: tuple[int, str, Packet] | None = None):
        super().__init__(disposition)
        self.disposition, self.drop, self.delivered = disposition, drop, delivered
        self.exited = exited


class _Leg:
    """One direction of a flow: its hops, and the NAT bindings it made or undoes."""

    def __init__(self, engine: Engine, bindings: dict[int, list[Binding]],
                 reply_to: tuple[int, Packet] | None = None, reply_by: str = "",
                 tunnel: tuple[int, int] | None = None,
                 exit_at: tuple[int, str] | None = None):
        self.engine, self.topo = engine, engine.topo
        self.exit_at = exit_at
        self.bindings = bindings
        self.tunnel = tunnel  # an encapsulated packet: (the far VTEP's namespace, its port)
        self.reply_to = reply_to  # the original flow, when this leg is its reply
        self.reply_by = reply_by  # the interface the original came in by, from outside
        self.hops: list[Hop] = []
        self.translations: list[Binding] = []  # the NAT this leg met (bindings: all legs')
        self.routed = 0
        self.family = 4  # of the leg's packets (a tunnel's outer packets are a leg of their own)

    # --- the leg as a whole -------------------------------------------------------------

    def send(self, ns_id: int, packet: Packet) -> Trace:
        self.family = packet.family
        return self._run(lambda: self._originate(ns_id, packet), ns_id)

    def arrive(self, ns_id: int, link: Link, packet: Packet) -> Trace:
        self.family = packet.family
        return self._run(lambda: self._receive(ns_id, link, packet), ns_id)

    def _run(self, walk, ns_id: int) -> Trace:
        try:
            walk()
            raise _Stop(UNKNOWN, self._drop(ns_id, "walk", "the walk ended without a verdict"))
        except _Stop as stop:
            ns, delivered = stop.delivered or (0, None)
            return Trace(stop.disposition, tuple(self.hops), stop.drop, delivered, ns,
                         stop.exited, tuple(self.translations))

    def _hop(self, ns_id: int, into: str = "") -> Hop:
        hop = Hop(self.topo.ref(ns_id), into)
        self.hops.append(hop)
        return hop

    def _drop(self, ns_id: int, where: str, reason: str, rule: str = "",
              cause: str = UNMODELLED) -> Drop:
        return Drop(self.topo.ref(ns_id), where, reason, rule, cause)

    def _stop(self, disposition: str, ns_id: int, where: str, reason: str, rule: str = "",
              cause: str = "") -> _Stop:
        """The walk ends here; `cause` defaults to what the disposition implies."""
        self.hops[-1].steps.append(TraceStep(StepKind.DROP, reason, rule))
        return _Stop(disposition, self._drop(ns_id, where, reason, rule,
                                             cause or _CAUSE[disposition]))

    # --- the IP layer -----------------------------------------------------------------------

    def _where(self, state: NamespaceState, in_if: str = "", out_if: str = "",
               near: str = "", **bridge) -> PacketPlace:
        family = self.family
        return PacketPlace(in_if=in_if, out_if=out_if, local=self.engine.local_addresses(state),
                     in_address=self.engine.interface_address(state, in_if, "", family)
                     if in_if else "",
                     out_address=self.engine.masquerade_source(state, out_if, near, family)
                     if out_if else "", fib_dev=self.engine.fib(state.ref.id), **bridge)

    def _hook(self, state: NamespaceState, hop: Hop, hook: str, packet: Packet,
              where: PacketPlace, priorities: tuple[int, int] = EVERY_PRIORITY) -> Packet:
        outcome = self.engine.netfilter.run_hook(state, hook, packet, where, priorities)
        hop.steps += outcome.steps
        ns_id = state.ref.id
        if outcome.verdict == DROP:
            raise self._stop(DENIED, ns_id, outcome.where, outcome.reason, outcome.rule)
        if outcome.verdict != ACCEPT:
            raise self._stop(UNKNOWN, ns_id, outcome.where, outcome.reason, outcome.rule)
        if outcome.nat is not None:
            self.bindings.setdefault(ns_id, []).append(outcome.nat)
            self.translations.append(outcome.nat)
        return outcome.packet

    def _route(self, state: NamespaceState, hop: Hop, packet: Packet, iif: str
               ) -> routing.Decision:
        ns_id = state.ref.id
        looped = self._echo_to_all_nodes(packet, iif)
        if packet.family == 6 and is_multicast(packet.dst) and not looped:
            # ff00::/8 is in every IPv6 interface's local table: it is sent, to a group
            raise self._stop(UNKNOWN, ns_id, "route", f"{packet.dst} is an IPv6 multicast "
                             "group: a packet to it reaches every member on the way, or none; "
                             "not a unicast flow, which is what the path model follows")
        if packet.family == 6 and is_link_local_ipv6(packet.dst) and iif == "lo" and \
                not packet.scope and packet.dst not in self.engine.local_addresses(state):
            raise self._stop(UNKNOWN, ns_id, "route", f"{packet.dst} is link-local: the "
                             "kernel needs its interface to send to it (fe80::1%eth0); "
                             "without one a socket's connect fails (EINVAL)")
        martian = routing.martian_loopback(self.topo, ns_id, packet.src, packet.dst, iif) \
            if packet.family == 4 else ""
        if martian:
            raise self._stop(DENIED, ns_id, "route", martian, cause=ROUTE)
        decision = group_route(self.topo, ns_id, packet.dst, packet.scope) \
            if looped and packet.family == 6 else \
            routing.decide(self.topo, ns_id, packet.dst, packet.src, iif, packet.mark,
                           packet.scope)
        if decision.kind == "none":
            raise self._stop(NO_ROUTE, ns_id, "route", f"no route to {packet.dst}")
        if decision.kind in ("blackhole", "unreachable", "prohibit"):
            raise self._stop(NULL_ROUTED, ns_id, "route",
                             f"{decision.kind} route to {packet.dst}: {decision.text}",
                             decision.text)
        if decision.kind == "multicast" and looped:
            hop.steps.append(TraceStep(StepKind.ROUTE, f"{packet.dst}: {decision.text}: all "
                                       "nodes of the link, the sender among them: the kernel "
                                       "loops a copy back to it (IP_MULTICAST_LOOP); each "
                                       "neighbour that does not ignore it answers too",
                                       decision.rule))
            return replace(decision, kind="local")
        if decision.kind in ("multicast", "anycast"):
            what = "a multicast group: a packet to it reaches every member on the way, or " \
                "none" if decision.kind == "multicast" else \
                "a subnet-router anycast address (any router of the subnet answers)"
            raise self._stop(UNKNOWN, ns_id, "route", f"{packet.dst} is {what}; not a unicast "
                             "flow, which is what the path model follows", decision.text)
        if decision.kind == "broadcast":
            # A broadcast reaches every host of the segment, or none (TCP does not connect to
            # one, UDP needs SO_BROADCAST, ping -b): not a flow with one end to follow.
            what = _broadcast_of_what(self.topo, ns_id, decision, packet.dst)
            raise self._stop(UNKNOWN, ns_id, "route",
                             f"{packet.dst} is {what}"
                             ": a broadcast is not a unicast flow, which is what the path "
                             "model follows", decision.text)
        hop.steps.append(TraceStep(StepKind.ROUTE, f"{packet.dst}: {decision.text}", decision.rule))
        refused = routing.loopback_source_refused(self.topo, ns_id, packet.src, decision.dev) \
            if iif == "lo" and decision.kind == "unicast" else ""
        if refused:
            raise self._stop(DENIED, ns_id, "route", refused, cause=ROUTE)
        return decision

    def _echo_to_all_nodes(self, packet: Packet, iif: str) -> bool:
        """Is `packet` an echo request the sender sends to the all-nodes (all-hosts) group?"""
        return iif == "lo" and packet.proto == "icmp" and packet.dst in ALL_NODES and \
            self.reply_to is None and self.tunnel is None

    def _originate(self, ns_id: int, packet: Packet) -> None:
        state = self.topo.namespace(ns_id)
        hop = self._hop(ns_id)
        hop.steps.append(TraceStep(StepKind.SEND, packet.text))
        packet = self._unsnat(ns_id, hop, packet)
        decision = self._route(state, hop, packet, "lo")
        # the looped copy of an echo to a group goes out and comes in by the group's device
        local = decision.dev if is_multicast(packet.dst) else "lo"
        where = self._where(state, out_if=decision.dev if decision.kind != "local" else local)
        before = packet
        packet = self._hook(state, hop, "OUTPUT", packet, where)
        if packet.dst != before.dst:
            decision = self._route(state, hop, packet, "lo")
            local = decision.dev if is_multicast(packet.dst) else "lo"
        if decision.kind == "local":  # through lo: POSTROUTING, then INPUT (conntrack knows it)
            hop.out = local
            packet = self._hook(state, hop, "POSTROUTING", packet,
                                self._where(state, out_if=local))
            self._input(state, hop, packet, local)
        self._postrouting_and_out(state, hop, packet, decision)

    def _receive(self, ns_id: int, link: Link, packet: Packet, via_port: str = "") -> None:
        state = self.topo.namespace(ns_id)
        if packet.scope:  # a link-local scope is the sender's; here the arrival decides
            packet = replace(packet, scope="")
        hop = self._hop(ns_id, link.name)
        if not link.admin_up:
            raise self._stop(DENIED, ns_id, link.name, f"{link.name} is down", cause=LINK_DOWN)
        # Through a bridge with bridge-nf-call-iptables, PREROUTING sees the port it came by.
        via_port = via_port if self._bridge_nf(state) else ""
        where = self._where(state, in_if=link.name, physdev_in=via_port)
        # raw and mangle see the packet as it arrived; conntrack gives a reply its un-NATed
        # destination at the NAT priority, before the nat table and routing.
        packet = self._hook(state, hop, "PREROUTING", packet, where,
                            (EVERY_PRIORITY[0], CONNTRACK_NAT))
        packet = self._unsnat(ns_id, hop, packet)
        self._rp_filter(state, hop, packet, link)
        before = packet
        packet = self._hook(state, hop, "PREROUTING", packet, where,
                            (CONNTRACK_NAT, EVERY_PRIORITY[1]))
        if packet.dst != before.dst:
            hop.steps.append(TraceStep(StepKind.CONNTRACK, f"connection tracked as {before.text} ⇒ "
                                               f"{packet.text}"))
        if via_port:  # br_netfilter ran PREROUTING from the bridge's prerouting hook
            packet = self._up_from_port(ns_id, via_port, link.name, packet, nftables.BRNF_AFTER)
        decision = self._route(state, hop, packet, link.name)
        if decision.kind == "local":
            self._input(state, hop, packet, link.name)
        self._forward(state, hop, packet, link, decision, via_port)

    def _input(self, state: NamespaceState, hop: Hop, packet: Packet, in_if: str) -> None:
        packet = self._hook(state, hop, "INPUT", packet, self._where(state, in_if=in_if))
        packet = self._undnat(state.ref.id, hop, packet)
        self._deliver(state, hop, packet)

    def _forward(self, state: NamespaceState, hop: Hop, packet: Packet, link: Link,
                 decision: routing.Decision, via_port: str) -> None:
        ns_id = state.ref.id
        if packet.family == 6:
            self._forward6(state, hop, packet, link, decision)
        elif self.topo.sysctl(ns_id, "net.ipv4.ip_forward") == "0":
            raise self._stop(DENIED, ns_id, "forwarding",
                             f"net.ipv4.ip_forward is 0: {state.ref.display} does not forward",
                             cause=FORWARDING)
        per_link = self.topo.sysctl(ns_id, f"net.ipv4.conf.{link.name}.forwarding")
        if per_link == "0" and packet.family == 4:
            raise self._stop(DENIED, ns_id, "forwarding",
                             f"net.ipv4.conf.{link.name}.forwarding is 0", cause=FORWARDING)
        self.routed += 1
        if self.routed > MAX_HOPS:
            raise self._stop(LOOP, ns_id, "route", f"still routed after {MAX_HOPS} routers: "
                                                   "a routing loop")
        packet = self._hook(state, hop, "FORWARD", packet, self._where(
            state, in_if=link.name, out_if=decision.dev))
        self._postrouting_and_out(state, hop, packet, decision, via_port)

    def _forward6(self, state: NamespaceState, hop: Hop, packet: Packet, link: Link,
                  decision: routing.Decision) -> None:
        """ip6_forward's checks before the FORWARD hook: forwarding on (`all`, or the
        in-interface's force_forwarding), no link-local source leaving its link, and the
        next link's MTU (routers never fragment IPv6)."""
        ns_id = state.ref.id
        if self.topo.sysctl(ns_id, "net.ipv6.conf.all.forwarding") == "0" and \
                self.topo.sysctl(ns_id, f"net.ipv6.conf.{link.name}.force_forwarding") != "1":
            raise self._stop(DENIED, ns_id, "forwarding",
                             f"net.ipv6.conf.all.forwarding is 0: {state.ref.display} does "
                             "not forward IPv6", cause=FORWARDING)
        if is_link_local_ipv6(packet.src) and decision.dev != link.name:
            raise self._stop(DENIED, ns_id, "forwarding",
                             f"the source {packet.src} is link-local: it is not forwarded "
                             f"off {link.name} (ICMPv6 beyond scope)", cause=ROUTE)
        out = self.topo.link(ns_id, decision.dev)
        if out is not None and packet.size:
            mtu = _route_mtu(out, decision)
            if packet.size > mtu:
                raise self._stop(TOO_BIG, ns_id, out.name, f"{packet.size} bytes do not fit "
                                 f"the MTU {mtu} of {out.name}: IPv6 routers never fragment, "
                                 "the sender gets ICMPv6 Packet Too Big")

    def _postrouting_and_out(self, state: NamespaceState, hop: Hop, packet: Packet,
                             decision: routing.Decision, via_port: str = "") -> None:
        ns_id = state.ref.id
        next_hop = decision.next_hop(packet.dst)
        # A forwarded packet still has its in-interface at POSTROUTING (nftables' iifname
        # sees it: Docker 29 picks its masquerade chain by it); a local one has none.
        # MASQUERADE takes the address masquerade_source picks: the out-interface's for the
        # next hop (IPv4; lo's packets another device's), or source address selection's for
        # the destination (IPv6)
        near = packet.dst if packet.family == 6 else next_hop
        packet = self._hook(state, hop, "POSTROUTING", packet, self._where(
            state, in_if=hop.into, out_if=decision.dev, near=near))
        packet = self._undnat(ns_id, hop, packet)
        hop.out = decision.dev
        if self.reply_by and decision.dev == self.reply_by and self._answers(ns_id, packet):
            hop.steps.append(TraceStep(
                StepKind.DELIVER, f"the reply leaves by {decision.dev} towards "
                                             f"{packet.dst}, where the flow came from"))
            raise _Stop(DELIVERED, None, (ns_id, packet))
        link = self.topo.link(ns_id, decision.dev)
        if link is None:
            raise self._stop(UNKNOWN, ns_id, decision.dev, f"device {decision.dev} is not in "
                                                            "the snapshot")
        mtu = _route_mtu(link, decision)
        if packet.size and packet.df and packet.size > mtu:
            raise self._stop(TOO_BIG, ns_id, link.name, f"{packet.size} bytes with DF do not "
                             f"fit the MTU {mtu} of {link.name}: the sender gets ICMP "
                             "fragmentation-needed")
        if packet.size > mtu:
            hop.steps.append(TraceStep(
                StepKind.MTU, f"{packet.size} bytes fragmented to fit the MTU "
                                              f"{mtu} of {link.name}"))
            packet = replace(packet, size=mtu)
        self._transmit(ns_id, link, packet, next_hop, via_port)

    def _listener(self, state: NamespaceState, packet: Packet):
        """The socket a packet to `packet.dst:dport` is delivered to: bound to that address
        or to a wildcard; an IPv6 packet only to an IPv6 socket, an IPv4 one to either (an
        IPv6 wildcard socket takes IPv4 too unless IPV6_V6ONLY)."""
        for sock in state.sockets:
            if sock.protocol != packet.proto or sock.port != packet.dport:
                continue
            if packet.family != sock.family and (sock.family == 4 or sock.v6only):
                continue
            if sock.address in WILDCARD_ADDRESSES or sock.address.partition("%")[0] == packet.dst:
                return sock
        return None

    def _deliver(self, state: NamespaceState, hop: Hop, packet: Packet) -> None:
        ns_id = state.ref.id
        if self.reply_to is not None:
            if self._answers(ns_id, packet):
                hop.steps.append(TraceStep(
                    StepKind.DELIVER, f"the reply reaches the sender's socket "
                                                 f"({packet.text})"))
                raise _Stop(DELIVERED, None, (ns_id, packet))
            raise self._stop(DENIED, ns_id, "conntrack", f"the reply {packet.text} arrives in "
                             f"{state.ref.display}, which did not send the flow",
                             cause=CONNTRACK)
        if self.tunnel is not None:
            if (ns_id, packet.dport) == self.tunnel and packet.proto == "udp":
                hop.steps.append(TraceStep(
                    StepKind.DELIVER, f"the VXLAN socket on udp {packet.dport} "
                                                 "takes the packet"))
                raise _Stop(DELIVERED, None, (ns_id, packet))
            raise self._stop(NEIGHBOUR_UNREACHABLE, ns_id, "vxlan",
                             f"the encapsulated packet arrives in {state.ref.display}, which "
                             "has no VXLAN device of that overlay")
        if packet.proto == "icmp":
            ignore = "net.ipv4.icmp_echo_ignore_all" if packet.family == 4 else \
                "net.ipv6.icmp.echo_ignore_all"
            if self.topo.sysctl(ns_id, ignore) == "1":
                raise self._stop(NO_LISTENER, ns_id, "icmp",
                                 f"{ignore.rsplit('.', 1)[1]} is 1")
            if is_multicast(packet.dst):  # icmp_rcv, icmpv6_echo_reply
                ignore, default = ECHO_IGNORE_GROUP[packet.family]
                value = self.topo.sysctl(ns_id, ignore)
                if (value or default) == "1":
                    raise self._stop(UNKNOWN, ns_id, "icmp", f"{packet.dst} is a multicast "
                                     f"group (all nodes) and {ignore} is 1"
                                     f"{'' if value else ' (the default; not read)'}: the "
                                     "sender ignores an echo to a group; whether a neighbour "
                                     "on the link answers is not followed")
            hop.steps.append(TraceStep(StepKind.DELIVER, f"the kernel answers the echo request to "
                                             f"{packet.dst}"))
            raise _Stop(DELIVERED, None, (ns_id, packet))
        if ns_id in self.engine.no_sockets:
            raise self._stop(UNKNOWN, ns_id, "sockets", "the namespace's sockets were not read")
        sock = self._listener(state, packet)
        if sock is None:
            raise self._stop(NO_LISTENER, ns_id, "socket",
                             f"nothing listens on {packet.proto} {packet.dst}:{packet.dport} in "
                             f"{state.ref.display}")
        owner = f"{sock.process} (pid {sock.pid})" if sock.pid else (sock.process or "a socket")
        bound = f"[{sock.address}]" if ":" in sock.address else sock.address or "*"
        hop.steps.append(TraceStep(StepKind.DELIVER, f"{owner} listens on {sock.protocol} "
                                         f"{bound}:{sock.port}"))
        raise _Stop(DELIVERED, None, (ns_id, packet))

    def _answers(self, ns_id: int, packet: Packet) -> bool:
        """Is `packet`, in namespace `ns_id`, the reply to this leg's original flow there?"""
        if self.reply_to is None:
            return False
        origin, original = self.reply_to
        # an echo to a group is answered from a member's own address (ping takes any)
        return ns_id == origin and packet.dst == original.src and \
            packet.dport == original.sport and \
            (packet.src == original.dst or is_multicast(original.dst))

    def _rp_filter(self, state: NamespaceState, hop: Hop, packet: Packet, link: Link) -> None:
        values = [self.topo.sysctl(state.ref.id, "net.ipv4.conf.all.rp_filter"),
                  self.topo.sysctl(state.ref.id, f"net.ipv4.conf.{link.name}.rp_filter")]
        mode = max((int(v) for v in values if v and v.isdigit()), default=0)
        if mode == 0 or packet.family == 6 or packet.src in self.engine.local_addresses(state):
            return
        back = routing.decide(self.topo, state.ref.id, packet.src, packet.dst, "lo")
        if back.kind != "unicast" or (mode == 1 and back.dev != link.name):
            raise self._stop(DENIED, state.ref.id, "rp_filter",
                             f"rp_filter={mode}: the way back to {packet.src} is "
                             f"{'not via ' + link.name if back.kind == 'unicast' else 'missing'}",
                             cause=RP_FILTER)

    def _bridge_nf(self, state: NamespaceState) -> bool:
        return self.topo.sysctl(state.ref.id, BRIDGE_NF if self.family == 4 else BRIDGE_NF6) == "1"

    # --- conntrack's NAT, undone for the reply ------------------------------------------------

    def _unsnat(self, ns_id: int, hop: Hop, packet: Packet) -> Packet:
        """A reply to a connection this namespace source-NATed gets its destination back
        (where the kernel does it: PREROUTING, or OUTPUT for a reply sent from here)."""
        return self._untranslate(ns_id, hop, packet, "snat")

    def _undnat(self, ns_id: int, hop: Hop, packet: Packet) -> Packet:
        """A reply from a connection this namespace destination-NATed gets its source back
        (POSTROUTING, or INPUT for a reply delivered here)."""
        return self._untranslate(ns_id, hop, packet, "dnat")

    def _untranslate(self, ns_id: int, hop: Hop, packet: Packet, kind: str) -> Packet:
        for made, before, after in self.bindings.get(ns_id, ()) if self.reply_to else ():
            if made == kind and packet.src == after.dst and packet.dst == after.src and \
                    packet.sport == after.dport and packet.dport == after.sport:
                restored = replace(packet, dst=before.src, dport=before.sport) \
                    if kind == "snat" else replace(packet, src=before.dst, sport=before.dport)
                hop.steps.append(TraceStep(
                    StepKind.CONNTRACK, f"reply: {packet.text} ⇒ {restored.text}"))
                return restored
        return packet

    # --- layer 2 ------------------------------------------------------------------------------

    def _transmit(self, ns_id: int, link: Link, packet: Packet, next_hop: str,
                  ingress_port: str = "") -> None:
        """Out of `link` towards the holder of `next_hop` on its segment."""
        hop = self.hops[-1]
        if self.exit_at == (ns_id, link.name) and self.reply_to is None:
            raise self._exit(ns_id, link, packet, next_hop)
        if link.kind == "loopback":
            raise self._stop(UNKNOWN, ns_id, link.name, "loopback routed without a local route")
        if not link.admin_up:
            raise self._stop(NEIGHBOUR_UNREACHABLE, ns_id, link.name, f"{link.name} is down",
                             cause=LINK_DOWN)
        if link.oper_state == "down" or link.oper_state == "lowerlayerdown":
            raise self._stop(NEIGHBOUR_UNREACHABLE, ns_id, link.name,
                             f"{link.name} has no carrier (its other end is down)",
                             cause=LINK_DOWN)
        path = self._segment_path(ns_id, link, next_hop)
        across = self._across(ns_id, link, next_hop, packet.dst) if path is None else None
        if across is not None:
            there, there_link = across
            hop.steps.append(TraceStep(StepKind.WIRE, f"{link.name} leads off node "
                                          f"{self.topo.ref(ns_id).machine}; {packet.dst} is on "
                                          f"{there_link.name} of {self.topo.ref(there).display}"
                                          " (the network between the nodes is not read: taken "
                                          "to deliver)"))
            self._receive(there, there_link, packet)
            return
        if path is None and self._beyond(ns_id, link) and self.reply_to is None:
            raise self._exit(ns_id, link, packet, next_hop)
        if path is None:
            raise self._stop(*self._no_holder(ns_id, link, next_hop))
        hop.steps.append(TraceStep(StepKind.NEIGHBOUR, f"{next_hop} is held by {path[-1].link} in "
                                           f"{self.topo.ref(path[-1].namespace).display}"))
        if packet.family == 6 and not {"NOARP", "LOOPBACK"} & set(link.flags):
            self._solicit(ns_id, link, path[-1], packet, next_hop)
        self._carry(path, packet, ingress_port, next_hop)

    def _solicit(self, ns_id: int, link: Link, holder: InterfaceRef, packet: Packet,
                 next_hop: str) -> None:
        """IPv6 neighbour discovery passes the IP layer's hooks of both ends (ARP does not):
        the neighbour solicitation the kernel makes goes out through OUTPUT and POSTROUTING
        and comes in through the holder's PREROUTING and INPUT, its advertisement back the
        same way. Conntrack leaves both untracked (nf_conntrack_proto_icmpv6.c: noct_valid_new),
        so `ct state established,related` does not let them in, and NAT does not see them."""
        state, there = self.topo.namespace(ns_id), self.topo.namespace(holder.namespace)
        cached = next((n for n in state.neighbours if n.ifname == link.name and
                       n.address == next_hop and not {"failed", "incomplete"} & set(n.state)),
                      None)
        # ndisc_solicit: the packet's source if it is on the device, else its link-local one
        own = any(a.address == packet.src and a.ifname == link.name for a in state.addresses)
        source = packet.src if own else interface_address(state, link.name, "", 6) or "::"
        group = ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) |
                                      int(ipaddress.IPv6Address(next_hop)) & 0xFFFFFF)
        untracked = frozenset((ns_id, holder.namespace))
        solicit = Packet(source, str(group), "icmp", ctstate="UNTRACKED", untracked=untracked,
                         icmp_type="nd-neighbor-solicit")
        advert = Packet(next_hop, source, "icmp", ctstate="UNTRACKED", untracked=untracked,
                        icmp_type="nd-neighbor-advert")
        for what, probe, sender, sent_by, receiver, came_by in (
                ("solicitation", solicit, state, link.name, there, holder.link),
                ("advertisement", advert, there, holder.link, state, link.name)):
            for hook, where in (("OUTPUT", PacketPlace(out_if=sent_by)),
                                ("POSTROUTING", PacketPlace(out_if=sent_by)),
                                ("PREROUTING", PacketPlace(in_if=came_by)),
                                ("INPUT", PacketPlace(in_if=came_by))):
                at = sender if hook in ("OUTPUT", "POSTROUTING") else receiver
                where = replace(where, local=self.engine.local_addresses(at),
                                fib_dev=self.engine.fib(at.ref.id))
                outcome = self.engine.netfilter.run_hook(at, hook, probe, where)
                if outcome.verdict == ACCEPT:
                    continue
                fate = "dropped" if outcome.verdict == DROP else "of unknown fate"
                if cached is not None:  # the packet goes now; a new resolution would not
                    self.hops[-1].steps.append(TraceStep(
                        StepKind.NEIGHBOUR, f"{next_hop}'s entry is cached "
                        f"({', '.join(cached.state) or 'valid'}): the packet goes; the "
                        f"neighbour {what} that resolves it anew is {fate} by "
                        f"{outcome.rule or outcome.where} in {at.ref.display}", outcome.rule))
                    return
                self.hops[-1].steps.extend(outcome.steps)
                raise self._stop(NEIGHBOUR_UNREACHABLE if outcome.verdict == DROP else UNKNOWN,
                                 at.ref.id, outcome.where,
                                 f"the neighbour {what} for {next_hop} is {fate} by "
                                 f"{outcome.rule or outcome.where} in {at.ref.display}: "
                                 f"{outcome.reason}", outcome.rule)

    def _beyond(self, ns_id: int, link: Link) -> bool:
        """Does `link` lead out of what the snapshot holds (a NIC, a tunnel to elsewhere, a
        macvlan on such a NIC)?"""
        if link.kind == "macvlan":
            lower = self.topo.lower(ns_id, link)
            lower_link = self.topo.link(lower.namespace, lower.link) if lower else None
            return lower_link is None or self._beyond(lower.namespace, lower_link)
        return link.kind in ("device", "tun") and self.topo.peer(ns_id, link) is None

    def _across(self, ns_id: int, link: Link, next_hop: str, dst: str
                ) -> tuple[int, Link] | None:
        """In a fleet snapshot, a packet leaving a node by an interface that leads off it
        (a NIC, or a veth whose other end no agent read) for an address that exactly one other
        node holds on such an interface: where it arrives."""
        here = self.topo.ref(ns_id).machine
        if not here or not self._leads_off(ns_id, link):
            return None
        for address in dict.fromkeys((next_hop, dst)):
            found = {(holder, owned.ifname) for holder, owned in self.topo.owners_of(address)
                     if self.topo.ref(holder).machine not in ("", here)}
            arrivals = [(holder, self.topo.link(holder, name)) for holder, name in found]
            arrivals = [(h, a) for h, a in arrivals if a is not None and self._leads_off(h, a)]
            if len(arrivals) == 1:
                return arrivals[0]
        return None

    def _leads_off(self, ns_id: int, link: Link) -> bool:
        return self._beyond(ns_id, link) or (link.kind == "veth" and
                                             self.topo.peer(ns_id, link) is None)

    def _exit(self, ns_id: int, link: Link, packet: Packet, next_hop: str) -> _Stop:
        reason = (f"leaves by {link.name} towards {next_hop} as {packet.text}: what happens "
                  "beyond is outside what netdiag read")
        self.hops[-1].steps.append(TraceStep(StepKind.EXIT, reason))
        return _Stop(UNKNOWN, self._drop(ns_id, link.name, reason), None,
                     (ns_id, link.name, packet))

    def _no_holder(self, ns_id: int, link: Link, next_hop: str) -> tuple[str, int, str, str]:
        if link.kind in ("vxlan", "ipvlan", "tun", "device") and \
                self.topo.peer(ns_id, link) is None or \
                link.kind == "macvlan" and self._beyond(ns_id, link):
            return (UNKNOWN, ns_id, link.name, f"{next_hop} is beyond {link.name} ({link.kind}),"
                    " which leads out of what the model follows")
        lower = self.topo.lower(ns_id, link)
        if lower is not None and any(a.address == next_hop and a.ifname == lower.link for a in
                                     self.topo.namespace(lower.namespace).addresses):
            return (NEIGHBOUR_UNREACHABLE, ns_id, link.name,
                    f"{next_hop} is on {lower.link} in {self.topo.ref(lower.namespace).display},"
                    f" the lower device of {link.name}: a macvlan never reaches its own lower "
                    "device")
        for sibling in self.topo.macvlans_on(lower) if lower is not None else ():
            if self._holds(sibling, next_hop):
                other = self.topo.link(sibling.namespace, sibling.link)
                modes = {m.macvlan.mode for m in (link, other) if m.macvlan}
                return (NEIGHBOUR_UNREACHABLE, ns_id, link.name,
                        f"{next_hop} is on {sibling.link} in "
                        f"{self.topo.ref(sibling.namespace).display}, a macvlan on the same "
                        f"lower device, but only two in bridge mode reach each other (modes: "
                        f"{', '.join(sorted(modes))})")
        asked = "ARP goes" if ":" not in next_hop else "neighbour solicitation goes"
        return (NEIGHBOUR_UNREACHABLE, ns_id, link.name,
                f"nothing on {link.name}'s segment holds {next_hop}: {asked} unanswered")

    def _segment_path(self, ns_id: int, link: Link, address: str) -> list[InterfaceRef] | None:
        """The interfaces a frame passes from `link` to the interface holding `address`:
        the usual shapes (a veth to its peer, into a bridge and out of another port, to the
        bridge device) straight from the address's holders, else breadth-first through
        veth pairs and bridges."""
        start = InterfaceRef(ns_id, link.name)
        owners = self.topo.owners_of(address)
        if not owners:
            return None  # nobody holds it: no search can find it (a big bridge costs one)
        for holder_ns, holder in owners:
            target = InterfaceRef(holder_ns, holder.ifname)
            if target != start and self._holds(target, address):
                path = self._direct(start, link, target)
                if path is not None:
                    return path
        return self._search(ns_id, link, address)

    def _direct(self, start: InterfaceRef, link: Link, target: InterfaceRef
                ) -> list[InterfaceRef] | None:
        topo = self.topo
        target_link = topo.link(target.namespace, target.link)
        if target_link is None:
            return None
        far = topo.peer(target.namespace, target_link)  # the target's veth peer, if any
        if link.kind == "bridge":  # out of a bridge device, to a port's far end
            if far is not None and far[0] == start.namespace and far[1].master == link.name:
                return [start, InterfaceRef(far[0], far[1].name), target]
            return None
        near = topo.peer(start.namespace, link)
        if near is None:
            return None
        near_ep = InterfaceRef(near[0], near[1].name)
        if near_ep == target:
            return [start, target]
        bridge = near[1].master
        if not bridge:
            return None
        if target.namespace == near[0] and target.link == bridge:
            return [start, near_ep, target]
        if far is not None and far[0] == near[0] and far[1].master == bridge and \
                far[1].name != near[1].name:
            return [start, near_ep, InterfaceRef(far[0], far[1].name), target]
        return None

    def _search(self, ns_id: int, link: Link, address: str) -> list[InterfaceRef] | None:
        start = (InterfaceRef(ns_id, link.name), "start")
        parents: dict[tuple[InterfaceRef, str], tuple[InterfaceRef, str] | None] = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node != start and self._holds(node[0], address):
                path = [node]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])
                return [endpoint for endpoint, _ in reversed(path)]
            for nxt in self._l2_next(*node):
                if nxt not in parents:
                    parents[nxt] = node
                    queue.append(nxt)
        return None

    def _holds(self, here: InterfaceRef, address: str) -> bool:
        link = self.topo.link(here.namespace, here.link)
        if link is None or link.master:
            return False  # a bridge port answers nothing itself
        return routing.holds(self.topo, here.namespace, address, here.link)

    def _l2_next(self, here: InterfaceRef, came: str) -> list[tuple[InterfaceRef, str]]:
        """PacketPlace a frame at `here` goes next, by how it got there: "start" (sent out of it),
        "wire" (arrived over a veth), "bridge" (forwarded to it by its bridge)."""
        link = self.topo.link(here.namespace, here.link)
        if link is None:
            return []
        ns_id = here.namespace
        if link.vxlan is not None and came in ("start", "bridge"):  # into the tunnel
            return [(remote, "tunnel") for remote in self._remote_vteps(here, link)]
        if link.vxlan is not None and came == "tunnel" and link.master:  # out of it
            came = "wire"
        if link.kind == "macvlan" and came == "start":
            return self._macvlan_out(here, link)
        if link.kind == "bridge":  # sent out of the bridge device: to its ports
            if came != "start":
                return []  # arrived from a port: the IP layer takes it
            return [(InterfaceRef(ns_id, p.name), "bridge") for p in self.topo.bridge_ports(
                ns_id, link.name)]
        if link.master and came == "wire":  # into a bridge: its device, or another port
            return [(InterfaceRef(ns_id, link.master), "bridge")] + [
                (InterfaceRef(ns_id, p.name), "bridge")
                for p in self.topo.bridge_ports(ns_id, link.master) if p.name != link.name]
        if came == "wire":  # an interface of the IP layer: the frame ends here, or in one
            return [(child, "lower") for child in self.topo.macvlans_on(here)]  # of its macvlans
        if came == "lower":
            return []
        peer = self.topo.peer(ns_id, link)
        return [(InterfaceRef(peer[0], peer[1].name), "wire")] if peer is not None else []

    def _macvlan_out(self, here: InterfaceRef, link: Link) -> list[tuple[InterfaceRef, str]]:
        """A frame sent out of a macvlan: to a sibling on the same lower device when both are
        in bridge mode (straight across, as the kernel's macvlan does), else out of the
        lower device's wire — never up into the lower device itself (the macvlan's host
        isolation). In vepa mode a sibling is reached only if the switch beyond reflects the
        frame; in private mode not at all."""
        lower = self.topo.lower(here.namespace, link)
        if lower is None:
            return []
        found = []
        mode = link.macvlan.mode if link.macvlan else "vepa"
        if mode == "bridge":
            for sibling in self.topo.macvlans_on(lower):
                other = self.topo.link(sibling.namespace, sibling.link)
                if sibling != here and other is not None and other.macvlan and \
                        other.macvlan.mode == "bridge":
                    found.append((sibling, "lower"))
        lower_link = self.topo.link(lower.namespace, lower.link)
        peer = self.topo.peer(lower.namespace, lower_link) if lower_link else None
        if peer is not None:
            found.append((InterfaceRef(peer[0], peer[1].name), "wire"))
        return found

    def _carry(self, path: list[InterfaceRef], packet: Packet, ingress_port: str,
               next_hop: str = "") -> None:
        """Walk the frame along `path`, hop by hop, with the checks each device makes."""
        packet = self._layer2(path[0].namespace, "netdev", "egress", packet, out_if=path[0].link)
        for i in range(len(path) - 1):
            here, nxt = path[i], path[i + 1]
            here_link = self.topo.link(here.namespace, here.link)
            nxt_link = self.topo.link(nxt.namespace, nxt.link)
            if here_link.vxlan is not None and nxt_link.vxlan is not None:
                self._tunnel(here, here_link, nxt, nxt_link, path[-1], packet, next_hop)
                continue
            if here.namespace != nxt.namespace:  # across a veth pair
                if not nxt_link.admin_up:
                    raise self._stop(NEIGHBOUR_UNREACHABLE, nxt.namespace, nxt.link,
                                     f"{nxt.link}, the other end of {here.link}, is down",
                                     cause=LINK_DOWN)
                self._fits(nxt.namespace, nxt_link, packet, f"the other end of {here.link}")
                packet = self._layer2(nxt.namespace, "netdev", "ingress", packet, nxt.link)
                continue
            if here_link.master and nxt_link.kind == "bridge":  # up from a port to the IP layer
                if self._bridge_nf(self.topo.namespace(nxt.namespace)):  # _receive goes on
                    packet = self._layer2(nxt.namespace, "bridge", "prerouting", packet,
                                          here.link, window=nftables.BRNF_BEFORE)
                else:
                    packet = self._up_from_port(nxt.namespace, here.link, nxt.link, packet)
                continue
            if here_link.kind == "bridge" and nxt_link.master == here_link.name:
                self._bridge_out(nxt.namespace, here_link, nxt_link, packet, ingress_port)
                ingress_port = ""
                continue
            if here_link.master and nxt_link.master == here_link.master:
                packet = self._bridge_between(nxt.namespace, here_link, nxt_link, packet)
        target = path[-1]
        link = self.topo.link(target.namespace, target.link)
        via_port = path[-2].link if len(path) > 1 and link.kind == "bridge" else ""
        self._receive(target.namespace, link, packet, via_port)

    # --- VXLAN ---------------------------------------------------------------------------

    def _remote_vteps(self, here: InterfaceRef, link: Link) -> list[InterfaceRef]:
        """The other VXLAN devices of the same overlay (VNI and port) in the snapshot."""
        found = []
        for member in self.topo.segment(here.namespace, link.name):
            other = self.topo.link(member.namespace, member.link)
            if member != here and other is not None and other.vxlan is not None and \
                    other.vxlan.vni == link.vxlan.vni and \
                    other.vxlan.dstport == link.vxlan.dstport:
                found.append(member)
        return found

    def _tunnel(self, here: InterfaceRef, device: Link, there: InterfaceRef, remote: Link,
                target: InterfaceRef, packet: Packet, next_hop: str) -> None:
        """The frame for `target` into the VXLAN device `device`, encapsulated to the VTEP
        its forwarding entry names, carried through the underlay as a UDP packet (its own
        routing and netfilter, there and at the far end), out of `remote`."""
        ns_id = here.namespace
        state = self.topo.namespace(ns_id)
        hop = self.hops[-1] if self.hops[-1].namespace.id == ns_id else self._hop(ns_id)
        hop.out = device.name
        info = device.vxlan
        if info.proxy and next_hop and not proxy_answers(state, device.name, next_hop):
            asked = "ARP" if ":" not in next_hop else "neighbour solicitations"
            raise self._stop(NEIGHBOUR_UNREACHABLE, ns_id, device.name,
                             f"{device.name} answers {asked} for its overlay from its "
                             f"neighbour entries (proxy), and has none for {next_hop}")
        target_link = self.topo.link(target.namespace, target.link)
        mac = target_link.mac if target_link is not None else ""
        entry = next((e for e in state.fdb if e.ifname == device.name and e.dst
                      and e.mac == mac), None) if mac else None
        vtep = entry.dst if entry else info.remote
        if not vtep:
            raise self._stop(NEIGHBOUR_UNREACHABLE, ns_id, device.name,
                             f"{device.name} has no forwarding entry for {mac or 'the MAC'} "
                             f"of {target.link} and no default remote: the frame is dropped")
        far_underlay = self.topo.underlay(there.namespace, remote)
        if far_underlay is None or not any(
                a.address == vtep for a in self.topo.namespace(far_underlay).addresses):
            raise self._stop(NEIGHBOUR_UNREACHABLE, ns_id, device.name,
                             f"{device.name}'s forwarding entry sends {mac} to VTEP {vtep}, "
                             f"but {target.link} is behind another VTEP")
        underlay = self.topo.underlay(ns_id, device)
        hop.steps.append(TraceStep(StepKind.VXLAN, f"{device.name} (VNI {info.vni}) encapsulates "
                                                   f"for {mac} to VTEP {vtep}:{info.dstport}"))
        outer = Packet(info.local or "", vtep, "udp", info.dstport, info.dstport,
                       size=packet.size + VXLAN_OVERHEAD[6 if ":" in vtep else 4]
                       if packet.size else 0, df=False)
        if not outer.src:
            outer = replace(outer, src=self.engine.source_address(underlay, vtep))
        leg = _Leg(self.engine, {}, tunnel=(far_underlay, info.dstport))
        carried = leg.send(underlay, outer)
        self.hops += list(carried.hops)
        if carried.disposition != DELIVERED:
            raise _Stop(carried.disposition, carried.drop)
        hop = self._hop(there.namespace, remote.name)
        hop.steps.append(TraceStep(StepKind.VXLAN, f"{remote.name} (VNI {remote.vxlan.vni}) "
                                                   f"decapsulates the frame for {mac}"))

    def _bridge_checks(self, ns_id: int, bridge: Link, into: Link | None, out: Link,
                       hairpin_port: str = "") -> None:
        for port in (p for p in (into, out) if p is not None):
            if not port.admin_up:
                raise self._stop(NEIGHBOUR_UNREACHABLE, ns_id, port.name,
                                 f"bridge port {port.name} is down", cause=LINK_DOWN)
            if port.port is not None and port.port.state not in ("forwarding", ""):
                raise self._stop(DENIED, ns_id, port.name,
                                 f"bridge port {port.name} is {port.port.state}", cause=BRIDGE)
        if hairpin_port and out.name == hairpin_port and not (out.port and out.port.hairpin):
            raise self._stop(DENIED, ns_id, out.name,
                             f"{bridge.name} would send the frame back out of {out.name}, "
                             "where it came in, but hairpin mode is off on that port",
                             cause=HAIRPIN)

    def _fits(self, ns_id: int, link: Link, packet: Packet, what: str) -> None:
        """Frames longer than the receiving device's MTU are dropped without a word (no ICMP:
        only routers send fragmentation-needed)."""
        if packet.size and packet.size > link.mtu:
            raise self._stop(TOO_BIG, ns_id, link.name, f"{packet.size} bytes do not fit "
                             f"{link.name} ({what}, MTU {link.mtu}): dropped silently")

    def _bridge_out(self, ns_id: int, bridge: Link, port: Link, packet: Packet,
                    ingress_port: str) -> None:
        hop = self.hops[-1]
        self._bridge_checks(ns_id, bridge, None, port, ingress_port)
        self._fits(ns_id, port, packet, f"a port of {bridge.name}")
        hop.steps.append(TraceStep(StepKind.BRIDGE, f"{bridge.name} forwards to port {port.name}"))
        for family, hook in (("bridge", "output"), ("bridge", "postrouting"), ("netdev", "egress")):
            packet = self._layer2(ns_id, family, hook, packet, out_if=port.name)

    def _layer2(self, ns_id: int, family: str, hook: str, packet: Packet, in_if: str = "",
                out_if: str = "", window: tuple[float, float] = nftables.EVERY_CHAIN) -> Packet:
        """nftables' `bridge` or `netdev` hook for a frame (a netdev one of the device the
        frame comes in or goes out by), its chains of priorities in `window`."""
        state = self.topo.namespace(ns_id)
        if not self.engine.netfilter.has_layer2(state):
            return packet
        outcome = nftables.run_layer2(state, self.engine.netfilter.tables(state), family, hook,
                                      packet, PacketPlace(in_if=in_if, out_if=out_if, local=self
                                                          .engine.local_addresses(state)),
                                      in_if or out_if, window, self._bridge_nf(state))
        self.hops[-1].steps.extend(outcome.steps)
        if outcome.verdict != ACCEPT:
            raise self._stop(DENIED if outcome.verdict == DROP else UNKNOWN, ns_id,
                             outcome.where, outcome.reason, outcome.rule)
        return outcome.packet

    def _up_from_port(self, ns_id: int, port: str, bridge: str, packet: Packet,
                      window: tuple[float, float] = nftables.EVERY_CHAIN) -> Packet:
        """A frame up from a bridge's port to its IP layer: the bridge's prerouting chains
        (of priorities in `window`) and input chains, then the bridge device's ingress."""
        packet = self._layer2(ns_id, "bridge", "prerouting", packet, port, window=window)
        packet = self._layer2(ns_id, "bridge", "input", packet, port)
        return self._layer2(ns_id, "netdev", "ingress", packet, bridge)

    def _bridge_between(self, ns_id: int, into: Link, out: Link, packet: Packet) -> Packet:
        """A frame bridged from port `into` to port `out` (not up to the IP layer)."""
        state = self.topo.namespace(ns_id)
        hop = self._hop(ns_id, into.name)
        hop.out = out.name
        bridge = self.topo.link(ns_id, into.master)
        self._bridge_checks(ns_id, bridge, into, out)
        if into.port is not None and into.port.isolated and out.port is not None and \
                out.port.isolated:
            raise self._stop(DENIED, ns_id, out.name, f"ports {into.name} and {out.name} are "
                                                      "both isolated", cause=BRIDGE)
        hop.steps.append(TraceStep(StepKind.BRIDGE, f"{bridge.name}: {into.name} → {out.name}"))
        self._fits(ns_id, out, packet, f"a port of {bridge.name}")
        if not self._bridge_nf(state):
            packet = self._layer2(ns_id, "bridge", "prerouting", packet, into.name)
            packet = self._layer2(ns_id, "bridge", "forward", packet, into.name, out.name)
            packet = self._layer2(ns_id, "bridge", "postrouting", packet, out_if=out.name)
            return self._layer2(ns_id, "netdev", "egress", packet, out_if=out.name)
        # br_netfilter runs the IP hooks from the bridge's, between its chains by priority
        before, after = nftables.BRNF_BEFORE, nftables.BRNF_AFTER
        packet = self._layer2(ns_id, "bridge", "prerouting", packet, into.name, window=before)
        packet = self._hook(state, hop, "PREROUTING", packet, self._where(
            state, in_if=bridge.name, physdev_in=into.name))
        packet = self._layer2(ns_id, "bridge", "prerouting", packet, into.name, window=after)
        packet = self._layer2(ns_id, "bridge", "forward", packet, into.name, out.name,
                              window=before)
        packet = self._hook(state, hop, "FORWARD", packet, self._where(
            state, in_if=bridge.name, out_if=bridge.name, physdev_in=into.name,
            physdev_out=out.name, bridged=True))
        packet = self._layer2(ns_id, "bridge", "forward", packet, into.name, out.name,
                              window=after)
        packet = self._layer2(ns_id, "bridge", "postrouting", packet, out_if=out.name)
        packet = self._hook(state, hop, "POSTROUTING", packet, self._where(
            state, out_if=bridge.name, physdev_out=out.name, bridged=True))
        return self._layer2(ns_id, "netdev", "egress", packet, out_if=out.name)
