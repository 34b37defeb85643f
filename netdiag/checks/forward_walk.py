"""The walk of an iptables filter FORWARD chain for one bridge's traffic, shared by the rules
that ask whether a bridge's traffic is let through: forward-policy-drop and its Podman twin.

A direction is a packet described by its interfaces only (out of the bridge, into it, between
its ports); rules that also test addresses, ports or state may or may not apply to it, so an
ACCEPT among them counts as a way through and a conditional DROP decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from netdiag.model import IptablesRule, Match, NamespaceState

OTHER = "\0other"  # an interface that is not the bridge: matches no name, only negations
MAX_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Direction:
    """A packet by its interfaces: `iif` in, `oif` out (OTHER: any other interface)."""

    name: str  # "out of br0", "into br0", "between br0's ports"
    iif: str
    oif: str


@dataclass(frozen=True, slots=True)
class WalkEnd:
    """Where a packet's walk through the chains ended."""

    # accept, handled (a DROP naming the bridge), drop (a blanket DROP), policy, return
    outcome: str
    rule: IptablesRule | None = None


def filter_chains(state: NamespaceState, backend: str, family: int = 4
                  ) -> dict[str, list[IptablesRule]]:
    """The filter table of one backend and family (iptables, or ip6tables with 6): chain →
    its rules in order."""
    chains: dict[str, list[IptablesRule]] = {c.name: [] for c in state.firewall.iptables_chains
                                             if c.backend == backend and c.family == family
                                             and c.table == "filter"}
    for rule in state.firewall.iptables_rules:
        if rule.backend == backend and rule.family == family and rule.table == "filter":
            chains.setdefault(rule.chain, []).append(rule)
    for rules in chains.values():
        rules.sort(key=lambda r: r.position)
    return chains


def walk(chains: dict[str, list[IptablesRule]], chain: str, packet: Direction, bridge: str,
         depth: int = 0) -> WalkEnd:
    """Follow `packet` through `chain`; conditional rules may or may not apply."""
    if depth > MAX_DEPTH:
        return WalkEnd("accept")  # a loop: give the benefit of the doubt rather than cry wolf
    for rule in chains.get(chain, ()):
        if not _may_match(rule, packet):
            continue
        certain = _unconditional(rule)
        if rule.target == "ACCEPT":
            return WalkEnd("accept", rule)
        if rule.target in ("DROP", "REJECT"):
            if _names(rule, bridge):
                return WalkEnd("handled", rule)
            if certain:
                return WalkEnd("drop", rule)
        elif rule.target == "RETURN":
            if certain:
                return WalkEnd("return", rule)
        elif rule.target in chains and rule.target != chain:
            inner = walk(chains, rule.target, packet, bridge, depth + 1)
            if inner.outcome in ("accept", "handled") or (inner.outcome == "drop" and certain):
                return inner
    return WalkEnd("policy" if chain == "FORWARD" else "return")


def _interface_matches(match: Match | None, name: str) -> bool:
    if match is None:
        return True
    value = match.value
    hit = name.startswith(value[:-1]) if value.endswith("+") else name == value
    return hit != match.negated


def _may_match(rule: IptablesRule, packet: Direction) -> bool:
    return (_interface_matches(rule.match("in-interface"), packet.iif)
            and _interface_matches(rule.match("out-interface"), packet.oif))


def _unconditional(rule: IptablesRule) -> bool:
    return all(m.option in ("in-interface", "out-interface") for m in rule.matches)


def _names(rule: IptablesRule, bridge: str) -> bool:
    return any(m.option in ("in-interface", "out-interface") and not m.negated
               and _interface_matches(m, bridge) for m in rule.matches)
