"""Netfilter as the kernel runs it: every table of a hook, in priority order, of both iptables
backends, then the native nftables chains of that hook.

`Netfilter().run_hook(state, hook, packet, where)` walks the chains a packet meets at one
hook — raw, mangle, nat (first packet of a connection only), filter — following jumps, gotos
and RETURN to a verdict, applying MARK and NAT (DNAT, SNAT, MASQUERADE, REDIRECT) on the
way, with the native nftables base chains of the hook (netdiag/flows/nftables.py) between
them by priority. The packet must be accepted by every backend and every chain. A match or
target that is not modelled, met where it would decide, ends the walk as `unknown` naming
the rule: the engine never guesses. `-m set --match-set` asks the namespace's ipsets
(netdiag/flows/ipsets.py); a set the snapshot does not hold is such an unknown, named.

An IPv6 packet meets ip6tables (the family-6 rules of both backends) and the `ip6` and
`inet` base chains, which the nftables walk reads for both families.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from netdiag.flows import nftables
from netdiag.flows.ipsets import Ipsets, Lookup
from netdiag.flows.packet import ICMPV6, PROTOCOLS, Packet, StepKind, TraceStep
from netdiag.model import IptablesRule, Match, NamespaceState
from netdiag.model.index import network_interval

ACCEPT, DROP, UNKNOWN = "accept", "drop", "unknown"

# Tables at each hook, in the order of their priorities (raw -300, mangle -150, nat -100 for
# destination NAT, filter 0, nat 100 for source NAT).
# Where each iptables table sits among a hook's priorities (the kernel's NF_IP_PRI_*): native
# nftables base chains of any priority run between them.
TABLE_PRIORITY = {"raw": -300, "mangle": -150, "filter": 0, "security": 50}
NAT_PRIORITY = {"PREROUTING": -100, "OUTPUT": -100, "INPUT": 100, "POSTROUTING": 100}
# conntrack restores a reply's NATed address at the NAT priority: chains before it see the
# address the packet arrived with (Docker 28's raw-table drops never see a masqueraded reply).
CONNTRACK_NAT = -100
EVERY_PRIORITY = (-10_000, 10_000)

HOOK_TABLES = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "nat"),
    "FORWARD": ("mangle", "filter"),
    "OUTPUT": ("raw", "mangle", "nat", "filter"),
    "POSTROUTING": ("mangle", "nat"),
}
_CONTINUE_TARGETS = {"LOG", "NFLOG", "ULOG", "TRACE", "AUDIT", "CHECKSUM", "TCPMSS", "CT",
                     "NOTRACK", "CONNSECMARK", "SECMARK", "TOS", "DSCP", "TTL", "CLASSIFY", ""}
_MAX_DEPTH = 64
_ICMP_TYPES = {"echo-request": "8", "echo-reply": "0", "destination-unreachable": "3",
               "time-exceeded": "11", "any": ""}
_ICMPV6_TYPES = {"echo-request": "128", "echo-reply": "129", "destination-unreachable": "1",
                 "packet-too-big": "2", "time-exceeded": "3", "nd-neighbor-solicit": "135",
                 "nd-neighbor-advert": "136", "any": ""}
_ICMPV6_NAMES = ("ipv6-icmp", "icmpv6", "icmp6", str(ICMPV6))


@dataclass(frozen=True, slots=True)
class PacketPlace:
    """PacketPlace the packet is, for the matches that depend on it."""

    in_if: str = ""
    out_if: str = ""
    physdev_in: str = ""  # bridged frames: the bridge ports
    physdev_out: str = ""
    bridged: bool = False
    local: frozenset[str] = frozenset()  # the namespace's own addresses (addrtype LOCAL)
    in_address: str = ""  # the in-interface's address (REDIRECT)
    out_address: str = ""  # the out-interface's address (MASQUERADE)
    # nftables' fib: the device the namespace routes (dst, src, iif, mark) by, "" for none
    fib_dev: Callable[[str, str, str, int], str] | None = None


@dataclass(frozen=True, slots=True)
class ChainOutcome:
    verdict: str  # accept, drop, unknown
    packet: Packet  # after MARK and NAT
    steps: tuple[TraceStep, ...] = ()
    rule: str = ""  # the rule (as iptables-save prints it) that decided a drop or an unknown
    reason: str = ""
    where: str = ""  # "filter/FORWARD/3", "filter/FORWARD policy", "nft inet fw input"
    nat: tuple[str, Packet, Packet] | None = None  # ("dnat" | "snat", before, after)


class Netfilter:
    """The firewalls of one snapshot, each namespace's chains indexed on first use."""

    def __init__(self):
        self._chains: dict[tuple[int, str, str, int], _Chains] = {}
        self._tables: dict[int, nftables.Tables] = {}
        self._ipsets: dict[int, Ipsets] = {}
        self._orders: dict[tuple[int, str, int], list[tuple[int, str, object]]] = {}
        self._backend_names: dict[tuple[int, int], tuple[str, ...]] = {}
        self._layer2: dict[int, bool] = {}

    def tables(self, state: NamespaceState) -> nftables.Tables:
        """The namespace's nftables rules by chain and sets by table."""
        found = self._tables.get(state.ref.id)
        if found is None:
            found = self._tables[state.ref.id] = nftables.index_tables(state)
        return found

    def has_layer2(self, state: NamespaceState) -> bool:
        """Whether the namespace has any nftables chain of a `bridge` or `netdev` hook (an
        `inet` ingress one too): without one, a frame's layer-2 hooks need no walk."""
        found = self._layer2.get(state.ref.id)
        if found is None:
            found = self._layer2[state.ref.id] = any(
                chain.family in ("bridge", "netdev")
                or chain.family == "inet" and chain.hook in ("ingress", "egress")
                for chain in state.firewall.nft_chains)
        return found

    def chains(self, state: NamespaceState, backend: str, table: str, family: int = 4
               ) -> _Chains:
        key = (state.ref.id, backend, table, family)
        found = self._chains.get(key)
        if found is None:
            sets = self._ipsets.get(state.ref.id)
            if sets is None:
                sets = self._ipsets[state.ref.id] = Ipsets(state.firewall.ipsets)
            found = self._chains[key] = _index(state, backend, table, family, sets)
        return found

    def run_hook(self, state: NamespaceState, hook: str, packet: Packet, where: PacketPlace,
                 priorities: tuple[int, int] = EVERY_PRIORITY) -> ChainOutcome:
        """The verdict of the hook's chains whose priority is in [low, high): iptables'
        tables and native base chains in one priority order, each of which must accept.
        NAT chains (the nat table, `type nat` chains) run on a connection's first packet
        only, where the first that translates it wins, as in the kernel's nf_nat."""
        steps: list[TraceStep] = []
        nat = None
        low, high = priorities
        family = packet.family
        for priority, table, chain in self._order(state, hook, family):
            if not low <= priority < high:
                continue
            if (table == "nat" or chain is not None and chain.type == "nat") and (
                    packet.ctstate != "NEW" or nat is not None
                    or state.ref.id in packet.untracked):
                continue  # NAT decides on a connection's first packet; conntrack the rest
            if chain is not None:
                result = nftables.run_chain(state, self.tables(state), chain, hook, packet,
                                            where)
            else:
                result = self._iptables(state, table, hook, packet, where, family)
            steps += result.steps
            if result.verdict != ACCEPT:
                return ChainOutcome(result.verdict, packet, tuple(steps), result.rule,
                                    result.reason, result.where)
            packet = result.packet
            if result.nat is not None:
                kind, before, after = result.nat
                packet = replace(packet, ct_nat=packet.ct_nat + ((state.ref.id, kind),))
                nat = (kind, before, packet)
        return ChainOutcome(ACCEPT, packet, tuple(steps), nat=nat)

    def _order(self, state: NamespaceState, hook: str, family: int = 4
               ) -> list[tuple[int, str, object]]:
        """(priority, iptables table or "", native chain or None) in the order the kernel
        runs them; NAT chains run at the NAT hook's priority, among themselves by their own
        (iptables' first where priorities are equal). Sorted once per namespace and hook:
        exposure walks thousands of flows through the same few hooks."""
        key = (state.ref.id, hook, family)
        order = self._orders.get(key)
        if order is None:  # without the iptables tables that have no chain at this hook
            order = self._orders[key] = [
                (priority, table, chain) for priority, table, chain in
                _hook_order(state, hook, family) if chain is not None or any(
                    hook in self.chains(state, backend, table, family).policies
                    for backend in self._backends(state, family))]
        return order

    def _iptables(self, state: NamespaceState, table: str, hook: str, packet: Packet,
                  where: PacketPlace, family: int = 4) -> _Result:
        """One iptables (or ip6tables) table at a hook, of every backend that has it."""
        steps: list[TraceStep] = []
        nat = None
        for backend in self._backends(state, family):
            chains = self.chains(state, backend, table, family)
            if hook not in chains.policies:
                continue
            result = _Walk(chains, where, table, backend).run(hook, packet)
            steps += result.steps
            if result.verdict != ACCEPT:
                result.steps = steps
                return result
            nat = result.nat or nat
            packet = result.packet
        return _Result(ACCEPT, packet, steps, nat=nat)

    def _backends(self, state: NamespaceState, family: int) -> tuple[str, ...]:
        """The iptables backends (legacy, nft) with chains of `family`, once per namespace."""
        key = (state.ref.id, family)
        found = self._backend_names.get(key)
        if found is None:
            found = self._backend_names[key] = tuple(sorted(
                {c.backend for c in state.firewall.iptables_chains if c.family == family}))
        return found


def _hook_order(state: NamespaceState, hook: str, family: int
                ) -> list[tuple[int, str, object]]:
    found = [((NAT_PRIORITY[hook] if table == "nat" else TABLE_PRIORITY[table],
               NAT_PRIORITY[hook] if table == "nat" else 0, 0), table, None)
             for table in HOOK_TABLES[hook]]
    found += [((NAT_PRIORITY[hook] if chain.type == "nat" else chain.priority,
                chain.priority, 1), "", chain)
              for chain in nftables.base_chains(state, hook, family)]
    return [(key[0], table, chain) for key, table, chain in
            sorted(found, key=lambda item: item[0])]


@dataclass(frozen=True, slots=True)
class _Chains:
    rules: dict[str, tuple[IptablesRule, ...]]
    policies: dict[str, str]  # built-in chain → policy
    names: frozenset[str]
    # Per rule (the same order as `rules`), the destination ports it is limited to, or None:
    # a chain of 2000 published ports is passed by comparing an int, not by judging each
    # rule's matches (the kernel's walk is linear too, but in C).
    dports: dict[str, tuple[frozenset[int] | None, ...]]
    sets: Ipsets  # the namespace's ipsets, for `-m set` (shared by its tables)


def _only_dports(rule: IptablesRule) -> frozenset[int] | None:
    """The ports of a rule's plain `--dport`/`--dports` (no range, not negated), or None."""
    for match in rule.matches:
        if match.option in ("dport", "dports") and not match.negated:
            parts = match.value.split(",")
            if all(part.isdigit() for part in parts):
                return frozenset(int(part) for part in parts)
    return None


def _index(state: NamespaceState, backend: str, table: str, family: int,
           sets: Ipsets) -> _Chains:
    firewall = state.firewall
    rules: dict[str, list[IptablesRule]] = {}
    for rule in firewall.iptables_rules:
        if rule.backend == backend and rule.table == table and rule.family == family:
            rules.setdefault(rule.chain, []).append(rule)
    chains = [c for c in firewall.iptables_chains
              if c.backend == backend and c.table == table and c.family == family]
    ordered = {name: tuple(sorted(found, key=lambda r: r.position))
               for name, found in rules.items()}
    return _Chains(ordered, {c.name: c.policy or "ACCEPT" for c in chains if c.policy},
                   frozenset(c.name for c in chains),
                   {name: tuple(_only_dports(rule) for rule in found)
                    for name, found in ordered.items()}, sets)


_Result = nftables.Result  # one walk result for both: verdict, packet, steps, rule, reason


class _Walk:
    def __init__(self, chains: _Chains, where: PacketPlace, table: str, backend: str):
        self.chains, self.where, self.table, self.backend = chains, where, table, backend

    def run(self, hook: str, packet: Packet) -> _Result:
        result = self._chain(hook, packet, 0)
        if result.verdict == "return":
            policy = self.chains.policies.get(hook, "ACCEPT")
            verdict = ACCEPT if policy == "ACCEPT" else DROP
            result.steps.append(TraceStep(StepKind.NETFILTER,
                                          f"{self._table()}/{hook} policy {policy}"))
            result.verdict = verdict
            if verdict == DROP:
                result.where = result.rule = f"{self._table()}/{hook} policy {policy}"
                result.reason = f"the {self._table()} {hook} chain's policy is {policy}"
        return result

    def _table(self) -> str:
        return self.table if self.backend == "nft" else f"{self.table} (legacy)"

    def _chain(self, chain: str, packet: Packet, depth: int) -> _Result:
        steps: list[TraceStep] = []
        if depth > _MAX_DEPTH:
            return _Result(UNKNOWN, packet, steps, chain, "chains nest too deep", where=chain)
        for rule, dports in zip(self.chains.rules.get(chain, ()),
                                self.chains.dports.get(chain, ()), strict=True):
            if dports is not None and packet.dport not in dports:
                continue  # what _rule_matches would say, sooner
            hit = _rule_matches(rule, packet, self.where, self.chains.sets)
            if hit is False:
                continue
            name = f"{self._table()}/{rule.chain}/{rule.position}"
            text = rule.text or name
            target = rule.target
            if hit is None:
                if _continues(rule):
                    continue  # it could not change the packet's fate either way
                return _Result(UNKNOWN, packet, steps, text,
                               _unmodelled(rule, packet, self.where, self.chains.sets),
                               where=name)
            if _continues(rule):
                continue
            if target == "ACCEPT":
                steps.append(TraceStep(StepKind.NETFILTER, f"{name}: accepted", text))
                return _Result(ACCEPT, packet, steps)
            if target in ("DROP", "REJECT"):
                done = "dropped" if target == "DROP" else "rejected"
                steps.append(TraceStep(StepKind.NETFILTER, f"{name}: {done}", text))
                return _Result(DROP, packet, steps, text, f"{target} by {name}", where=name)
            if target == "RETURN":
                return _Result("return", packet, steps)
            if target == "MARK":
                packet = replace(packet, mark=_marked(packet.mark, rule))
                steps.append(TraceStep(StepKind.NETFILTER, f"{name}: mark {packet.mark:#x}", text))
                continue
            if target in ("DNAT", "SNAT", "MASQUERADE", "REDIRECT"):
                after = _nat(target, rule, packet, self.where)
                if after is None:
                    return _Result(UNKNOWN, packet, steps, text,
                                   f"{target} without an address to use is not modelled",
                                   where=name)
                kind = "dnat" if target in ("DNAT", "REDIRECT") else "snat"
                steps.append(TraceStep(StepKind.NAT,
                                       f"{name}: {target} {packet.text} ⇒ {after.text}", text))
                return _Result(ACCEPT, after, steps, nat=(kind, packet, after))
            if target in self.chains.rules or target in self.chains.names:
                steps.append(TraceStep(StepKind.NETFILTER,
                                       f"{name}: {'goto' if rule.goto else 'jump'} {target}",
                                       text))
                inner = self._chain(target, packet, depth + 1)
                steps += inner.steps
                inner.steps = steps
                if inner.verdict != "return":
                    return inner
                packet = inner.packet
                if rule.goto:
                    return _Result("return", packet, steps)
                continue
            return _Result(UNKNOWN, packet, steps, text, f"target {target} is not modelled",
                           where=name)
        return _Result("return", packet, steps)


def _marked(mark: int, rule: IptablesRule) -> int:
    for option in ("set-xmark", "set-mark"):
        value = rule.target_option(option)
        if value:
            bits, _, mask = value.partition("/")
            value_int, mask_int = int(bits, 0), int(mask, 0) if mask else 0xFFFFFFFF
            if option == "set-xmark":
                return (mark & ~mask_int) ^ value_int
            return (mark & ~mask_int) | value_int
    if rule.target_option("or-mark"):
        return mark | int(rule.target_option("or-mark"), 0)
    if rule.target_option("and-mark"):
        return mark & int(rule.target_option("and-mark"), 0)
    return mark


def _nat(target: str, rule: IptablesRule, packet: Packet, where: PacketPlace) -> Packet | None:
    if target == "DNAT":
        address, port = _address_port(rule.target_option("to-destination"))
        if not address:
            return None
        return replace(packet, dst=address, dport=port or packet.dport)
    if target == "SNAT":
        address, port = _address_port(rule.target_option("to-source"))
        if not address and not port:
            return None
        return replace(packet, src=address or packet.src, sport=port or packet.sport)
    if target == "MASQUERADE":
        if not where.out_address:
            return None
        ports = rule.target_option("to-ports")
        return replace(packet, src=where.out_address,
                       sport=int(ports.split("-")[0]) if ports else packet.sport)
    # REDIRECT: to the in-interface's address (the loopback for locally sent packets)
    address = where.in_address if where.in_if else "::1" if packet.family == 6 else "127.0.0.1"
    if not address:
        return None
    ports = rule.target_option("to-ports")
    return replace(packet, dst=address, dport=int(ports.split("-")[0]) if ports else packet.dport)


def _address_port(value: str) -> tuple[str, int]:
    """"172.18.0.2:80" → ("172.18.0.2", 80), "[fd00::2]:80" → ("fd00::2", 80), "fd00::2"
    → ("fd00::2", 0); ranges use their first address and port."""
    if value.startswith("["):
        address, _, port = value[1:].partition("]")
        port = port.removeprefix(":")
    elif value.count(":") > 1:
        address, port = value, ""
    else:
        address, _, port = value.partition(":")
    address = address.split("-")[0]
    return address, int(port.split("-")[0]) if port else 0


# --- matches ------------------------------------------------------------------------------


def all_match(matches: Iterable[Match], one: Callable[[Match], bool | None]) -> bool | None:
    """Do all of a rule's matches hold? True, False, or None when some cannot be told (and
    none is False); `one` judges a match before its `!` is applied."""
    result: bool | None = True
    for match in matches:
        hit = one(match)
        if hit is not None and match.negated:
            hit = not hit
        if hit is False:
            return False
        if hit is None:
            result = None
    return result


_NO_SETS = Ipsets(())


def _rule_matches(rule: IptablesRule, packet: Packet, where: PacketPlace,
                  sets: Ipsets = _NO_SETS) -> bool | None:
    return all_match(rule.matches, lambda match: _match(match, packet, where, sets, rule))


def _unmodelled(rule: IptablesRule, packet: Packet, where: PacketPlace,
                sets: Ipsets = _NO_SETS) -> str:
    """Why the rule's matches cannot be judged: an ipset that was not read, or the matches
    the model does not know."""
    unread = [name for name in _set_names(rule) if not sets.known(name)]
    if unread:
        return (f"ipset {', '.join(unread)} is not in the snapshot (not read, or a snapshot "
                f"older than schema 11)")
    names = [f"--{m.option}" for m in rule.matches
             if _match(m, packet, where, sets, rule) is None]
    return ("match " + ", ".join(names) if names else "a match") + " is not modelled"


def _continues(rule: IptablesRule) -> bool:
    """Does the walk go on past the rule's target whatever it matches? SET only adds to or
    deletes from a set (what later packets meet, not this one), unless it maps marks."""
    if rule.target == "SET":
        return not rule.target_option("map-set")
    return rule.target in _CONTINUE_TARGETS


def _set_names(rule: IptablesRule) -> list[str]:
    return [m.value.split()[0] for m in rule.matches if m.option == "match-set" and m.value]


# Options of xt_set that qualify its --match-set rather than test anything themselves.
_SET_FLAGS = ("return-nomatch", "update-counters", "update-subcounters")


def _match_set(match: Match, packet: Packet, where: PacketPlace, sets: Ipsets,
               rule: IptablesRule | None) -> bool | None:
    """`--match-set NAME src,dst`: is the packet in the set, each dimension read from the
    end the flags name (flows/ipsets.py)?"""
    name, _, flags = match.value.partition(" ")
    sources = tuple(flag == "src" for flag in flags.split(","))
    return_nomatch = rule is not None and rule.match("return-nomatch") is not None
    return sets.test(name, sources, _lookup(packet, where), return_nomatch)


def _lookup(packet: Packet, where: PacketPlace) -> Lookup:
    """The packet as ipset reads it; an ICMP packet's "port" is type << 8 | code."""
    family = packet.family
    protocol, sport, dport = PROTOCOLS.get(packet.proto, 0), packet.sport, packet.dport
    if packet.proto == "icmp":
        number = (_ICMP_TYPES if family == 4 else _ICMPV6_TYPES).get(packet.icmp_type, "")
        protocol = 1 if family == 4 else ICMPV6
        sport = dport = int(number) << 8 if number else None
    return Lookup(family, packet.src, packet.dst, protocol, sport, dport, where.in_if,
                  where.out_if, where.physdev_in, where.physdev_out)


def _in_network(address: str, value: str) -> bool | None:
    try:
        _, first, last, _ = network_interval(value)
        _, one, _, _ = network_interval(address)
    except ValueError:
        return None
    return first <= one <= last


def _interface(name: str, value: str) -> bool:
    return name.startswith(value[:-1]) if value.endswith("+") else name == value


def _ports(port: int, value: str) -> bool:
    for part in value.split(","):
        low, _, high = part.partition(":")
        if low.isdigit() and int(low) <= port <= int(high or low):
            return True
    return False


def _match(match: Match, packet: Packet, where: PacketPlace, sets: Ipsets = _NO_SETS,
           rule: IptablesRule | None = None) -> bool | None:
    option, value = match.option, match.value
    if option in ("source", "destination"):
        address = packet.src if option == "source" else packet.dst
        return any(_in_network(address, part) for part in value.split(","))
    if option in ("in-interface", "out-interface"):
        name = where.in_if if option == "in-interface" else where.out_if
        return _interface(name, value)
    if option == "protocol":
        wanted = value.lower()
        if packet.family == 6 and packet.proto == "icmp":  # ICMPv6 is its own protocol
            return wanted in ("all", "0", *_ICMPV6_NAMES)
        return wanted in ("all", "0") or wanted == packet.proto or \
            wanted == str(PROTOCOLS.get(packet.proto, -1))
    if option in ("dport", "sport", "dports", "sports", "ports"):
        if packet.proto not in ("tcp", "udp"):
            return False
        if option == "ports":
            return _ports(packet.sport, value) or _ports(packet.dport, value)
        return _ports(packet.dport if option.startswith("d") else packet.sport, value)
    if option in ("ctstate", "state"):
        states = {s.strip().upper() for s in value.split(",")}
        if states & {"DNAT", "SNAT"} and not states & {packet.ctstate}:
            return None
        return packet.ctstate in states
    if option in ("src-type", "dst-type"):
        address = packet.src if option == "src-type" else packet.dst
        types = {t.upper() for t in value.split(",")}
        local = address in where.local or address.startswith("127.") or address == "::1"
        kind = "LOCAL" if local else "UNICAST"
        if types - {"LOCAL", "UNICAST"}:
            return None if kind not in types else True
        return kind in types
    if option in ("limit-iface-in", "limit-iface-out"):
        return None
    if option == "comment":
        return True
    if option == "physdev-in":
        return bool(where.physdev_in) and _interface(where.physdev_in, value)
    if option == "physdev-out":
        return bool(where.physdev_out) and _interface(where.physdev_out, value)
    if option == "physdev-is-bridged":
        return where.bridged
    if option in ("physdev-is-in", "physdev-is-out"):
        return bool(where.physdev_in if option.endswith("in") else where.physdev_out)
    if option == "mark":
        bits, _, mask = value.partition("/")
        try:
            mask_int = int(mask, 0) if mask else 0xFFFFFFFF
            return packet.mark & mask_int == int(bits, 0)
        except ValueError:
            return None
    if option == "icmpv6-type":
        if packet.proto != "icmp" or packet.family != 6:
            return False
        wanted = value.split("/")[0]
        return wanted in (packet.icmp_type, _ICMPV6_TYPES.get(packet.icmp_type), "any")
    if option == "icmp-type":
        if packet.proto != "icmp" or packet.family != 4:
            return False
        wanted = value.split("/")[0]
        return wanted in (packet.icmp_type, _ICMP_TYPES.get(packet.icmp_type), "any")
    if option == "tcp-flags":
        if packet.proto != "tcp":
            return False
        mask, _, wanted = value.partition(" ")
        flags = {"SYN"} if packet.ctstate == "NEW" else {"SYN", "ACK"}
        masked = flags & set(mask.split(","))
        return masked == set(wanted.split(",")) - {"NONE"}
    if option == "syn":
        return packet.proto == "tcp" and packet.ctstate == "NEW"
    if option == "match-set":
        return _match_set(match, packet, where, sets, rule)
    if option in _SET_FLAGS and match.module == "set":
        return not match.negated  # a flag, not a test: true however it is written (`!` too)
    return None
