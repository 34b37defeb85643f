"""The kernel's route decision for one packet: policy rules in priority order, then the table
each rule points at (longest prefix, lowest metric), `local` table first by the default rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from netdiag.model import Address, PolicyRule, Route
from netdiag.model.index import TABLE_NAMES, SnapshotIndex, ip_int, network_interval

# The three rules every namespace starts with, when the snapshot has none recorded.
DEFAULT_RULES = (PolicyRule(4, 0, table=255), PolicyRule(4, 32766, table=254),
                 PolicyRule(4, 32767, table=253))
_DROPPING = {"blackhole", "unreachable", "prohibit"}
LOCAL_TABLE = 255
LIMITED_BROADCAST = "255.255.255.255"


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str  # unicast, local, broadcast, blackhole, unreachable, prohibit, none (no route)
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
           mark: int = 0) -> Decision:
    """The route for a packet to `dst` (from `src`, arriving on `iif`; "lo" for one sent
    from this namespace)."""
    state = topo.namespace(ns_id)
    rules = sorted((r for r in state.rules if r.family == 4), key=lambda r: r.priority) \
        if state is not None and any(r.family == 4 for r in state.rules) else DEFAULT_RULES
    _, value = ip_int(dst)
    for rule in rules:
        if not _rule_matches(rule, dst, src, iif, mark):
            continue
        text = _rule_text(rule)
        if rule.action in _DROPPING:
            return Decision(rule.action, None, 0, text)
        if rule.action not in ("lookup", "") or not rule.table:
            continue
        route = topo.table(ns_id, 4, rule.table).lookup(value)
        if route is None and rule.table == LOCAL_TABLE and \
                (_holds(state, dst) or dst.startswith("127.")) and \
                not any(r.table == LOCAL_TABLE for r in state.routes):
            # A snapshot without the local table (hand-made, or read without it): the kernel
            # fills that table from the addresses (lo's 127.0.0.0/8 included), so an own
            # address is local all the same.
            route = Route(4, f"{dst}/32", table=LOCAL_TABLE, type="local", dev="lo")
        # The kernel's local table also has a broadcast route for each address's subnet; the
        # index leaves them out, so they are made from the addresses, read or not.
        holder = broadcast_holder(state, dst) if route is None and rule.table == LOCAL_TABLE \
            else None
        if holder is not None:
            route = Route(4, f"{dst}/32", table=LOCAL_TABLE, type="broadcast", dev=holder.ifname)
        if route is None or route.type == "throw":
            continue
        kind = route.type if route.type in _DROPPING | {"local", "broadcast"} else "unicast"
        if dst == LIMITED_BROADCAST and kind == "unicast":
            kind = "broadcast"  # the kernel's output routing makes it one whatever the route
        return Decision(kind, route, rule.table, text)
    return Decision("none", None, 0, "")


def broadcast_holder(state, dst: str) -> Address | None:
    """The namespace's address whose subnet has `dst` as its broadcast address (the kernel
    adds a broadcast route for it; /31 and /32 have none), or None. Asked at every route
    decision: the address is parsed only when `dst`'s host bits are all ones."""
    _, value = ip_int(dst)
    for address in state.addresses if state is not None else ():
        if address.family != 4 or address.prefixlen > 30:
            continue
        host = (1 << (32 - address.prefixlen)) - 1
        if address.broadcast == dst or \
                value & host == host and ip_int(address.address)[1] | host == value:
            return address
    return None


def _rule_matches(rule: PolicyRule, dst: str, src: str, iif: str, mark: int) -> bool:
    matched = ((not rule.src or bool(src) and within(src, rule.src))
               and (not rule.dst or within(dst, rule.dst))
               and (not rule.iif or rule.iif == iif)
               and not rule.oif  # only sockets bound to a device match oif rules
               and (not rule.fwmark or (mark & (rule.fwmask or 0xFFFFFFFF)) == rule.fwmark))
    return matched != rule.invert


def _holds(state, address: str) -> bool:
    return state is not None and any(a.address == address for a in state.addresses)


def within(address: str, network: str) -> bool:
    """Is `address` in `network` ("10.0.0.0/8", "default")?"""
    _, first, last, _ = network_interval(network)
    _, value = ip_int(address)
    return first <= value <= last


def _rule_text(rule: PolicyRule) -> str:
    what = " ".join(part for part in (f"from {rule.src}" if rule.src else "",
                                      f"to {rule.dst}" if rule.dst else "",
                                      f"iif {rule.iif}" if rule.iif else "",
                                      f"fwmark {rule.fwmark:#x}" if rule.fwmark else "")
                    if part) or "all"
    action = f"lookup {TABLE_NAMES.get(rule.table, rule.table)}" if rule.action == "lookup" \
        else rule.action
    return f"rule {rule.priority}: {'not ' if rule.invert else ''}{what} {action}"
