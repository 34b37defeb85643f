"""bridge-isolation-broken: two bridge networks that can reach each other on an isolating host.

What it finds
    In one namespace, a pair of bridges with IPv4 networks between which a new connection
    would be forwarded, while isolation is the policy there: a Docker engine that programs
    iptables runs in the namespace and both bridges are its networks' (Docker isolates its
    bridge networks from each other, unless a network's gateway mode is `routed` or
    `nat-unprotected`), or, where no engine says so, the same namespace's
    firewall isolates other pairs of its bridge networks with rules written for them (a DROP
    policy alone promises nothing: it also stops traffic into a KVM bridge that Docker never
    meant to isolate, while containers reach it; nor does Docker 28's `! -i docker0 -o docker0
    -j DROP`, which names docker0 only — a bridge counts as isolated by such rules when they
    name it, or Docker's own chains do). The verdict comes from
    walking the filter FORWARD chain (and the chains it jumps to) of both iptables backends for
    a new connection from one bridge's subnet to the other's, as the kernel would; rules that
    match only some traffic (one port, one protocol, one address) decide nothing either way.
    Docker's classic layout (DOCKER-ISOLATION-STAGE-1/2) and its modern one (`DOCKER ! -i br -o
    br -j DROP`) are both understood, as is any hand-written FORWARD chain; so is Docker 28.2's
    direct-routing protection in the raw table (`-d CONTAINER ! -i br -j DROP` for every
    container of a NAT-mode network), which isolates a network whose every running container
    it covers even when the FORWARD rules are gone.

    Docker versions: 20.10's layout and 28's (the chains above, 27+'s gateway modes, 28's
    raw-table drops), and native nftables forward hooks — Docker 29's among them — asked
    through the flow model with probes (TCP and UDP to an unpublished port, an ICMP echo) of
    a new connection between the bridges; a native drop counts as isolation only where
    Docker's intent promises it (Docker 29's "unpublished port" drop also stops traffic into
    its bridges from a KVM bridge, which Docker never meant to isolate).

Why it matters
    Docker promises that containers on different networks cannot talk unless a container is
    attached to both. When an isolation rule is missing — deleted by hand, lost in a partial
    firewall reload, or never written for a network created while the firewall was being
    reset — one network can open connections into another: a tenant's or a test environment's
    containers can reach a database that should be unreachable for them.

Example
    Three user networks br-a, br-b and br-c; `DOCKER-ISOLATION-STAGE-2` lacks its
    `-o br-c -j DROP` rule. Traffic from br-a to br-b is dropped, but from br-a to br-c the
    FORWARD chain reaches `-i br-a ! -o br-a -j ACCEPT`. With Docker's intent, a host whose
    isolation chains were flushed altogether is reported too: every pair of its networks.

Repair
    Unsafe (it cuts traffic that may be relied on): insert `-i A -o B -j DROP` at the top of
    FORWARD for each direction that is open — or recreate the network so Docker rewrites its
    isolation rules.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import AddIptablesRule, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.flows import nftables
from netdiag.flows.netfilter import PacketPlace, all_match
from netdiag.flows.packet import Packet
from netdiag.model import IptablesRule, Match, NamespaceState, Snapshot, intent
from netdiag.model.index import format_network, network_interval

RULE = Rule(code="ND801", name="bridge-isolation-broken", severity=Severity.WARNING,
            summary="Two bridge networks can forward to each other while others are isolated")

_TERMINAL = ("ACCEPT", "DROP", "REJECT")
_MAX_DEPTH = 32  # iptables refuses loops; this only guards against a damaged snapshot


@dataclass(frozen=True, slots=True)
class _Verdict:
    action: str  # ACCEPT, DROP or REJECT
    because: tuple[IptablesRule, ...]  # the jumps and the rule that decided; () for the policy
    native: str = ""  # native nftables' verdict: the rule (or policy) that decided it
    native_policy: bool = False  # ... which is a chain's policy, or no verdict at all

    @property
    def isolated(self) -> bool:
        return self.action != "ACCEPT"

    @property
    def by_policy(self) -> bool:
        return not self.because and (not self.native or self.native_policy)

    def evidence(self, ns_id: int, prefix: str) -> list[Evidence]:
        # Built only for the pairs that are reported: a big host decides N² pairs.
        if self.native:
            return [Evidence(f"{prefix} {self.native}", ns_id, "firewall", "nftables forward")]
        if self.by_policy:
            return [Evidence(f"{prefix} filter FORWARD policy {self.action}", ns_id, "firewall",
                             "filter/FORWARD")]
        return [Evidence(f"{prefix} filter/{r.chain}/{r.position}: {r.text}", ns_id, "firewall",
                         f"filter/{r.chain}/{r.position}") for r in self.because]


Subnets = dict[str, tuple[int, int, str]]  # bridge → (first, last, cidr) of its IPv4 network


class _Backend:
    """One iptables backend's filter table of one namespace, ready to be walked.

    The walk follows new connections from one source bridge to all other bridges at once: a
    rule is tested against the source first (in-interface, source address, state) and only
    then against the destinations still undecided — for `-o br-x` rules just that one — so a
    host with N bridges costs about N walks of the table rather than N² of them.
    """

    def __init__(self, state: NamespaceState, backend: str):
        self.ns_id = state.ref.id
        self.chains: dict[str, list[_Compiled]] = defaultdict(list)
        for rule in sorted(state.firewall.iptables_rules, key=lambda r: r.position):
            if rule.backend == backend and rule.table == "filter" and rule.family == 4:
                self.chains[rule.chain].append(_compile(rule))
        self.policy = next((c.policy for c in state.firewall.iptables_chains
                            if c.backend == backend and c.table == "filter"
                            and c.family == 4 and c.name == "FORWARD"), "") or "ACCEPT"
        self.names = {c.name for c in state.firewall.iptables_chains
                      if c.backend == backend and c.table == "filter" and c.family == 4}

    def verdicts_from(self, source: str, subnets: Subnets) -> dict[str, _Verdict]:
        """The verdict for a new connection from `source` into each other bridge."""
        decided: dict[str, _Verdict] = {}
        others = {name for name in subnets if name != source}
        self._walk("FORWARD", source, others, subnets, decided, (), 0)
        policy = _Verdict(self.policy, ())
        return {name: decided.get(name, policy) for name in others}

    def _walk(self, chain: str, source: str, targets: set[str], subnets: Subnets,
              decided: dict[str, _Verdict], path: tuple[IptablesRule, ...], depth: int
              ) -> set[str]:
        """Decide what it can for `targets` in `chain`; return those that come back out."""
        pending, returned = set(targets), set()
        for compiled in self.chains.get(chain, ()) if depth <= _MAX_DEPTH else ():
            if not pending:
                break
            hit = compiled.hits(source, pending, subnets)
            if not hit:
                continue
            rule = compiled.rule
            here = path + (rule,)
            if rule.target in _TERMINAL:
                decided.update((name, _Verdict(rule.target, here)) for name in hit)
                pending -= hit
            elif rule.target == "RETURN":
                pending -= hit
                returned |= hit
            elif rule.target in self.chains or rule.target in self.names:
                back = self._walk(rule.target, source, hit, subnets, decided, here, depth + 1)
                pending -= hit - back
                if rule.goto:  # -g: coming back from the chain means leaving this one too
                    pending -= back
                    returned |= back
            # any other target (LOG, MARK, ...) does not end the traversal
        return pending | returned


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    promised = _docker_isolated(snapshot)
    guarded = _raw_guarded(snapshot)
    for state in snapshot.namespaces:
        if state.sysctl("net.ipv4.ip_forward") == "0":
            continue  # nothing is forwarded at all
        native = bool(nftables.base_chains(state, "FORWARD"))
        subnets = _bridge_subnets(state)
        docker = promised.get(state.ref.id, {})
        docker = {name: said for name, said in docker.items() if name in subnets}
        if len(docker) < 2 and not native and not any(
                r.table == "filter" and r.target in ("DROP", "REJECT")
                for r in state.firewall.iptables_rules):
            continue  # no rule that could isolate anything (a DROP policy promises nothing)
        if len(subnets) < 2 or not (state.firewall.iptables_rules or native):
            continue  # no pair, or a firewall that was not read
        yield from _check_namespace(state, subnets, docker, guarded.get(state.ref.id, set()))


def _docker_isolated(snapshot: Snapshot) -> dict[int, dict[str, Evidence]]:
    """Per namespace, the bridges an engine running there isolates from each other, each with
    the evidence that says so (an engine that writes no iptables rules promises nothing)."""
    found: dict[int, dict[str, Evidence]] = defaultdict(dict)
    for engine, host in intent.engines(snapshot):
        if not engine.daemon.iptables:
            continue
        for network in intent.bridge_networks(engine):
            if intent.gateway_mode(network) != "nat":
                continue  # "routed", "nat-unprotected": reachable from outside by design
            found[host.ref.id][intent.bridge_name(network)] = Evidence(
                f"{intent.who(engine)}: network {network.name} is a bridge network, isolated "
                "from the engine's other networks", host.ref.id, "docker", network.name)
    return found


def _raw_guarded(snapshot: Snapshot) -> dict[int, set[str]]:
    """Per namespace, the Docker bridges whose every running container has Docker 28's raw
    PREROUTING `-d ADDRESS ! -i BRIDGE -j DROP`: nothing from another bridge reaches them."""
    found: dict[int, set[str]] = defaultdict(set)
    for engine, host in intent.engines(snapshot):
        drops = {(m.value.removesuffix("/32"), i.value)
                 for rule in host.firewall.iptables_rules
                 if rule.table == "raw" and rule.chain == "PREROUTING" and rule.family == 4
                 and rule.target == "DROP"
                 and (m := rule.match("destination")) is not None and not m.negated
                 and (i := rule.match("in-interface")) is not None and i.negated}
        for network in intent.bridge_networks(engine):
            addresses = {e.ip for c in engine.containers if c.running for e in c.endpoints
                         if e.network == network.name and e.ip}
            bridge = intent.bridge_name(network)
            if addresses and all((address, bridge) in drops for address in addresses):
                found[host.ref.id].add(bridge)
    return found


def _check_namespace(state: NamespaceState, subnets: Subnets, docker: dict[str, Evidence],
                     guarded: set[str] = frozenset()) -> Iterator[Finding]:
    backends: list = [_Backend(state, name)
                      for name in sorted({r.backend for r in state.firewall.iptables_rules})]
    if nftables.base_chains(state, "FORWARD"):
        backends.append(_Native(state))
    verdicts: dict[tuple[str, str], _Verdict] = {}
    for a in subnets:
        per_backend = [backend.verdicts_from(a, subnets) for backend in backends]
        for b in per_backend[0]:
            results = [found[b] for found in per_backend]
            # The packet passes every backend's FORWARD hook: one drop is enough to stop it.
            verdicts[(a, b)] = next((v for v in results if v.isolated), results[0])
    # Only a rule written for a pair of bridges is an isolation policy; a DROP policy also
    # stops traffic into bridges nobody meant to isolate (a KVM bridge next to Docker's).
    # Native nftables drops are not read as such a policy: Docker 29's "unpublished port"
    # drop stops everything into its bridge, a KVM bridge's traffic included, while its
    # containers reach that bridge — only Docker's intent promises isolation there.
    isolated = [pair for pair, verdict in verdicts.items()
                if verdict.isolated and not verdict.by_policy and not verdict.native]
    if not isolated and len(docker) < 2:
        return  # this namespace does not isolate its bridges at all: no broken promise
    managed = (set(docker) | _docker_chain_bridges(state, subnets)
               | {name for pair in isolated for name in _named(verdicts[pair], subnets)})
    for a, b in combinations(sorted(managed), 2):
        open_ways = [(x, y) for x, y in ((a, b), (b, a))
                     if not verdicts[(x, y)].isolated and y not in guarded]
        if not open_ways:
            continue
        evidence = [Evidence(f"{name} has network {subnets[name][2]}", state.ref.id, "address",
                             subnets[name][2]) for name in (a, b)]
        for x, y in open_ways:
            evidence += verdicts[(x, y)].evidence(state.ref.id, f"{x} → {y} accepted by")
        if a in docker and b in docker:
            evidence += [docker[a], docker[b]]
            promise = "although Docker isolates its networks from each other"
        else:
            ix, iy = isolated[0]
            evidence += verdicts[(ix, iy)].evidence(state.ref.id,
                                                    f"while {ix} → {iy} is isolated by")
            promise = "although this namespace isolates its other bridge networks"
        directions = " and ".join(f"{x} → {y}" for x, y in open_ways)
        yield RULE.finding(
            state.ref, f"{a}<->{b}",
            f"bridges {a} and {b} are not isolated from each other ({directions} is forwarded) "
            f"{promise}",
            evidence=evidence,
            repair=Repair(f"isolate {a} and {b}", Safety.UNSAFE, tuple(
                AddIptablesRule(state.ref.id, "filter", "FORWARD",
                                ("-i", x, "-o", y, "-j", "DROP"), position=1)
                for x, y in open_ways)))


def _named(verdict: _Verdict, subnets: Subnets) -> set[str]:
    """The bridges the rules that isolated a pair name as such (`-i br-a`, `-o br-b`): the
    bridges that isolation was written for. A rule like Docker 28's `! -i docker0 -o docker0
    -j DROP` names docker0 only, so a KVM bridge beside it is not taken for one of them."""
    return {m.value for rule in verdict.because for m in rule.matches
            if m.option in ("in-interface", "out-interface") and not m.negated
            and m.value in subnets}


def _docker_chain_bridges(state: NamespaceState, subnets: Subnets) -> set[str]:
    """The bridges Docker's own chains name (DOCKER-USER is the admin's): Docker's networks,
    also one whose isolation rule is gone."""
    return {m.value for rule in state.firewall.iptables_rules
            if rule.table == "filter" and rule.family == 4 and rule.chain.startswith("DOCKER")
            and rule.chain != "DOCKER-USER"
            for m in rule.matches
            if m.option in ("in-interface", "out-interface") and not m.negated
            and m.value in subnets}


def _bridge_subnets(state: NamespaceState) -> Subnets:
    """bridge name → (first, last, cidr) of its first IPv4 network."""
    bridges = {link.name for link in state.links if link.kind == "bridge"}
    subnets: Subnets = {}
    for address in state.addresses:
        if address.family == 4 and address.ifname in bridges and address.ifname not in subnets:
            _, first, last, prefixlen = network_interval(address.cidr)
            subnets[address.ifname] = (first, last, format_network(4, first, prefixlen))
    return subnets


class _Native:
    """The namespace's native nftables forward chains, asked by the flow model (which runs
    them as the kernel does) about probes of a new connection from one bridge's network to
    another's: TCP and UDP to a port nobody publishes (9, discard) and an ICMP echo. All
    accepted is open; all dropped by one rule is isolation written for it; a mix (a rule for
    some traffic only) or an expression the model does not follow decides nothing."""

    def __init__(self, state: NamespaceState):
        self.state = state
        self.chains = nftables.base_chains(state, "FORWARD")
        self.tables = nftables.index_tables(state)
        self.local = frozenset(a.cidr.split("/")[0] for a in state.addresses)

    def verdicts_from(self, source: str, subnets: Subnets) -> dict[str, _Verdict]:
        return {name: self._verdict(source, name, subnets) for name in subnets
                if name != source}

    def _verdict(self, source: str, target: str, subnets: Subnets) -> _Verdict:
        src, dst = (str(ipaddress.IPv4Address(subnets[name][0] + 2)) for name in (source, target))
        where = PacketPlace(in_if=source, out_if=target, local=self.local)
        ends = []
        for proto in ("tcp", "udp", "icmp"):
            port = 0 if proto == "icmp" else 9
            packet = Packet(src, dst, proto, 40000 if port else 0, port)
            end = ("ACCEPT", "")
            for chain in self.chains:
                result = nftables.run_chain(self.state, self.tables, chain, "FORWARD", packet,
                                            where)
                if result.verdict != nftables.ACCEPT:
                    end = (result.verdict.upper(), result.where or result.rule)
                    break
                packet = result.packet
            ends.append(end)
        names = ", ".join(f"{c.family} {c.table} {c.name}" for c in self.chains)
        if all(action == "ACCEPT" for action, _ in ends):
            return _Verdict("ACCEPT", (), f"nft forward chains ({names}) accept it")
        action, where_ = ends[0]
        if all(end == (action, where_) for end in ends) and action == "DROP":
            return _Verdict("DROP", (), f"{where_}", native_policy=where_.endswith("policy"))
        return _Verdict("DROP", (), f"nft forward chains ({names}) pass only some of it",
                        native_policy=True)


# --- matching a rule: True, False, or None (it matches only some such connections) --------

_TOWARDS = ("out-interface", "destination")  # the options that depend on the destination


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A rule split for the walk: plain `-i X` / `-o X` are compared before anything else."""

    rule: IptablesRule
    in_interface: str  # a plain (not negated, no wildcard) -i, or ""
    out_interface: str  # the same for -o
    from_source: tuple[Match, ...]  # matches that depend on the source only
    towards: tuple[Match, ...]  # matches that depend on the destination

    def hits(self, source: str, targets: set[str], subnets: Subnets) -> set[str]:
        """The target bridges for which a new connection from `source` surely matches."""
        if self.out_interface:
            if self.out_interface not in targets:
                return set()
            targets = {self.out_interface}
        if self.in_interface and self.in_interface != source:
            return set()
        if self.from_source and _all_match(self.from_source, source, "", subnets) is not True:
            return set()
        if not self.towards:
            return set(targets)
        return {name for name in targets
                if _all_match(self.towards, source, name, subnets) is True}


def _compile(rule: IptablesRule) -> _Compiled:
    def plain(option: str) -> str:
        found = rule.match(option)
        usable = found is not None and not found.negated and not found.value.endswith("+")
        return found.value if usable else ""

    return _Compiled(rule, plain("in-interface"), plain("out-interface"),
                     tuple(m for m in rule.matches if m.option not in _TOWARDS),
                     tuple(m for m in rule.matches if m.option in _TOWARDS))


def _all_match(matches, source: str, target: str, subnets: Subnets) -> bool | None:
    return all_match(matches, lambda match: _match_one(match, source, target, subnets))


def _match_one(match: Match, source: str, target: str, subnets: Subnets) -> bool | None:
    option, value = match.option, match.value
    if option in ("in-interface", "out-interface"):
        name = source if option == "in-interface" else target
        return name.startswith(value[:-1]) if value.endswith("+") else name == value
    if option in ("source", "destination"):
        first, last, _ = subnets[source if option == "source" else target]
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
