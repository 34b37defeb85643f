"""bridge-isolation-broken: two bridge networks that can reach each other on an isolating host.

What it finds
    In one namespace, a pair of bridges with IPv4 networks between which a new connection
    would be forwarded, while the same namespace's firewall isolates other pairs of its bridge
    networks with rules written for them — so isolation is the policy and this pair escapes
    it (a DROP policy alone promises nothing: it also stops traffic into a KVM bridge that
    Docker never meant to isolate, while containers reach it). The verdict comes from
    walking the filter FORWARD chain (and the chains it jumps to) of both iptables backends for
    a new connection from one bridge's subnet to the other's, as the kernel would; rules that
    match only some traffic (one port, one protocol, one address) decide nothing either way.
    Docker's classic layout (DOCKER-ISOLATION-STAGE-1/2) and its modern one (`DOCKER ! -i br -o
    br -j DROP`) are both understood, as is any hand-written FORWARD chain.

Why it matters
    Docker promises that containers on different networks cannot talk unless a container is
    attached to both. When an isolation rule is missing — deleted by hand, lost in a partial
    firewall reload, or never written for a network created while the firewall was being
    reset — one network can open connections into another: a tenant's or a test environment's
    containers can reach a database that should be unreachable for them.

Example
    Three user networks br-a, br-b and br-c; `DOCKER-ISOLATION-STAGE-2` lacks its
    `-o br-c -j DROP` rule. Traffic from br-a to br-b is dropped, but from br-a to br-c the
    FORWARD chain reaches `-i br-a ! -o br-a -j ACCEPT`.

Repair
    Unsafe (it cuts traffic that may be relied on): insert `-i A -o B -j DROP` at the top of
    FORWARD for each direction that is open — or recreate the network so Docker rewrites its
    isolation rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations

from netdiag.checks.api import (AddIptablesRule, CheckConfig, Evidence, Finding, Repair, Rule,
                                Safety, Severity)
from netdiag.checks.topology import format_network, network_interval
from netdiag.model import IptablesRule, Match, NamespaceState, Snapshot

RULE = Rule(code="ND801", name="bridge-isolation-broken", severity=Severity.WARNING,
            summary="Two bridge networks can forward to each other while others are isolated")

_TERMINAL = ("ACCEPT", "DROP", "REJECT")
_MAX_DEPTH = 32  # iptables refuses loops; this only guards against a damaged snapshot
# Tables iptables-nft writes into; any other nftables forward hook is native nftables.
_IPTABLES_NFT_TABLES = (("ip", "filter"), ("ip6", "filter"))


@dataclass(frozen=True, slots=True)
class _Packet:
    """A new IPv4 connection routed from one bridge's subnet into another's."""

    iif: str
    oif: str
    src: tuple[int, int]  # subnet as (first, last)
    dst: tuple[int, int]


@dataclass(frozen=True, slots=True)
class _Verdict:
    action: str  # ACCEPT, DROP or REJECT
    because: tuple[Evidence, ...]  # the rules (or the policy) that decided
    by_policy: bool = False

    @property
    def isolated(self) -> bool:
        return self.action != "ACCEPT"


class _Backend:
    """One iptables backend's filter table of one namespace, ready to be walked."""

    def __init__(self, state: NamespaceState, backend: str):
        self.ns_id = state.ref.id
        self.chains: dict[str, list[IptablesRule]] = defaultdict(list)
        for rule in state.firewall.iptables_rules:
            if rule.backend == backend and rule.table == "filter" and rule.family == 4:
                self.chains[rule.chain].append(rule)
        for rules in self.chains.values():
            rules.sort(key=lambda r: r.position)
        self.policy = next((c.policy for c in state.firewall.iptables_chains
                            if c.backend == backend and c.table == "filter"
                            and c.family == 4 and c.name == "FORWARD"), "") or "ACCEPT"
        self.names = {c.name for c in state.firewall.iptables_chains
                      if c.backend == backend and c.table == "filter" and c.family == 4}

    def verdict(self, packet: _Packet) -> _Verdict:
        action, path = self._walk("FORWARD", packet, 0)
        if action in _TERMINAL:
            return _Verdict(action, path)
        return _Verdict(self.policy, (Evidence(f"filter FORWARD policy {self.policy}",
                                               self.ns_id, "firewall", "filter/FORWARD"),),
                        by_policy=True)

    def _walk(self, chain: str, packet: _Packet, depth: int) -> tuple[str, tuple[Evidence, ...]]:
        if depth > _MAX_DEPTH:
            return "RETURN", ()
        for rule in self.chains.get(chain, ()):
            if _matches(rule.matches, packet) is not True:
                continue
            here = (Evidence(f"filter/{rule.chain}/{rule.position}: {rule.text}", self.ns_id,
                             "firewall", f"filter/{rule.chain}/{rule.position}"),)
            if rule.target in _TERMINAL:
                return rule.target, here
            if rule.target == "RETURN":
                return "RETURN", ()
            if rule.target in self.chains or rule.target in self.names:
                action, path = self._walk(rule.target, packet, depth + 1)
                if action in _TERMINAL:
                    return action, here + path
                if rule.goto:
                    return "RETURN", ()
            # any other target (LOG, MARK, ...) does not end the traversal
        return "RETURN", ()


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for state in snapshot.namespaces:
        if state.sysctl("net.ipv4.ip_forward") == "0" or _native_nft_forward(state):
            continue  # nothing is forwarded at all / a firewall this rule cannot read
        subnets = _bridge_subnets(state)
        if len(subnets) < 2 or not state.firewall.iptables_rules:
            continue
        yield from _check_namespace(state, subnets)


def _check_namespace(state: NamespaceState, subnets: dict[str, tuple[int, int, str]]
                     ) -> Iterator[Finding]:
    backends = [_Backend(state, name)
                for name in sorted({r.backend for r in state.firewall.iptables_rules})]
    verdicts: dict[tuple[str, str], _Verdict] = {}
    for a, b in ((a, b) for a in subnets for b in subnets if a != b):
        packet = _Packet(a, b, subnets[a][:2], subnets[b][:2])
        results = [backend.verdict(packet) for backend in backends]
        # The packet passes every backend's FORWARD hook: one drop is enough to stop it.
        verdicts[(a, b)] = next((v for v in results if v.isolated), results[0])
    # Only a rule written for a pair of bridges is an isolation policy; a DROP policy also
    # stops traffic into bridges nobody meant to isolate (a KVM bridge next to Docker's).
    isolated = [pair for pair, verdict in verdicts.items()
                if verdict.isolated and not verdict.by_policy]
    if not isolated:
        return  # this namespace does not isolate its bridges at all: no broken promise
    managed = {name for pair in isolated for name in pair}
    example = verdicts[isolated[0]]
    for a, b in combinations(sorted(managed), 2):
        open_ways = [(x, y) for x, y in ((a, b), (b, a)) if not verdicts[(x, y)].isolated]
        if not open_ways:
            continue
        evidence = [Evidence(f"{name} has network {subnets[name][2]}", state.ref.id, "address",
                             subnets[name][2]) for name in (a, b)]
        for x, y in open_ways:
            evidence += [Evidence(f"{x} → {y} accepted by {e.text}", e.namespace, e.kind, e.key)
                         for e in verdicts[(x, y)].because]
        ix, iy = isolated[0]
        evidence += [Evidence(f"while {ix} → {iy} is isolated by {e.text}", e.namespace, e.kind,
                              e.key) for e in example.because]
        directions = " and ".join(f"{x} → {y}" for x, y in open_ways)
        yield RULE.finding(
            state.ref, f"{a}<->{b}",
            f"bridges {a} and {b} are not isolated from each other ({directions} is forwarded) "
            "although this namespace isolates its other bridge networks",
            evidence=evidence,
            repair=Repair(f"isolate {a} and {b}", Safety.UNSAFE, tuple(
                AddIptablesRule(state.ref.id, "filter", "FORWARD",
                                ("-i", x, "-o", y, "-j", "DROP"), position=1)
                for x, y in open_ways)))


def _bridge_subnets(state: NamespaceState) -> dict[str, tuple[int, int, str]]:
    """bridge name → (first, last, cidr) of its first IPv4 network."""
    bridges = {link.name for link in state.links if link.kind == "bridge"}
    subnets: dict[str, tuple[int, int, str]] = {}
    for address in state.addresses:
        if address.family == 4 and address.ifname in bridges and address.ifname not in subnets:
            _, first, last, prefixlen = network_interval(address.cidr)
            subnets[address.ifname] = (first, last, format_network(4, first, prefixlen))
    return subnets


def _native_nft_forward(state: NamespaceState) -> bool:
    return any(chain.hook == "forward" and (chain.family, chain.table) not in _IPTABLES_NFT_TABLES
               for chain in state.firewall.nft_chains)


# --- matching one rule against the packet: True, False, or None (only some such packets) --


def _matches(matches: tuple[Match, ...], packet: _Packet) -> bool | None:
    result: bool | None = True
    for match in matches:
        one = _match_one(match, packet)
        if one is not None and match.negated:
            one = not one
        if one is False:
            return False
        if one is None:
            result = None
    return result


def _match_one(match: Match, packet: _Packet) -> bool | None:
    option, value = match.option, match.value
    if option in ("in-interface", "out-interface"):
        name = packet.iif if option == "in-interface" else packet.oif
        return name.startswith(value[:-1]) if value.endswith("+") else name == value
    if option in ("source", "destination"):
        first, last = packet.src if option == "source" else packet.dst
        try:
            _, lo, hi, _ = network_interval(value)
        except ValueError:
            return None
        if lo <= first and last <= hi:
            return True
        return False if last < lo or hi < first else None
    if option in ("ctstate", "state"):
        return "NEW" in value.upper().split(",")
    if option == "dst-type":  # routed between bridges: never to a local address
        return False if value.upper() == "LOCAL" else None
    if option == "comment":
        return True
    return None
