"""forward-policy-drop: the FORWARD chain drops by default and nothing lets a bridge through.

What it finds
    A namespace whose filter FORWARD policy is DROP (iptables, either backend, or an
    nftables forward hook with policy drop) where the traffic of some bridge with running
    ports falls through to that policy: out of the bridge, into it, or between its own ports
    (bridged frames pass FORWARD when bridge-nf-call-iptables is 1). A walk through the
    chains decides it, following jumps and RETURNs with the packet's in- and out-interface:
    any ACCEPT the packet can reach counts as a path (even one limited to established
    connections or to published ports), and so does a DROP that names the bridge — that is
    somebody's deliberate policy (Docker's isolation and `--internal` networks). So both
    Docker layouts — classic DOCKER-ISOLATION chains and modern DOCKER-FORWARD — are healthy.

Why it matters
    Docker sets the FORWARD policy to DROP when it has to turn forwarding on. Every bridge
    Docker does not manage — a KVM/libvirt bridge, a LXC bridge, a lab — silently loses its
    traffic: VMs cannot reach the network or each other. It is the classic "Docker broke my
    bridge" report.

Example
    ND502 forward-policy-drop  host: br0
      traffic out of br0 and into br0 and between br0's ports falls through to the FORWARD
      policy DROP (iptables nft backend): nothing accepts it
        · filter FORWARD policy DROP (nft backend)
        · traffic out of br0: no ACCEPT on its way, reaches the policy
      repair (unsafe): Accept br0's traffic in DOCKER-USER
        $ iptables -t filter -I DOCKER-USER 1 -i br0 -j ACCEPT
        $ iptables -t filter -I DOCKER-USER 1 -o br0 -j ACCEPT

Repair
    Accept the bridge's traffic where Docker leaves room for it — the DOCKER-USER chain —
    or in FORWARD when Docker is not installed. Unsafe: it opens forwarding for that bridge.
    With Docker, `"ip-forward-no-drop": true` in daemon.json (engine 28+) avoids the DROP.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import AddIptablesRule, ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import IptablesRule, Link, Match, NamespaceState, Snapshot
from netdiag.model.index import SnapshotIndex, index

RULE = Rule(code="ND502", name="forward-policy-drop", severity=Severity.WARNING,
            summary="FORWARD policy DROP with no accept path for a bridge's traffic")

OTHER = "\0other"  # an interface that is not the bridge: matches no name, only negations
MAX_DEPTH = 16
_ENDS = ("ACCEPT", "DROP", "REJECT")


@dataclass(frozen=True, slots=True)
class _Direction:
    name: str  # "out of br0", "into br0", "between br0's ports"
    iif: str
    oif: str


@dataclass(frozen=True, slots=True)
class _Walk:
    """Where a packet's walk through the chains ended."""

    # accept, handled (a DROP naming the bridge), drop (a blanket DROP), policy, return
    outcome: str
    rule: IptablesRule | None = None


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topo = index(snapshot)
    for state in snapshot.namespaces:
        bridges = [link for link in state.links if link.kind == "bridge"
                   and any(p.up for p in topo.bridge_ports(state.ref.id, link.name))]
        if not bridges:
            continue
        for backend in _drop_backends(state):
            for bridge in bridges:
                yield from _check_iptables(topo, state, backend, bridge)
        for chain in _nft_drop_chains(state):
            for bridge in bridges:
                yield from _check_nft(state, chain, bridge)


def _directions(topo: SnapshotIndex, state: NamespaceState, bridge: Link) -> list[_Direction]:
    name = bridge.name
    found = [_Direction(f"out of {name}", name, OTHER), _Direction(f"into {name}", OTHER, name)]
    ports = topo.bridge_ports(state.ref.id, name)
    # br_netfilter is built in and on in every new namespace here unless turned off.
    if len(ports) > 1 and state.sysctl("net.bridge.bridge-nf-call-iptables") != "0":
        found.append(_Direction(f"between {name}'s ports", name, name))
    return found


# --- iptables ---------------------------------------------------------------------------------


def _drop_backends(state: NamespaceState) -> list[str]:
    return sorted({c.backend for c in state.firewall.iptables_chains
                   if c.family == 4 and c.table == "filter" and c.name == "FORWARD"
                   and c.policy == "DROP"})


def _check_iptables(topo: SnapshotIndex, state: NamespaceState, backend: str, bridge: Link
                    ) -> Iterator[Finding]:
    chains = _chains(state, backend)
    blocked: list[tuple[_Direction, _Walk]] = []
    for direction in _directions(topo, state, bridge):
        walk = _walk(chains, "FORWARD", direction, bridge.name, 0)
        if walk.outcome in ("policy", "drop"):
            blocked.append((direction, walk))
    if not blocked:
        return
    ns_id = state.ref.id
    evidence = [Evidence(f"filter FORWARD policy DROP ({backend} backend)", ns_id, "firewall",
                         "filter/FORWARD")]
    for direction, walk in blocked:
        where = (f"dropped by {walk.rule.text or walk.rule.chain}" if walk.rule
                 else "reaches the policy")
        key = f"filter/{walk.rule.chain}/{walk.rule.position}" if walk.rule else "filter/FORWARD"
        evidence.append(Evidence(f"traffic {direction.name}: no ACCEPT on its way, {where}",
                                 ns_id, "firewall", key))
    chain = "DOCKER-USER" if "DOCKER-USER" in chains else "FORWARD"
    args = []
    if any(d.iif == bridge.name for d, _ in blocked):
        args.append(("-i", bridge.name, "-j", "ACCEPT"))
    if any(d.oif == bridge.name and d.iif != bridge.name for d, _ in blocked):
        args.append(("-o", bridge.name, "-j", "ACCEPT"))
    steps = tuple(AddIptablesRule(ns_id, "filter", chain, a, position=1) for a in args)
    names = " and ".join(d.name for d, _ in blocked)
    yield RULE.finding(state.ref, bridge.name,
                       f"traffic {names} falls through to the FORWARD policy DROP "
                       f"(iptables {backend} backend): nothing accepts it",
                       evidence=evidence,
                       repair=Repair(f"Accept {bridge.name}'s traffic in {chain}", Safety.UNSAFE,
                                     steps))


def _chains(state: NamespaceState, backend: str) -> dict[str, list[IptablesRule]]:
    chains: dict[str, list[IptablesRule]] = {c.name: [] for c in state.firewall.iptables_chains
                                             if c.backend == backend and c.family == 4
                                             and c.table == "filter"}
    for rule in state.firewall.iptables_rules:
        if rule.backend == backend and rule.family == 4 and rule.table == "filter":
            chains.setdefault(rule.chain, []).append(rule)
    for rules in chains.values():
        rules.sort(key=lambda r: r.position)
    return chains


def _walk(chains: dict[str, list[IptablesRule]], chain: str, packet: _Direction, bridge: str,
          depth: int) -> _Walk:
    """Follow `packet` through `chain`; conditional rules may or may not apply."""
    if depth > MAX_DEPTH:
        return _Walk("accept")  # a loop: give the benefit of the doubt rather than cry wolf
    for rule in chains.get(chain, ()):
        if not _may_match(rule, packet):
            continue
        certain = _unconditional(rule)
        if rule.target == "ACCEPT":
            return _Walk("accept", rule)
        if rule.target in ("DROP", "REJECT"):
            if _names(rule, bridge):
                return _Walk("handled", rule)
            if certain:
                return _Walk("drop", rule)
        elif rule.target == "RETURN":
            if certain:
                return _Walk("return", rule)
        elif rule.target in chains and rule.target != chain:
            inner = _walk(chains, rule.target, packet, bridge, depth + 1)
            if inner.outcome in ("accept", "handled") or (inner.outcome == "drop" and certain):
                return inner
    return _Walk("policy" if chain == "FORWARD" else "return")


def _interface_matches(match: Match | None, name: str) -> bool:
    if match is None:
        return True
    value = match.value
    hit = name.startswith(value[:-1]) if value.endswith("+") else name == value
    return hit != match.negated


def _may_match(rule: IptablesRule, packet: _Direction) -> bool:
    return (_interface_matches(rule.match("in-interface"), packet.iif)
            and _interface_matches(rule.match("out-interface"), packet.oif))


def _unconditional(rule: IptablesRule) -> bool:
    return all(m.option in ("in-interface", "out-interface") for m in rule.matches)


def _names(rule: IptablesRule, bridge: str) -> bool:
    return any(m.option in ("in-interface", "out-interface") and not m.negated
               and _interface_matches(m, bridge) for m in rule.matches)


# --- native nftables --------------------------------------------------------------------------


def _nft_drop_chains(state: NamespaceState):
    xtables = {(c.table, c.name) for c in state.firewall.iptables_chains if c.backend == "nft"}
    return [c for c in state.firewall.nft_chains
            if c.hook == "forward" and c.policy == "drop" and c.family in ("ip", "inet")
            and (c.table, c.name) not in xtables]


def _check_nft(state: NamespaceState, chain, bridge: Link) -> Iterator[Finding]:
    quoted = f'"{bridge.name}"'
    mentions = [r for r in state.firewall.nft_rules
                if r.family == chain.family and r.table == chain.table
                and (quoted in r.text or f" {bridge.name} " in f" {r.text} ")]
    if mentions:
        return
    ns_id = state.ref.id
    key = f"{chain.family} {chain.table}/{chain.name}"
    yield RULE.finding(state.ref, bridge.name,
                       f"nftables chain {key} (hook forward, policy drop) has no rule for "
                       f"{bridge.name}: its traffic is dropped",
                       evidence=(Evidence(f"nft chain {key}: hook forward policy drop", ns_id,
                                          "firewall", key),
                                 Evidence(f"no rule in table {chain.family} {chain.table} "
                                          f"mentions {bridge.name}", ns_id, "firewall", key)),
                       repair=Repair(f"Accept {bridge.name}'s traffic in {key}", Safety.MANUAL,
                                     (ManualStep(f"nft add rule {chain.family} {chain.table} "
                                                 f"{chain.name} iifname {quoted} accept; nft add "
                                                 f"rule {chain.family} {chain.table} {chain.name} "
                                                 f"oifname {quoted} accept", ns_id),)))
