"""The kernel's route decision for one packet: policy rules in priority order, then the table
each rule points at (longest prefix, lowest metric), `local` table first by the default rules.
IPv4 and IPv6 alike, each with its own rules and tables; a link-local IPv6 destination is
looked up on the interface it is scoped to (`fe80::1%eth0`), as the kernel's strict output
lookup for a socket's scope id does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from netdiag.model import PolicyRule, Route
from netdiag.model.index import (
    TABLE_NAMES,
    SnapshotIndex,
    ip_int,
    is_link_local_ipv6,
    network_interval,
)

# The rules every namespace starts with, when the snapshot has none recorded (IPv6 has no
# `default` table rule).
DEFAULT_RULES = {4: (PolicyRule(4, 0, table=255), PolicyRule(4, 32766, table=254),
                     PolicyRule(4, 32767, table=253)),
                 6: (PolicyRule(6, 0, table=255), PolicyRule(6, 32766, table=254))}
_DROPPING = {"blackhole", "unreachable", "prohibit"}
# Route types that are not one flow to one host: the walk says what they are, not a verdict.
_NOT_UNICAST = {"local", "broadcast", "multicast", "anycast"}
LOCAL_TABLE = 255
LIMITED_BROADCAST = "255.255.255.255"
LOOPBACK = {4: "127.0.0.1", 6: "::1"}
_LOOKED_UP = ("unicast", "blackhole", "unreachable", "prohibit", "local")  # as the index's


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str  # unicast, local, broadcast, multicast, anycast, blackhole, unreachable,
    #            prohibit, none (no route)
    route: Route | None = None
    table: int = 0
    rule: str = ""  # the policy rule that chose the table, as `ip rule` prints it

    @property
    def dev(self) -> str:
        if self.route is None:
            return ""
        return self.route.dev or (self.route.nexthops[0][1] if self.route.nexthops else "")

    def next_hop(self, dst: str) -> str:
        if self.route is None:
            return dst
        if self.route.gateway:
            return self.route.gateway
        return self.route.nexthops[0][0] if self.route.nexthops and \
            self.route.nexthops[0][0] else dst

    @property
    def text(self) -> str:
        if self.route is None:
            return self.rule or "no route"
        r = self.route
        dst = r.dst if r.type == "unicast" else f"{r.type} {r.dst}"
        via = f" via {r.gateway}" if r.gateway else ""
        dev = f" dev {self.dev}" if self.dev else ""
        table = TABLE_NAMES.get(self.table, str(self.table))
        return f"{dst}{via}{dev} (table {table})"


def decide(topo: SnapshotIndex, ns_id: int, dst: str, src: str = "", iif: str = "lo",
           mark: int = 0, scope: str = "") -> Decision:
    """The route for a packet to `dst` (from `src`, arriving on `iif`; "lo" for one sent
    from this namespace; `scope`: the interface a link-local IPv6 `dst` is on)."""
    state = topo.namespace(ns_id)
    family, value = ip_int(dst)
    rules = topo.policy_rules(ns_id, family) or DEFAULT_RULES[family]
    if family == 6 and not scope and iif != "lo" and is_link_local_ipv6(dst):
        scope = iif  # arriving for a link-local address: looked up on the arrival device
    for rule in rules:
        if not _rule_matches(rule, dst, src, iif, mark):
            continue
        text = _rule_text(rule)
        if rule.action in _DROPPING:
            return Decision(rule.action, None, 0, text)
        if rule.action not in ("lookup", "") or not rule.table:
            continue
        route = topo.table(ns_id, family, rule.table).lookup(value)
        if scope and route is not None and route.dev != scope:
            # strict: only routes by the scope's device (another interface's own fe80::1
            # is not this link's fe80::1)
            route = _on_device(topo, ns_id, family, rule.table, value, scope)
        if route is None and rule.table == LOCAL_TABLE and state is not None and \
                not topo.has_routes(ns_id, family, LOCAL_TABLE) and \
                (holds(topo, ns_id, dst, scope) or dst.startswith("127.") or dst == LOOPBACK[6]):
            # A snapshot without the local table (hand-made, or read without it): the kernel
            # fills that table from the addresses (lo's 127.0.0.0/8 and ::1 included), so an
            # own address is local all the same. (The table is looked for first: a host's
            # addresses are many more than its local routes.)
            route = Route(family, f"{dst}/{32 if family == 4 else 128}", table=LOCAL_TABLE,
                          type="local", dev="lo")
        # The kernel's local table also has a broadcast route for each address's subnet; the
        # index leaves them out, so they are made from the addresses, read or not.
        holder = topo.broadcast_holder(ns_id, dst) if route is None and \
            rule.table == LOCAL_TABLE and family == 4 else None
        if holder is not None:
            route = Route(4, f"{dst}/32", table=LOCAL_TABLE, type="broadcast", dev=holder.ifname)
        if route is None or route.type == "throw":
            continue
        kind = route.type if route.type in _DROPPING | _NOT_UNICAST else "unicast"
        if dst == LIMITED_BROADCAST and kind == "unicast":
            kind = "broadcast"  # the kernel's output routing makes it one whatever the route
        if kind == "unicast" and (value >> 28 == 0xE if family == 4 else value >> 120 == 0xFF):
            kind = "multicast"  # a group by a unicast route (the default): sent to a group
        return Decision(kind, route, rule.table, text)
    return Decision("none", None, 0, "")


def martian_loopback(topo: SnapshotIndex, ns_id: int, src: str, dst: str, iif: str) -> str:
    """Why the kernel drops an IPv4 packet arriving on `iif` (a device other than lo) to or
    from 127.0.0.0/8, or "" when it does not: ip_route_input_slow takes it for a martian
    destination (or source) unless route_localnet is on for `iif`."""
    if iif == "lo" or not (_is_loopback4(dst) or _is_loopback4(src)) or \
            route_localnet(topo, ns_id, iif):
        return ""
    what = f"martian destination {dst}" if _is_loopback4(dst) else f"martian source {src}"
    return f"{what} arriving on {iif}: the kernel drops 127.0.0.0/8 coming in by a device " \
           f"other than lo{_ENABLE.format(dev=iif)}"


def loopback_source_refused(topo: SnapshotIndex, ns_id: int, src: str, dev: str) -> str:
    """Why the kernel refuses to route a packet from a 127.0.0.0/8 source out of `dev`, or ""
    when it does not: __mkroute_output fails (EINVAL; a connect fails, a packet rerouted
    after an OUTPUT DNAT is dropped) unless `dev` is a loopback or VRF device or
    route_localnet is on for it."""
    if not _is_loopback4(src) or route_localnet(topo, ns_id, dev):
        return ""
    link = topo.link(ns_id, dev)
    if dev == "lo" or link is not None and link.kind in ("loopback", "vrf"):
        return ""
    return f"the source {src} is a loopback address and the route leaves by {dev}: the " \
           f"kernel refuses the route and drops the packet (a connect fails with EINVAL)" \
           f"{_ENABLE.format(dev=dev)}"


# how a martian loopback address is let through, said where one is dropped
_ENABLE = (" unless net.ipv4.conf.all.route_localnet or net.ipv4.conf.{dev}.route_localnet is"
           " 1 (sysctl -w net.ipv4.conf.{dev}.route_localnet=1; kube-proxy sets `all`)")


def route_localnet(topo: SnapshotIndex, ns_id: int, dev: str) -> bool:
    """Is route_localnet on for `dev` (IN_DEV_ROUTE_LOCALNET: `all` or the device's own is
    1)? `all` is read only where a DNAT is (collect/sysctls.py); unread, it counts as the
    kernel's default, 0."""
    return "1" in (topo.sysctl(ns_id, "net.ipv4.conf.all.route_localnet"),
                   topo.sysctl(ns_id, f"net.ipv4.conf.{dev}.route_localnet"))


def _is_loopback4(address: str) -> bool:
    return address.startswith("127.")  # the snapshot writes addresses as the kernel does


def _on_device(topo: SnapshotIndex, ns_id: int, family: int, table: int, value: int,
               dev: str) -> Route | None:
    """The route of `table` to `value` by device `dev` (a scoped lookup): the longest
    prefix, then the lowest metric."""
    best: tuple[int, int, Route] | None = None
    for route in topo.routes_in(ns_id, family, table):
        if route.dev != dev or route.type not in _LOOKED_UP:
            continue
        if route.dst == "default":
            first, last, length = 0, (1 << 128) - 1, 0
        else:
            _, first, last, length = network_interval(route.dst)
        if first <= value <= last and (best is None or (length, -route.metric) >
                                       (best[0], best[1])):
            best = (length, -route.metric, route)
    return best[2] if best else None


def _rule_matches(rule: PolicyRule, dst: str, src: str, iif: str, mark: int) -> bool:
    matched = ((not rule.src or bool(src) and within(src, rule.src))
               and (not rule.dst or within(dst, rule.dst))
               and (not rule.iif or rule.iif == iif)
               and not rule.oif  # only sockets bound to a device match oif rules
               and (not rule.fwmark or (mark & (rule.fwmask or 0xFFFFFFFF)) == rule.fwmark))
    return matched != rule.invert


def holds(topo: SnapshotIndex, ns_id: int, address: str, dev: str = "") -> bool:
    """Does the namespace hold `address` (on `dev`, when given)? From the index's owners of
    it: a host may hold thousands of addresses, and this is asked at route decisions."""
    return any(owner == ns_id and (not dev or a.ifname == dev)
               for owner, a in topo.owners_of(address))


def within(address: str, network: str) -> bool:
    """Is `address` in `network` ("10.0.0.0/8", "default")?"""
    _, first, last, _ = network_interval(network)
    _, value = ip_int(address)
    return first <= value <= last


@lru_cache(maxsize=1024)  # asked at every route decision, of the same few rules
def _rule_text(rule: PolicyRule) -> str:
    what = " ".join(part for part in (f"from {rule.src}" if rule.src else "",
                                      f"to {rule.dst}" if rule.dst else "",
                                      f"iif {rule.iif}" if rule.iif else "",
                                      f"fwmark {rule.fwmark:#x}" if rule.fwmark else "")
                    if part) or "all"
    action = f"lookup {TABLE_NAMES.get(rule.table, rule.table)}" if rule.action == "lookup" \
        else rule.action
    return f"rule {rule.priority}: {'not ' if rule.invert else ''}{what} {action}"
