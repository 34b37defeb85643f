"""Native nftables as the kernel runs it: the base chains of one hook, in priority order.

Each rule is read from its expressions as `nft -j` gives them (NftRule.expr): matches on
`ip`/`tcp`/`udp`/`th`/`icmp` payload fields, `meta` (l4proto, nfproto, iifname, oifname,
mark), `ct state`; statements counter, log, `meta mark set`; verdicts accept, drop, reject,
jump, goto, return; NAT with dnat (to an address and port, or a numgen map — followed to its
first element, and the step says so), snat and masquerade; anonymous sets, and named sets
(`@name`) with the elements the snapshot read (a dynamic set as it was at that moment). A
base chain that accepts lets the packet on to the next one; a drop anywhere ends it. Anything
else — a named map, a concatenation, an expression not listed — met where it decides is
`unknown`, naming the rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from netdiag.checks.topology import network_interval
from netdiag.collect.firewall import XTABLES_TABLES
from netdiag.flows.packet import PROTOCOLS, Packet, Step
from netdiag.model import NamespaceState, NftChain, NftRule

ACCEPT, DROP, UNKNOWN, RETURN = "accept", "drop", "unknown", "return"
_QUIET = {"counter", "log", "limit", "notrack", "quota"}
_MAX_DEPTH = 64


class Unmodelled(Exception):
    """An expression the engine does not follow (only raised inside this module)."""


@dataclass(slots=True)
class Result:
    """Where a walk through chains ended (iptables' walk in netfilter.py uses it too)."""

    verdict: str  # accept, drop, unknown, return (fell off the chain, or RETURN)
    packet: Packet
    steps: list[Step]
    rule: str = ""
    reason: str = ""
    where: str = ""
    nat: tuple[str, Packet, Packet] | None = None


def base_chains(state: NamespaceState, hook: str, nat_too: bool) -> list[NftChain]:
    hook_name = hook.lower()
    # Tables named like iptables' in the ip families are iptables-nft's: netfilter.py's.
    return sorted((c for c in state.firewall.nft_chains if c.hook == hook_name
                   and c.family in ("ip", "inet")
                   and not (c.family in ("ip", "ip6") and c.table in XTABLES_TABLES)
                   and (nat_too or c.type != "nat")), key=lambda c: c.priority)


def run(state: NamespaceState, hook: str, packet: Packet, where) -> Result | None:
    """The native chains' verdict at `hook`; None when there are none."""
    chains = base_chains(state, hook, packet.ctstate == "NEW")
    if not chains:
        return None
    steps: list[Step] = []
    nat = None
    rules = _rules_by_chain(state)
    sets = _sets_by_table(state)
    for chain in chains:
        name = f"nft {chain.family} {chain.table} {chain.name}"
        result = _chain(rules, sets.get((chain.family, chain.table), {}), chain.family,
                        chain.table, chain.name, packet, where, 0)
        steps += result.steps
        if result.verdict == RETURN:
            policy = chain.policy or "accept"
            if policy == "drop":
                steps.append(Step("netfilter", f"{name}: policy drop", name))
                return Result(DROP, packet, steps, name, f"{name} has policy drop",
                              f"{name} policy")
            result.verdict = ACCEPT
        if result.verdict != ACCEPT:
            result.steps = steps
            return result
        if result.nat is not None:
            nat = result.nat
        packet = result.packet
    return Result(ACCEPT, packet, steps, nat=nat)


def _rules_by_chain(state: NamespaceState) -> dict[tuple[str, str, str], list[NftRule]]:
    found: dict[tuple[str, str, str], list[NftRule]] = {}
    for rule in state.firewall.nft_rules:
        found.setdefault((rule.family, rule.table, rule.chain), []).append(rule)
    return found


def _sets_by_table(state: NamespaceState) -> dict[tuple[str, str], dict[str, list]]:
    """(family, table) → set name → its elements (as nft -j prints them, unwrapped)."""
    found: dict[tuple[str, str], dict[str, list]] = {}
    for named in state.firewall.nft_sets:
        try:
            elements = json.loads(named.elements) if named.elements else []
        except ValueError:
            continue  # left out: a rule using it is then unknown
        found.setdefault((named.family, named.table), {})[named.name] = [
            e["elem"].get("val") if isinstance(e, dict) and "elem" in e else e
            for e in elements]
    return found


def _chain(rules, sets: dict[str, list], family: str, table: str, chain: str, packet: Packet,
           where, depth: int) -> Result:
    steps: list[Step] = []
    if depth > _MAX_DEPTH:
        return Result(UNKNOWN, packet, steps, chain, "chains nest too deep", chain)
    for rule in rules.get((family, table, chain), ()):
        name = f"nft {family} {table} {chain} handle {rule.handle}"
        text = rule.text or name
        try:
            outcome, packet_after, detail = _rule(rule, packet, where, sets)
        except Unmodelled as exc:
            return Result(UNKNOWN, packet, steps, text, f"{exc} is not modelled", name)
        if outcome is None:
            packet = packet_after  # it matched only in part (statements), or not at all
            continue
        kind, target = outcome
        if kind == "accept":
            steps.append(Step("netfilter", f"{name}: accepted", text))
            return Result(ACCEPT, packet_after, steps)
        if kind in ("drop", "reject"):
            steps.append(Step("netfilter", f"{name}: {kind}ed".replace("droped", "dropped"),
                              text))
            return Result(DROP, packet_after, steps, text, f"{kind} by {name}", name)
        if kind == "return":
            return Result(RETURN, packet_after, steps)
        if kind == "nat":
            steps.append(Step("nat", f"{name}: {detail} {packet.text} ⇒ {packet_after.text}",
                              text))
            return Result(ACCEPT, packet_after, steps, nat=(target, packet, packet_after))
        steps.append(Step("netfilter", f"{name}: {kind} {target}", text))
        inner = _chain(rules, sets, family, table, target, packet_after, where, depth + 1)
        steps += inner.steps
        inner.steps = steps
        if inner.verdict != RETURN:
            return inner
        packet = inner.packet
        if kind == "goto":
            return Result(RETURN, packet, steps)
    return Result(RETURN, packet, steps)


def _rule(rule: NftRule, packet: Packet, where, sets: dict[str, list]
          ) -> tuple[tuple[str, str] | None, Packet, str]:
    """(verdict and target, or None to go on; the packet after its statements; a note)."""
    try:
        expressions = json.loads(rule.expr) if rule.expr else []
    except ValueError:
        raise Unmodelled("an unreadable rule") from None
    if not expressions:
        raise Unmodelled("a rule without its expressions")
    note = ""
    for expression in expressions:
        (key, value), = expression.items()
        if key == "match":
            hit = _match(value, packet, where, sets)
            if not hit:
                return None, packet, note
        elif key in _QUIET:
            continue
        elif key == "mangle" and value.get("key") == {"meta": {"key": "mark"}} and \
                isinstance(value.get("value"), int):
            packet = replace(packet, mark=value["value"])
        elif key in ("accept", "drop", "reject", "return"):
            return (key, ""), packet, note
        elif key in ("jump", "goto"):
            return (key, value["target"]), packet, note
        elif key in ("dnat", "snat", "masquerade", "redirect"):
            after, note = _nat(key, value, packet, where)
            return ("nat", "dnat" if key in ("dnat", "redirect") else "snat"), after, note
        else:
            raise Unmodelled(f"the {key} expression")
    return None, packet, note


def _nat(key: str, value, packet: Packet, where) -> tuple[Packet, str]:
    value = value or {}
    if key == "masquerade":
        if not where.out_address:
            raise Unmodelled("masquerade without an address")
        return replace(packet, src=where.out_address), "masquerade"
    if key == "redirect":
        port = value.get("port")
        address = where.in_address if where.in_if else "127.0.0.1"
        return replace(packet, dst=address, dport=port or packet.dport), "redirect"
    address, note = value.get("addr"), key
    if isinstance(address, dict) and "map" in address:
        elements = address["map"].get("data", {}).get("set") or []
        if "numgen" not in address["map"].get("key", {}) or not elements:
            raise Unmodelled(f"{key} through a map")
        address = elements[0][1]
        note = f"{key} (one of {len(elements)} backends by numgen: following the first)"
    port = value.get("port")
    if isinstance(address, dict) and "concat" in address and len(address["concat"]) == 2:
        address, port = address["concat"]  # `dnat ip to ... map { 0 : ADDR . PORT }`
    if not isinstance(address, str):
        raise Unmodelled(f"{key} to this address")
    if port is not None and not isinstance(port, int):
        raise Unmodelled(f"{key} to this port")
    if key == "dnat":
        return replace(packet, dst=address, dport=port or packet.dport), note
    return replace(packet, src=address, sport=port or packet.sport), note


def _field(left, packet: Packet, where):
    """The packet's value of the left-hand side of a match; raises Unmodelled."""
    if "payload" in left:
        protocol, name = left["payload"].get("protocol"), left["payload"].get("field")
        if protocol == "ip":
            if name in ("saddr", "daddr"):
                return ("address", packet.src if name == "saddr" else packet.dst)
            if name == "protocol":
                return ("protocol", packet.proto)
        if protocol in ("tcp", "udp", "th") and name in ("sport", "dport"):
            if packet.proto not in ("tcp", "udp") or protocol not in (packet.proto, "th"):
                return ("absent", None)
            return ("int", packet.sport if name == "sport" else packet.dport)
        if protocol == "icmp" and name == "type":
            return ("icmp", packet.icmp_type if packet.proto == "icmp" else None)
        raise Unmodelled(f"the {protocol} {name} match")
    if "meta" in left:
        name = left["meta"].get("key")
        if name == "l4proto":
            return ("protocol", packet.proto)
        if name == "nfproto":
            return ("text", "ipv4")
        if name in ("iifname", "oifname"):
            return ("name", where.in_if if name == "iifname" else where.out_if)
        if name == "mark":
            return ("int", packet.mark)
        raise Unmodelled(f"the meta {name} match")
    if "ct" in left and left["ct"].get("key") == "state":
        return ("ctstate", packet.ctstate.lower())
    raise Unmodelled(f"the {next(iter(left), '?')} match")


def _match(value, packet: Packet, where, sets: dict[str, list]) -> bool:
    op, kind_value = value.get("op"), _field(value.get("left", {}), packet, where)
    kind, have = kind_value
    right = value.get("right")
    if kind == "absent":
        return op == "!="  # a port match on a packet without ports never matches
    if kind == "ctstate":
        wanted = right if isinstance(right, list) else [right]
        hit = have in wanted
    else:
        hit = _equal(kind, have, right, sets)
    if op in ("==", "in"):
        return hit
    if op == "!=":
        return not hit
    raise Unmodelled(f"the {op} comparison")


def _equal(kind: str, have, right, sets: dict[str, list]) -> bool:
    if isinstance(right, str) and right.startswith("@"):
        if right[1:] not in sets:
            raise Unmodelled(f"the named set {right} (not in the snapshot)")
        return any(_equal(kind, have, item, sets) for item in sets[right[1:]])
    if isinstance(right, dict) and "set" in right:
        return any(_equal(kind, have, item, sets) for item in right["set"])
    if isinstance(right, dict) and "range" in right:
        low, high = right["range"]
        if kind == "int":
            return low <= have <= high
        if kind == "address":
            _, value, _, _ = network_interval(have)
            return network_interval(low)[1] <= value <= network_interval(high)[1]
        raise Unmodelled("a range of this kind")
    if isinstance(right, dict) and "prefix" in right and kind == "address":
        prefix = right["prefix"]
        _, first, last, _ = network_interval(f"{prefix['addr']}/{prefix['len']}")
        return first <= network_interval(have)[1] <= last
    if isinstance(right, dict):
        raise Unmodelled(f"the {next(iter(right), '?')} value")
    if kind == "protocol":
        return right in (have, PROTOCOLS.get(have))
    if kind == "name":
        text = str(right)
        return have.startswith(text[:-1]) if text.endswith("*") else have == text
    if kind == "icmp":
        return have is not None and right in (have, {"echo-request": 8,
                                                     "echo-reply": 0}.get(have))
    if kind == "address":
        return have == right
    return have == right
