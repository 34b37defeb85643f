"""Native nftables as the kernel runs it: one base chain of a hook, for one IPv4 or IPv6 packet.

Each rule is read from its expressions as `nft -j` gives them (NftRule.expr):

* matches on payload fields of both families (`ip` and `ip6` addresses, protocol/nexthdr,
  version; `tcp`, `udp`, `th`, `icmp` and `icmpv6` type and code, tcp flags; `ip frag-off`
  masked without the DF bit, 0 for the model's whole packets; `tcp option maxseg size`, the
  MSS Linux puts in a SYN or SYN-ACK: the link's MTU less the headers), `meta`
  (l4proto, nfproto, protocol, iif/oif and their names with `*` wildcards, mark, pkttype,
  skuid on forwarded packets), `ct` (state, status, mark, direction, zone, l3proto, the
  original and reply addresses of a connection not translated in this namespace), `fib`
  (the address type of saddr/daddr; the out-interface of a lookup, with iif and mark, or
  `missing`), `&` masks, concatenations, anonymous and named sets and maps with IPv4 and IPv6
  constants, prefixes and intervals;
* an expression that only concerns the other family (`ip6`, `icmpv6`, `nfproto ipv6`,
  `ct original ip6 saddr`, `dnat ip6 to`, `reject with icmpv6` for an IPv4 packet, and the
  IPv4 ones for an IPv6 packet) carries an implicit dependency on the family, as it does in
  the kernel: it never matches, whatever its operator — the same for a port match on a
  packet of another transport protocol, and for an IPv6 extension header (the model's
  packets carry none); `th` has no such dependency: it reads the raw transport header (of an
  ICMP packet, its type and code for `sport`, its checksum — which the model does not know —
  for `dport`, so that only a concatenation another part of which fails decides there);
* statements: `meta mark set` and `ct mark set` (values and `|`/`&`/`^` of marks), counter,
  log, limit, quota, set updates, flow offload and setting DSCP, ECN, TTL or a UDP checksum
  as no-ops (a rate or quota is taken as not reached), notrack (the flow is untracked in
  this namespace);
* verdicts accept, drop, reject (`with icmp`/`icmpv6` only in its family, `tcp reset` only
  for TCP, `icmpx` and the default for any packet), jump, goto, return, continue, and verdict maps
  (one keyed by numgen or jhash — kube-proxy's choice of an endpoint — is certain with one
  element; of several, each is followed, and the outcome is certain only if every one leads
  to the same verdict and packet, else `unknown`: the kernel picks one per connection);
* NAT: dnat, snat, masquerade, redirect to an address, a port or port range (the kernel takes
  the range's first port for a new connection), or through a map keyed by the packet (named or
  anonymous, intervals and concatenated address . port data); a map keyed by numgen or jhash
  is certain only if all its elements are the same; a NAT of one family (`dnat ip6
  to [fd00::2]:80`) leaves a packet of the other as it is, the kernel's inet NAT does too.

A rule that only counts, logs or updates a set (`meta skuid 1000 counter`) changes nothing,
whatever it matches. A match the model cannot tell — what a flow does not name (the sending
process's user or group: `meta skuid` at output; the remaining TTL or hop limit: `ip ttl`,
`ip6 hoplimit`), a MAC address — is tried both ways: the chain's fate is certain if the rule
matching and not matching lead to the same, else `unknown` naming the match.

Frames (`run_layer2`): the base chains of a `bridge` table (prerouting, input, forward,
output, postrouting; the bridge family sees frames whether br_netfilter is loaded or not) and
those bound to a device at `netdev` ingress or egress (and `inet` ingress), with `meta
iifname`/`oifname` the bridge port or the device. Before the packet they judge the ARP request
(or ICMPv6 neighbour solicitation) that must pass the same way first — not on a device that
resolves no neighbours (NOARP: a tun, WireGuard, ipip; loopback), and not the ARP request in
an `inet` ingress chain, which the kernel runs for IPv4 and IPv6 only (the IP hooks of both
ends judge IPv6's neighbour discovery too: walk.py's `_solicit`). With br_netfilter
(`bridge-nf-call-iptables`), the walk runs the IP hooks for a bridged frame from within the
bridge's, as the kernel does (net/bridge/br_netfilter_hooks.c): prerouting's and forward's at
NF_BR_PRI_BRNF (0; a bridge chain at 0 runs before, as one loaded after the namespace's first
bridge does), postrouting's last (`BRNF_BEFORE`, `BRNF_AFTER`). Conntrack: a frame at a
device's ingress has no entry yet (`ct state invalid`, other ct keys match nothing; at a
bridge's with br_netfilter, the IP prerouting has attached it); a `bridge` chain with a ct
expression exists only where nf_conntrack_bridge is (the kernel refuses the rule otherwise,
and loads it), whose conntrack runs at prerouting priority -200: chains before see no entry.
What only a frame has — MAC addresses, VLAN tags, `meta ibrname`, ARP fields — and fib and
NAT in these chains are `unknown` where they decide; `ether type` is the packet's.

An expression outside this list met where it decides is `unknown` naming the rule and the
expression — never a guess.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass, replace

from netdiag.flows.packet import ICMPV6, PROTOCOLS, Packet, StepKind, TraceStep
from netdiag.model import NamespaceState, NftChain, NftRule, NftSet
from netdiag.model.facts import XTABLES_TABLES

ACCEPT, DROP, UNKNOWN, RETURN = "accept", "drop", "unknown", "return"
# Statements that do not change where the packet goes (a limit or quota is taken as not
# reached; a set update or a flow offload changes later packets, not this one).
_QUIET = {"counter", "log", "limit", "quota", "set", "flow", "ct helper", "ct timeout",
          "ct expectation", "synproxy_none"}
_MAX_DEPTH = 64
CONNTRACK_PRIORITY = -200  # chains before it (raw) see no connection yet: ct state invalid
LAYER2_FAMILIES = ("bridge", "netdev")
# The bridge chains br_netfilter's IP hooks run after (NF_BR_PRI_BRNF is 0): (low, high]
BRNF_BEFORE = (float("-inf"), 0)
BRNF_AFTER = (0, float("inf"))
EVERY_CHAIN = (float("-inf"), float("inf"))


class Unmodelled(Exception):
    """An expression the engine does not follow (only raised inside this module)."""


class UnknownMatch(Unmodelled):
    """A match whose truth the engine cannot tell (the socket's owner, a MAC address): the
    rule either matches or not, and the chain's walk tries both."""


@dataclass(slots=True)
class Result:
    """Where a walk through chains ended (iptables' walk in netfilter.py uses it too)."""

    verdict: str  # accept, drop, unknown, return (fell off the chain, or RETURN)
    packet: Packet
    steps: list[TraceStep]
    rule: str = ""
    reason: str = ""
    where: str = ""
    nat: tuple[str, Packet, Packet] | None = None


def base_chains(state: NamespaceState, hook: str, family: int = 4) -> list[NftChain]:
    """The native base chains that see a packet of `family` at `hook`, by priority: those of
    `ip` (IPv6: `ip6`) and `inet` tables that iptables-nft did not write (told by the
    collector; for a snapshot older than that, an `ip`/`ip6` table named like an iptables
    table counts as iptables-nft's)."""
    hook_name = hook.lower()
    origins = {(t.family, t.name): t.origin for t in state.firewall.nft_tables}
    return sorted((c for c in state.firewall.nft_chains if c.hook == hook_name
                   and c.family in (("ip" if family == 4 else "ip6"), "inet")
                   and not _iptables_nft(c, origins.get((c.family, c.table), ""))),
                  key=lambda c: c.priority)


def _iptables_nft(chain: NftChain, origin: str) -> bool:
    if origin:
        return origin == "iptables-nft"
    return chain.family in ("ip", "ip6") and chain.table in XTABLES_TABLES


def layer2_chains(state: NamespaceState, family: str, hook: str, device: str = ""
                  ) -> list[NftChain]:
    """The base chains of a `bridge` hook (family "bridge": prerouting, input, forward,
    output, postrouting), or those bound to `device` at a `netdev` hook (family "netdev":
    ingress, egress; `inet` tables have ingress chains too), by priority. One recorded
    without its devices (an older snapshot) is among those of every device (run_layer2
    says its fate is unknown)."""
    found = []
    for chain in state.firewall.nft_chains:
        if chain.hook != hook:
            continue
        if family == "bridge" and chain.family == "bridge" or \
                family == "netdev" and chain.family in ("netdev", "inet") and \
                (not chain.devices or device in chain.devices):
            found.append(chain)
    return sorted(found, key=lambda c: c.priority)


def run_layer2(state: NamespaceState, tables: Tables, family: str, hook: str, packet: Packet,
               where, device: str = "", window: tuple[float, float] = EVERY_CHAIN,
               bridge_nf: bool = False) -> Result:
    """The verdict of a `bridge` or `netdev` hook for a frame carrying `packet`: each of its
    base chains whose priority is in `window` (low, high] must accept. These chains see every
    frame, so before the packet they judge the neighbour resolution that must pass the same
    way for it to be sent at all (an ARP request, or for IPv6 a neighbour solicitation): a
    chain with policy drop that lets only `ip protocol tcp` through stops TCP too, as in the
    kernel — on a device that resolves neighbours. `bridge_nf`: bridge-nf-call-iptables (or
    -ip6tables, for the packet's family) is 1 in the namespace."""
    chains = layer2_chains(state, family, hook, device)
    if not chains:
        return Result(ACCEPT, packet, [])
    unbound = next((c for c in chains if family == "netdev" and not c.devices), None)
    if unbound is not None:
        name = f"nft {unbound.family} {unbound.table} {unbound.name}"
        return Result(UNKNOWN, packet, [], name, f"the devices {name} is bound to are not in "
                      "the snapshot (taken before netdiag recorded them)", name)
    steps: list[TraceStep] = []
    resolution = _resolution_frame(packet)
    link = next((k for k in state.links if k.name == device), None) if device else None
    resolves = link is None or not {"NOARP", "LOOPBACK"} & set(link.flags)
    for chain in chains:
        if not resolves:
            break  # no neighbour resolution on this device
        if chain.family == "inet" and resolution.proto == "arp":
            continue  # an inet ingress chain sees IPv4 and IPv6 only
        # conntrack gives neither ARP nor a neighbour solicitation an entry: ct state invalid
        probe = run_chain(state, tables, chain, hook.upper(), resolution, where, False)
        if probe.verdict != ACCEPT:
            what = "ARP" if packet.family == 4 else "neighbour discovery (ICMPv6)"
            fate = "dropped" if probe.verdict == DROP else "of unknown fate"
            probe.steps.append(TraceStep(StepKind.NETFILTER, f"{what} is {fate} here: "
                                         f"no {packet.proto} packet is sent without it",
                                         probe.rule))
            return Result(probe.verdict, packet, probe.steps, probe.rule,
                          f"{what} {fate}: {probe.reason}", probe.where)
    for chain in chains:
        if not window[0] < chain.priority <= window[1]:
            continue
        result = run_chain(state, tables, chain, hook.upper(), packet, where,
                           _conntrack(state, chain, link, bridge_nf))
        steps += result.steps
        if result.verdict != ACCEPT:
            result.steps = steps
            return result
        packet = result.packet
    return Result(ACCEPT, packet, steps)


def _conntrack(state: NamespaceState, chain: NftChain, link, bridge_nf: bool) -> bool | None:
    """Does a frame have its conntrack entry in this layer-2 chain (None: not known)? In a
    bridge chain, after nf_conntrack_bridge's prerouting hook (a ct expression there loads
    it); at a device's ingress, only if it came from the same namespace (a veth pair within
    it, loopback: None), or up from a bridge's port with br_netfilter's IP prerouting run."""
    if chain.family == "bridge":
        return chain.hook != "prerouting" or chain.priority >= CONNTRACK_PRIORITY
    if chain.hook != "ingress" or link is None:
        return None
    if link.kind == "bridge":
        return bridge_nf
    if link.kind == "loopback" or link.peer_namespace == state.ref.id:
        return None
    return False  # from the wire, or a veth whose peer is in another namespace


def _resolution_frame(packet: Packet) -> Packet:
    """The frame neighbour resolution sends before `packet` can go: an ARP request (no IP
    header: every IP and transport match fails on it), or an ICMPv6 neighbour solicitation
    to a solicited-node group, whose addresses (the sender's, the next hop's group) this
    walk does not know, so that a rule that decides by them is `unknown`."""
    if packet.family == 4:
        return Packet("0.0.0.0", "0.0.0.0", "arp", mark=packet.mark)
    return Packet("::", "ff02::1:ff00:0", "icmp", icmp_type="nd-neighbor-solicit",
                  mark=packet.mark)


def run_chain(state: NamespaceState, tables: Tables, chain: NftChain, hook: str,
              packet: Packet, where, conntrack: bool | None = True) -> Result:
    """The verdict of one base chain (accept, drop or unknown), its policy applied; `tables`
    is the namespace's index (`index_tables`, kept by the caller for a run); `conntrack`,
    for a layer-2 chain, whether the frame has its conntrack entry there (None: unknown)."""
    name = f"nft {chain.family} {chain.table} {chain.name}"
    context = _Context(tables.sets.get((chain.family, chain.table), {}), state.ref.id,
                       hook, chain.priority, where, chain.family, chain.name,
                       chain.policy or "accept", conntrack, state.links)
    result = _chain(tables.rules, context, chain.family, chain.table, chain.name, packet, 0)
    if result.verdict == RETURN:
        if (chain.policy or "accept") == "drop":
            result.steps.append(TraceStep(StepKind.NETFILTER, f"{name}: policy drop", name))
            return Result(DROP, result.packet, result.steps, name, f"{name} has policy drop",
                          f"{name} policy")
        result.verdict = ACCEPT
    return result


@dataclass(frozen=True, slots=True)
class Tables:
    rules: dict[tuple[str, str, str], list[NftRule]]
    sets: dict[tuple[str, str], dict[str, NftSet]]


def index_tables(state: NamespaceState) -> Tables:
    """The namespace's rules by chain and sets by table."""
    firewall = state.firewall
    rules: dict[tuple[str, str, str], list[NftRule]] = {}
    for rule in firewall.nft_rules:
        rules.setdefault((rule.family, rule.table, rule.chain), []).append(rule)
    sets: dict[tuple[str, str], dict[str, NftSet]] = {}
    for named in firewall.nft_sets:
        sets.setdefault((named.family, named.table), {})[named.name] = named
    return Tables(rules, sets)


@dataclass(frozen=True, slots=True)
class _Context:
    sets: dict[str, NftSet]
    ns: int  # the namespace's id: its conntrack entries are its own
    hook: str
    priority: int
    where: object  # netfilter.PacketPlace
    family: str = ""  # the table's; "bridge" and "netdev" chains see frames
    chain: str = ""  # the base chain's name (no rule can jump to it) and its policy
    policy: str = ""
    conntrack: bool | None = True  # a layer-2 chain's frame has its entry (None: unknown)
    links: tuple = ()  # the namespace's (their MTUs: the MSS of a SYN)

    @property
    def layer2(self) -> bool:
        """A chain of frames: a bridge table's, or one at a device's ingress or egress."""
        return self.family in LAYER2_FAMILIES or self.hook in ("INGRESS", "EGRESS")


def _chain(rules, context: _Context, family: str, table: str, chain: str, packet: Packet,
           depth: int, start: int = 0, assume: tuple[int, bool] | None = None) -> Result:
    """The chain's walk from its rule `start`; `assume` is (a rule's index, whether its
    unknowable match holds), set when the walk tries both."""
    steps: list[TraceStep] = []
    if depth > _MAX_DEPTH:
        return Result(UNKNOWN, packet, steps, chain, "chains nest too deep", chain)
    for index, rule in enumerate(rules.get((family, table, chain), ())):
        if index < start:
            continue
        name = f"nft {family} {table} {chain} handle {rule.handle}"
        text = rule.text or name
        try:
            outcome, packet_after, detail = _rule(
                rule, packet, context, assume[1] if assume and assume[0] == index else None)
        except UnknownMatch as exc:
            either = _either(rules, context, (family, table, chain), packet, depth, index)
            if either is None:
                return Result(UNKNOWN, packet, steps, text, f"{exc} is not modelled", name)
            steps.append(TraceStep(StepKind.NETFILTER, f"{name}: {exc} is not known; the "
                                   "rule matching or not leads to the same", text))
            either.steps = steps + either.steps
            return either
        except Unmodelled as exc:
            return Result(UNKNOWN, packet, steps, text, f"{exc} is not modelled", name)
        if outcome is None:
            packet = packet_after  # it matched only in part (statements), or not at all
            continue
        kind, target = outcome
        if kind == "choice":  # a numgen/jhash verdict map: certain if every element agrees
            chosen = _choose(rules, context, family, table, target, packet_after, depth)
            if chosen is None:
                return Result(UNKNOWN, packet, steps, text, f"the {len(target)} elements of "
                              f"a verdict map keyed{detail} lead to different fates (the "
                              "kernel picks one per connection: by a counter, a random "
                              "number or a hash)", name)
            (kind, target), detail = chosen, f" (each of the {len(target)} elements keyed" \
                f"{detail} leads to the same)"
        if kind == "continue":
            packet = packet_after
            continue
        if kind == "accept":
            steps.append(TraceStep(StepKind.NETFILTER, f"{name}: accepted", text))
            return Result(ACCEPT, packet_after, steps)
        if kind in ("drop", "reject"):
            steps.append(TraceStep(StepKind.NETFILTER,
                                   f"{name}: {'dropped' if kind == 'drop' else 'rejected'}",
                                   text))
            return Result(DROP, packet_after, steps, text, f"{kind} by {name}", name)
        if kind == "return":
            return Result(RETURN, packet_after, steps)
        if kind == "nat":
            steps.append(TraceStep(StepKind.NAT,
                                   f"{name}: {detail} {packet.text} ⇒ {packet_after.text}", text))
            return Result(ACCEPT, packet_after, steps, nat=(target, packet, packet_after))
        steps.append(TraceStep(StepKind.NETFILTER, f"{name}: {kind} {target}{detail}", text))
        inner = _chain(rules, context, family, table, target, packet_after, depth + 1)
        steps += inner.steps
        inner.steps = steps
        if inner.verdict != RETURN:
            return inner
        packet = inner.packet
        if kind == "goto":
            return Result(RETURN, packet, steps)
    return Result(RETURN, packet, steps)


_FORK_DEPTH = 8  # a tried match costs this much of _MAX_DEPTH: at most 8 nested, 256 walks


def _either(rules, context: _Context, where: tuple[str, str, str], packet: Packet,
            depth: int, index: int) -> Result | None:
    """The chain's walk from rule `index` whose match cannot be told, if the rule matching
    and not matching lead to the same verdict and packet; else None."""
    fates = [_chain(rules, context, *where, packet, depth + _FORK_DEPTH, index, (index, held))
             for held in (True, False)]

    def verdict(fate: Result) -> str:  # falling off the base chain is its policy
        if fate.verdict == RETURN and where[2] == context.chain:
            return DROP if context.policy == "drop" else ACCEPT
        return fate.verdict

    if any(fate.verdict == UNKNOWN for fate in fates) or \
            len({repr((verdict(fate), fate.packet, fate.nat)) for fate in fates}) > 1:
        return None
    return fates[0]


def _choose(rules, context: _Context, family: str, table: str, options, packet: Packet,
            depth: int):
    """The first of a verdict map's `options` ((kind, target) pairs) if each leads to the
    same verdict and packet (and translation), else None."""
    fates = set()
    for kind, target in options:
        if kind in ("jump", "goto"):
            inner = _chain(rules, context, family, table, target, packet, depth + 1)
            after = "return" if inner.verdict == RETURN and kind == "goto" else \
                "continue" if inner.verdict == RETURN else inner.verdict
            fate = (after, inner.packet, inner.nat, inner.reason if after == DROP else "")
        else:
            fate = ("drop" if kind == "reject" else kind, packet, None, "")
        fates.add(repr(fate))
    return options[0] if len(fates) == 1 else None


_VERDICTS = ("accept", "drop", "reject", "return", "continue")


def _rule(rule: NftRule, packet: Packet, context: _Context, assumed: bool | None = None
          ) -> tuple[tuple[str, str] | None, Packet, str]:
    """(verdict and target, or None to go on; the packet after its statements; a note).
    A match whose truth cannot be told raises UnknownMatch, or is taken as `assumed`."""
    try:
        expressions = json.loads(rule.expr) if rule.expr else []
    except ValueError:
        raise Unmodelled("an unreadable rule") from None
    if not expressions:
        raise Unmodelled("a rule without its expressions")
    if all(key == "match" or key in _QUIET for expression in expressions
           for key in expression):
        return None, packet, ""  # only counts or logs: whatever it matches, nothing changes
    for expression in expressions:
        (key, value), = expression.items()
        if key == "match":
            try:
                held = _match(value, packet, context)
            except Unmodelled as exc:
                if assumed is None:
                    raise UnknownMatch(str(exc)) from None
                held = assumed
            if not held:
                return None, packet, ""
        elif key in _QUIET:
            continue
        elif key == "mangle":
            packet = _mangle(value, packet, context)
        elif key == "notrack":
            packet = replace(packet, untracked=packet.untracked | {context.ns})
        elif key == "reject" and not _rejects(value or {}, packet):
            return None, packet, ""  # `with icmp` of the other family, `tcp reset` of UDP
        elif key in _VERDICTS:
            return (key, ""), packet, ""
        elif key in ("jump", "goto"):
            return (key, value["target"]), packet, ""
        elif key == "vmap":
            verdict, note = _vmap(value, packet, context)
            if verdict is None:
                return None, packet, ""
            if isinstance(verdict, tuple):  # numgen/jhash over several different verdicts
                return ("choice", verdict), packet, note
            (kind, target), = verdict.items()
            return (kind, (target or {}).get("target", "")), packet, note
        elif key in ("dnat", "snat", "masquerade", "redirect"):
            if context.layer2:
                raise Unmodelled(f"{key} in a {context.family} chain (NAT of frames)")
            if (value or {}).get("family") == ("ip" if packet.family == 6 else "ip6"):
                return None, packet, ""  # a NAT of the other family leaves the packet be
            after, note = _nat(key, value or {}, packet, context)
            if after is None:
                return None, packet, ""  # a NAT map without the packet's key: no match
            return ("nat", "dnat" if key in ("dnat", "redirect") else "snat"), after, note
        elif key == "xt":
            raise Unmodelled(f"the iptables {value.get('type', '')} {value.get('name', '')} "
                             "(xt) in a native table")
        else:
            raise Unmodelled(f"the {key} statement")
    return None, packet, ""


def _rejects(value: dict, packet: Packet) -> bool:
    """Does a reject apply to the packet? `with icmp`/`icmpv6` carry a dependency on their
    family, `with tcp reset` one on TCP (nft adds them; the listing hides them)."""
    kind = value.get("type", "")
    if kind == "icmp":
        return packet.family == 4
    if kind == "icmpv6":
        return packet.family == 6
    if kind == "tcp reset":
        return packet.proto == "tcp"
    return True


def _mangle(value, packet: Packet, context: _Context) -> Packet:
    target = value.get("key", {})
    if target in ({"meta": {"key": "nftrace"}}, {"meta": {"key": "priority"}}) or \
            target.get("payload", {}).get("field") in ("dscp", "ecn", "ttl", "tos",
                                                       "checksum", "hoplimit"):
        # traced, queued or marked differently, or a UDP checksum zeroed (Incus, for DHCP
        # clients that cannot check it: "none" is valid in IPv4): the fate is the same
        return packet
    new = _value(value.get("value"), packet, context)
    if not isinstance(new, int):
        raise Unmodelled(f"setting {_describe(target)} to this value")
    if target == {"meta": {"key": "mark"}}:
        return replace(packet, mark=new)
    if target == {"ct": {"key": "mark"}}:
        if context.layer2 and not context.conntrack:
            if context.conntrack is None:
                raise Unmodelled("ct mark set in a frame's chain (whether it has its "
                                 "conntrack entry there is not known)")
            return packet  # no entry to mark
        return replace(packet, ct_marks=tuple(
            (ns, mark) for ns, mark in packet.ct_marks if ns != context.ns) + ((context.ns, new),))
    raise Unmodelled(f"setting {_describe(target)}")


# --- NAT ----------------------------------------------------------------------------------


def _nat(key: str, value: dict, packet: Packet, context: _Context
         ) -> tuple[Packet | None, str]:
    where = context.where
    flags = value.get("flags", ())
    random = any(flag in ("random", "fully-random")
                 for flag in ([flags] if isinstance(flags, str) else flags))
    own = -1 if random else packet.dport if key in ("dnat", "redirect") else packet.sport
    port, note = _port(value.get("port"), own, packet, context)
    if port is None:
        return None, ""  # a port map without the packet's key: the rule does not match
    if key == "masquerade":
        if not where.out_address:
            raise Unmodelled("masquerade without an address")
        return replace(packet, src=where.out_address, sport=port or packet.sport), \
            "masquerade" + note
    if key == "redirect":
        address = where.in_address if where.in_if else \
            "::1" if packet.family == 6 else "127.0.0.1"
        return replace(packet, dst=address, dport=port or packet.dport), "redirect" + note
    address = value.get("addr")
    if isinstance(address, dict) and "map" in address:
        found, how = _nat_map(address["map"], packet, context, key)
        if found is None:
            return None, ""
        address, note = found, note + how
    if isinstance(address, dict) and "concat" in address and len(address["concat"]) == 2:
        address, port = address["concat"]  # `dnat ip to ... map { KEY : ADDR . PORT }`
    if isinstance(address, dict) and "range" in address:
        address, note = address["range"][0], note + " (the range's first address)"
    if isinstance(address, dict) and "prefix" in address:
        address = address["prefix"]["addr"]
        note += " (the prefix's first address)"
    if address is None and port:
        address = packet.dst if key == "dnat" else packet.src
    if not isinstance(address, str):
        raise Unmodelled(f"{key} to this address")
    if not isinstance(port or 0, int):
        raise Unmodelled(f"{key} to this port")
    if key == "dnat":
        return replace(packet, dst=address, dport=port or packet.dport), key + note
    return replace(packet, src=address, sport=port or packet.sport), key + note


def _port(port, own: int, packet: Packet, context: _Context) -> tuple[int | None, str]:
    """The NAT's port (0: the packet's own, `own`, the port being translated, -1 where the
    rule asks for a random one; None: a map holds no element for the packet)."""
    if port is None:
        return 0, ""
    if isinstance(port, dict) and "range" in port:
        low, high = port["range"]
        # As nf_nat_core.c's get_unique_tuple: a port already in the range is kept; else a
        # destination takes the range's first port (a source one a free one, unknowable).
        if isinstance(low, int) and isinstance(high, int) and low <= own <= high:
            return 0, " (its port is in the range: kept)"
        if own == -1:
            return low, " (a random port of the range: its first taken)"
        return low, " (the range's first port)"
    if isinstance(port, dict) and "map" in port:
        return _nat_map(port["map"], packet, context, "port")
    if isinstance(port, dict):
        raise Unmodelled(f"a NAT port from {_describe(port)}")
    return port, ""


def _nat_map(found: dict, packet: Packet, context: _Context, key: str):
    """The map's value for the packet (None: no element holds it), and a note."""
    lookup = found.get("key", {})
    if isinstance(lookup, dict) and ("numgen" in lookup or "jhash" in lookup):
        elements = _elements(found.get("data"), context)
        if not elements:
            raise Unmodelled(f"{key} through an empty map")
        how = "numgen" if "numgen" in lookup else "jhash"
        if any(value != elements[0][1] for _, value in elements):
            raise Unmodelled(f"{key} through a map keyed by {how} whose {len(elements)} "
                             "elements differ (the kernel picks one per connection)")
        return elements[0][1], (f" (each of {len(elements)} by {how} is the same)")
    return _lookup(lookup, found.get("data"), packet, context), ""


def _vmap(value: dict, packet: Packet, context: _Context):
    """The verdict of a verdict map for the packet (None: no element holds it) and a note.
    A map keyed by `numgen`/`jhash` (kube-proxy's endpoint choice) picks one element per
    connection: a single element is certain; of several, their verdicts as (kind, target)
    pairs, which the chain's walk follows each (certain only if all lead to one fate)."""
    lookup = value["key"]
    if isinstance(lookup, dict) and ("numgen" in lookup or "jhash" in lookup):
        elements = _elements(value["data"], context)
        if not elements:
            return None, ""
        if len(elements) == 1:
            return elements[0][1], ""
        how = "numgen" if "numgen" in lookup else "jhash"
        options = []
        for _, verdict in elements:
            (kind, target), = verdict.items()
            options.append((kind, (target or {}).get("target", "")))
        return tuple(options), f" by {how}"
    return _lookup(lookup, value["data"], packet, context), ""


def _lookup(key, data, packet: Packet, context: _Context):
    """The data of the first element of a map (named or anonymous) whose key holds the
    packet's value; None when none does."""
    have = _value(key, packet, context)
    if have is _ABSENT:
        return None
    if isinstance(have, _Opaque):
        raise Unmodelled(have.what)
    for element_key, element_value in _elements(data, context):
        if _holds(have, element_key, context):
            return element_value
    return None


def _elements(data, context: _Context) -> list[tuple]:
    if isinstance(data, str) and data.startswith("@"):
        named = context.sets.get(data[1:])
        if named is None:
            raise Unmodelled(f"the map {data} (not in the snapshot)")
        raw = json.loads(named.elements) if named.elements else []
    elif isinstance(data, dict) and "set" in data:
        raw = data["set"]
    else:
        raise Unmodelled(f"a map of {_describe(data)}")
    return [(_unwrap(item[0]), item[1]) for item in raw if isinstance(item, list)]


def _unwrap(item):
    """A set element without its per-element attributes (timeout, counter, comment)."""
    return item["elem"].get("val") if isinstance(item, dict) and "elem" in item else item


# --- values -------------------------------------------------------------------------------


class _Absent:
    """A field the packet does not have: another family's header, a port of an ICMP
    packet. A match on it never holds, whatever its operator (the kernel's dependency on
    the protocol fails first)."""

    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


@dataclass(frozen=True, slots=True)
class _Opaque:
    """A value the packet has but the model does not know (the checksum `th dport` reads
    from an ICMP header): a comparison that depends on it is `unknown`, one decided by
    another part of a concatenation is not."""

    what: str


_PROTOCOL_NUMBERS = {**PROTOCOLS, "icmpv6": 58, "ipv6-icmp": 58, "igmp": 2, "gre": 47,
                     "esp": 50, "ah": 51, "sctp": 132, "udplite": 136, "dccp": 33,
                     "ipip": 4, "ipv6": 41}
# The headers only a packet of one family has (a match on them never holds for the other),
# and IPv6's extension headers, which the model's packets do not carry.
_FAMILY_ONLY = {4: {"ip", "icmp", "igmp"}, 6: {"ip6", "icmpv6"}}
_EXTENSION_HEADERS = {"hbh", "rt", "frag", "dst", "mh", "srh", "rt0", "rt2", "rt4"}
_TRANSPORT = {"tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "igmp", "esp", "ah",
              "comp", "gre"}
_ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4,
               "redirect": 5, "echo-request": 8, "router-advertisement": 9,
               "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12,
               "timestamp-request": 13, "timestamp-reply": 14, "info-request": 15,
               "info-reply": 16, "address-mask-request": 17, "address-mask-reply": 18}
_ICMPV6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
                 "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
                 "mld-listener-query": 130, "mld-listener-report": 131,
                 "mld-listener-done": 132, "mld-listener-reduction": 132,
                 "nd-router-solicit": 133, "nd-router-advert": 134, "nd-neighbor-solicit": 135,
                 "nd-neighbor-advert": 136, "nd-redirect": 137, "router-renumbering": 138,
                 "ind-neighbor-solicit": 141, "ind-neighbor-advert": 142,
                 "mld2-listener-report": 143}
_TCP_FLAGS = {"fin": 1, "syn": 2, "rst": 4, "psh": 8, "ack": 16, "urg": 32, "ecn": 64,
              "cwr": 128}
_CT_STATES = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
_CT_STATUS = {"expected": 1, "seen-reply": 2, "assured": 4, "confirmed": 8, "snat": 16,
              "dnat": 32, "dying": 512}


@dataclass(frozen=True, slots=True)
class _Flags:
    """A bit mask (ct state, ct status, tcp flags) and the names of its bits."""

    bits: int
    names: dict[str, int]


def _describe(expression) -> str:
    if isinstance(expression, dict) and expression:
        (key, value), = list(expression.items())[:1]
        if isinstance(value, dict):
            detail = value.get("key") or value.get("field") or value.get("result") or ""
            protocol = value.get("protocol", "")
            return " ".join(part for part in (key if key != "payload" else protocol,
                                              str(detail)) if part)
        return key
    return repr(expression)


def _value(expression, packet: Packet, context: _Context):
    """The packet's value of an expression: an address, a number, a name, _Flags, a tuple
    (a concatenation), None (fib: no route), or _ABSENT; raises Unmodelled."""
    if isinstance(expression, int | str):
        return expression
    if not isinstance(expression, dict) or len(expression) != 1:
        raise Unmodelled(f"the expression {expression!r}")
    (key, value), = expression.items()
    if key == "payload":
        return _payload(value.get("protocol", ""), value.get("field", ""), packet)
    if key == "meta":
        return _meta(value.get("key", ""), packet, context)
    if key == "ct":
        return _ct(value, packet, context)
    if key == "fib":
        return _fib(value, packet, context)
    if key == "concat":
        parts = tuple(_value(part, packet, context) for part in value)
        return _ABSENT if _ABSENT in parts else parts
    if key == "tcp option":
        return _mss(value, packet, context)
    if key == "&" and value[0] == {"payload": {"protocol": "ip", "field": "frag-off"}} and \
            isinstance(value[1], int) and packet.family == 4 and not value[1] & 0x4000:
        return 0  # `ip frag-off & 0x1fff`: no offset, no more-fragments bit (whole packets)
    if key in ("&", "|", "^", "<<", ">>"):
        left = _value(value[0], packet, context)
        if left is _ABSENT:  # `tcp flags & (syn | ack)` of a UDP packet
            return _ABSENT
        if isinstance(left, _Flags):  # `tcp flags & (syn | ack)`: the mask is flag names
            mask = _flag_bits(value[1], left.names)
            return _Flags(left.bits & mask if key == "&" else left.bits | mask, left.names)
        right = _value(value[1], packet, context)
        if _ABSENT in (left, right):
            return _ABSENT
        if not isinstance(left, int) or not isinstance(right, int):
            raise Unmodelled(f"the {key} of {_describe(value[0])}")
        return {"&": left & right, "|": left | right, "^": left ^ right,
                "<<": left << right, ">>": left >> right}[key]
    raise Unmodelled(f"the {_describe(expression)} expression")


def _payload(protocol: str, field: str, packet: Packet):
    family = packet.family
    if protocol == "ether":
        if field == "type":
            return _EtherType(_ETHER_TYPES["arp" if packet.proto == "arp" else
                                           "ip6" if family == 6 else "ip"])
        raise Unmodelled(f"the ether {field} match (the model knows no MAC addresses)")
    if packet.proto == "arp":
        if protocol in ("arp", "vlan"):
            raise Unmodelled(f"the {protocol} {field} match of an ARP frame")
        return _ABSENT  # no IP header: every IP and transport match fails on ARP
    if protocol == "ip6" and field in ("saddr", "daddr") and \
            packet.icmp_type.startswith("nd-") and packet.src == "::":  # _resolution_frame's
        return _Opaque(f"ip6 {field} of a neighbour solicitation (the walk does not know "
                       "who resolves which next hop on this segment)")
    if protocol in ("ip", "ip6") and field in ("ttl", "hoplimit") and \
            protocol == ("ip6" if family == 6 else "ip"):
        raise Unmodelled(f"the {protocol} {field} match (a packet's remaining "
                         f"{'TTL' if field == 'ttl' else 'hop limit'} is not modelled: it "
                         "depends on the sender's default and the routers passed)")
    if protocol in _FAMILY_ONLY[10 - family] or protocol in _EXTENSION_HEADERS:
        return _ABSENT
    if protocol in ("ip", "ip6"):
        if field in ("saddr", "daddr"):
            return ipaddress.ip_address(packet.src if field == "saddr" else packet.dst)
        if field in ("protocol", "nexthdr"):
            return _protocol_number(packet)
        if field == "version":
            return family
        raise Unmodelled(f"the {protocol} {field} match")
    if protocol == "th" and field in ("sport", "dport"):
        if packet.proto == "icmp":  # the raw header: type and code, then the checksum
            return _icmp_type(packet) << 8 if field == "sport" else \
                _Opaque("th dport of an icmp packet (its checksum)")
        if packet.proto not in ("tcp", "udp"):
            raise Unmodelled(f"th {field} of an {packet.proto} packet")
        return packet.sport if field == "sport" else packet.dport
    if protocol in _TRANSPORT:
        if protocol != ("icmpv6" if family == 6 and packet.proto == "icmp" else packet.proto):
            return _ABSENT  # an IPv6 packet's "icmp" is ICMPv6
        if field in ("sport", "dport") and protocol in ("tcp", "udp"):
            return packet.sport if field == "sport" else packet.dport
        if protocol == "tcp" and field == "flags":
            # the first packet of the flow is a SYN, the reply's first a SYN-ACK
            return _Flags(2 if packet.ctstate == "NEW" else 18, _TCP_FLAGS)
        if protocol in ("icmp", "icmpv6") and field == "type":
            return _icmp_type(packet)
        if protocol in ("icmp", "icmpv6") and field == "code":
            return 0
    raise Unmodelled(f"the {protocol} {field} match")


def _mss(value: dict, packet: Packet, context: _Context):
    """The MSS option (`tcp option maxseg size`) of the flow's first packet each way, a SYN
    and a SYN-ACK (later segments carry none): Linux's, the MTU of the link the packet is on
    less the IP and TCP headers (a flow's sender is taken to have the same link MTU)."""
    if value.get("name") != "maxseg" or value.get("field") != "size":
        raise Unmodelled(f"the tcp option {value.get('name', '')} {value.get('field', '')}")
    if packet.proto != "tcp":
        return _ABSENT
    device = context.where.in_if or context.where.out_if
    link = next((k for k in context.links if k.name == device), None)
    if link is None:
        raise Unmodelled(f"tcp option maxseg size (the MTU of {device or 'no device'})")
    return link.mtu - (60 if packet.family == 6 else 40)


def _icmp_type(packet: Packet):
    if packet.family == 6:
        if packet.icmp_type not in _ICMPV6_TYPES:
            raise Unmodelled(f"the ICMPv6 type of a {packet.icmp_type} packet")
        return _Icmpv6Type(_ICMPV6_TYPES[packet.icmp_type])
    return _ICMP_TYPES.get(packet.icmp_type, packet.icmp_type)


class _EtherType(int):
    """An ethertype: its names (ip, arp, ip6, vlan) are its own."""


_ETHER_TYPES = {"ip": 0x0800, "arp": 0x0806, "ip6": 0x86DD, "vlan": 0x8100, "8021q": 0x8100,
                "8021ad": 0x88A8}


class _Icmpv6Type(int):
    """An ICMPv6 type: its names (echo-request is 128) are not ICMP's (8)."""


def _protocol_number(packet: Packet) -> int:
    """The IPv4 protocol or IPv6 next header: ICMPv6 is 58."""
    if packet.proto == "icmp" and packet.family == 6:
        return ICMPV6
    return PROTOCOLS.get(packet.proto, -1)


def _meta(key: str, packet: Packet, context: _Context):
    where = context.where
    if key == "l4proto":
        return _ABSENT if packet.proto == "arp" else _protocol_number(packet)
    if key == "protocol" and packet.proto == "arp":
        return "arp"
    if key in ("protocol", "nfproto"):
        six = packet.family == 6
        return ("ip6" if six else "ip") if key == "protocol" else ("ipv6" if six else "ipv4")
    if key in ("iifname", "iif", "oifname", "oif"):
        # no device (iif of a locally sent packet) is the empty name, not a failed match
        return _Name(where.in_if if key.startswith("i") else where.out_if)
    if key == "mark":
        return packet.mark
    if key == "pkttype":
        return _address_kind(packet.dst, where, {"local": "host", "unicast": "host"})
    if key in ("skuid", "skgid"):
        if context.hook in ("OUTPUT", "POSTROUTING") and not where.in_if:
            raise Unmodelled(f"meta {key} (the sending process's "
                             f"{'user' if key == 'skuid' else 'group'}, which a flow does "
                             "not name)")
        return _ABSENT  # a forwarded or arriving packet has no local socket yet
    raise Unmodelled(f"the meta {key} match")


@dataclass(frozen=True, slots=True)
class _Name:
    """An interface name, compared with a pattern that may end in `*`."""

    name: str


def _ct(value: dict, packet: Packet, context: _Context):
    key = value.get("key", "")
    if context.layer2 and context.conntrack is None:
        raise Unmodelled(f"ct {key} in a {context.family} {context.hook.lower()} chain "
                         "(whether the frame has its conntrack entry there is not known)")
    family = value.get("family") or (key.split()[0] if " " in key else "")
    if family and family != ("ip6" if packet.family == 6 else "ip"):
        return _ABSENT  # `ct original ip6 saddr` of an IPv4 packet (nft adds the dependency)
    untracked = context.ns in packet.untracked
    # no connection looked up yet: before conntrack's hook, or a frame not given its entry
    before = not context.conntrack if context.layer2 else \
        context.hook in ("PREROUTING", "OUTPUT") and context.priority < CONNTRACK_PRIORITY
    if key == "state":
        if before:
            return _Flags(_CT_STATES["invalid"], _CT_STATES)  # no connection looked up yet
        if untracked:
            if packet.ctstate not in ("NEW", "UNTRACKED"):  # UNTRACKED: neighbour discovery
                raise Unmodelled("the conntrack state of the reply to an untracked flow")
            return _Flags(_CT_STATES["untracked"], _CT_STATES)
        return _Flags(_CT_STATES.get(packet.ctstate.lower(), 0), _CT_STATES)
    if before or untracked:
        return _ABSENT  # no connection: every other ct key fails
    if key == "status":
        bits = sum(_CT_STATUS[kind] for ns, kind in packet.ct_nat if ns == context.ns)
        if packet.ctstate != "NEW":
            bits |= _CT_STATUS["seen-reply"] | _CT_STATUS["confirmed"]
        return _Flags(bits, _CT_STATUS)
    if key == "mark":
        return next((mark for ns, mark in packet.ct_marks if ns == context.ns), 0)
    if key == "direction":
        return "original" if packet.ctstate == "NEW" else "reply"
    if key == "zone":
        return 0
    if key in ("saddr", "daddr", "ip saddr", "ip daddr", "ip6 saddr", "ip6 daddr"):
        return _ct_address(value, key.split()[-1], packet, context)
    if value.get("dir"):
        raise Unmodelled(f"ct {value['dir']} {key}")
    if key == "l3proto":
        return "ipv6" if packet.family == 6 else "ipv4"
    if key == "protocol":
        return _protocol_number(packet)
    raise Unmodelled(f"the ct {key} match")


def _ct_address(value: dict, field: str, packet: Packet, context: _Context):
    """An address of the connection's original or reply tuple. Untranslated in this
    namespace, the original tuple is the first packet's addresses and the reply tuple their
    swap; a translated one's tuples the packet no longer shows."""
    direction = value.get("dir", "")
    if not direction:
        raise Unmodelled(f"ct {field} without a direction")
    if any(ns == context.ns for ns, _ in packet.ct_nat):
        raise Unmodelled(f"ct {direction} {field} of a translated connection")
    first = (packet.src, packet.dst) if packet.ctstate == "NEW" else (packet.dst, packet.src)
    source, destination = first if direction == "original" else first[::-1]
    return ipaddress.ip_address(source if field == "saddr" else destination)


def _address_kind(address: str, where, names: dict[str, str] | None = None) -> str:
    """The kernel's address type (RTN_*) of an IPv4 or IPv6 address in this namespace."""
    ip = ipaddress.ip_address(address)
    if address in where.local or ip.is_loopback:
        kind = "local"
    elif ip.is_multicast:
        kind = "multicast"
    elif address == "255.255.255.255":
        kind = "broadcast"
    else:
        kind = "unicast"
    return (names or {}).get(kind, kind)


def _fib(value: dict, packet: Packet, context: _Context):
    if context.layer2:
        raise Unmodelled(f"fib in a {context.family} chain")
    flags = set(value.get("flags", []))
    result = value.get("result", "")
    address = packet.src if "saddr" in flags else packet.dst
    where = context.where
    if result == "type":
        if flags - {"saddr", "daddr"}:
            raise Unmodelled(f"fib {' . '.join(sorted(flags))} type")
        return _address_kind(address, where)
    if result in ("oif", "oifname"):
        if where.fib_dev is None:
            raise Unmodelled(f"fib {result} (no routes at hand)")
        if where.in_if == "lo" and "iif" in flags:
            return _Name("lo")  # loopback traffic passes the reverse-path check
        other = packet.dst if "saddr" in flags else packet.src
        dev = where.fib_dev(address, other if "saddr" in flags else "",
                            where.in_if if "saddr" in flags else "lo",
                            packet.mark if "mark" in flags else 0)
        if dev and "iif" in flags and dev != where.in_if:
            dev = None
        if dev and "oif" in flags and dev != where.out_if:
            dev = None
        return _Name(dev) if dev else None
    raise Unmodelled(f"the fib {result} match")


# --- comparisons --------------------------------------------------------------------------


def _match(value: dict, packet: Packet, context: _Context) -> bool:
    op = value.get("op")
    have = _value(value.get("left"), packet, context)
    if have is _ABSENT:
        return False
    if isinstance(have, _Opaque):
        raise Unmodelled(have.what)
    right = value.get("right")
    if isinstance(have, _Flags) and (isinstance(right, dict) and "set" in right
                                     or isinstance(right, str) and right.startswith("@")):
        hit = _holds(have, right, context)  # `ct state { established, related }`: one of
        if op in ("==", "in"):
            return hit
        if op == "!=":
            return not hit
        raise Unmodelled(f"the {op} comparison of flags with a set")
    if isinstance(have, _Flags):
        mask = _flag_bits(right, have.names)
        if op == "in":
            return bool(have.bits & mask) if mask else have.bits == 0
        if op == "==":
            return have.bits == mask
        if op == "!=":
            return have.bits != mask
        if op == "!":  # `tcp flags ! fin,syn,rst,psh,ack,urg`: none of them set
            return not have.bits & mask
        raise Unmodelled(f"the {op} comparison of flags")
    if op in ("<", ">", "<=", ">="):
        if not isinstance(have, int):
            raise Unmodelled(f"the {op} comparison")
        limit = _constant(have, right)
        return {"<": have < limit, ">": have > limit, "<=": have <= limit,
                ">=": have >= limit}[op]
    hit = _holds(have, right, context)
    if op in ("==", "in"):
        return hit
    if op == "!=":
        return not hit
    raise Unmodelled(f"the {op} comparison")


def _flag_bits(right, names: dict[str, int]) -> int:
    items = right if isinstance(right, list) else \
        right["set"] if isinstance(right, dict) and "set" in right else [right]
    bits = 0
    for item in items:
        if isinstance(item, int):
            bits |= item
        elif item in names:
            bits |= names[item]
        else:
            raise Unmodelled(f"the flag {item!r}")
    return bits


def _holds(have, right, context: _Context) -> bool:
    """Does `right` (a constant, a prefix, a range, a set or a named set) hold `have`?"""
    if isinstance(right, str) and right.startswith("@"):
        named = context.sets.get(right[1:])
        if named is None:
            raise Unmodelled(f"the named set {right} (not in the snapshot)")
        elements = json.loads(named.elements) if named.elements else []
        return any(_holds(have, _unwrap(item), context) for item in elements)
    if isinstance(right, dict) and "set" in right:
        return any(_holds(have, _unwrap(item), context) for item in right["set"])
    if isinstance(have, tuple):
        parts = right.get("concat") if isinstance(right, dict) else None
        if not isinstance(parts, list) or len(parts) != len(have):
            raise Unmodelled(f"a concatenation against {_describe(right)}")
        pairs = list(zip(have, parts))
        if not all(_holds(one, part, context) for one, part in pairs
                   if not isinstance(one, _Opaque)):
            return False
        opaque = next((one for one in have if isinstance(one, _Opaque)), None)
        if opaque is not None:
            raise Unmodelled(opaque.what)
        return True
    if isinstance(right, dict) and "range" in right:
        low, high = right["range"]
        return _constant(have, low) <= _order(have) <= _constant(have, high)
    if isinstance(right, dict) and "prefix" in right:
        prefix = right["prefix"]
        if not isinstance(have, _ADDRESSES):
            return _unmodelled_prefix()
        network = ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}", strict=False)
        return network.version == have.version and have in network
    if isinstance(right, dict):
        raise Unmodelled(f"the {_describe(right)} value")
    if isinstance(have, _Flags):  # an element of a set or map: the exact value
        return have.bits == _flag_bits(right, have.names)
    if isinstance(have, _Name):
        text = str(right)
        if text.endswith("\\*"):
            return have.name == text[:-2] + "*"
        return have.name.startswith(text[:-1]) if text.endswith("*") else have.name == text
    if have is None:  # fib found no route: `missing` is false
        return right is False
    if right is False:
        return False
    if isinstance(have, _ADDRESSES):
        return have == _address(have, right)
    return _order(have) == _constant(have, right)


_ADDRESSES = (ipaddress.IPv4Address, ipaddress.IPv6Address)


def _unmodelled_prefix() -> bool:
    raise Unmodelled("a prefix of a value that is no address")


def _address(have, right):
    """A constant compared with an address: an address of the same family (a set's
    element of the other family, as an inet set of both may hold, is none)."""
    try:
        found = ipaddress.ip_address(right)
    except ValueError:
        raise Unmodelled(f"the constant {right!r} against an address") from None
    return found if found.version == have.version else None


def _order(have):
    return int(have) if isinstance(have, _ADDRESSES) else have


def _constant(have, right):
    """`right` in the terms of `have`: an address as a number, a protocol, ICMP type or
    service name as its number."""
    if isinstance(have, _ADDRESSES):
        found = _address(have, right)
        if found is None:
            raise Unmodelled(f"a range of the other family ({right}) against {have}")
        return int(found)
    if isinstance(have, _EtherType) and isinstance(right, str):
        if right not in _ETHER_TYPES:
            raise Unmodelled(f"the ethertype {right!r}")
        return _ETHER_TYPES[right]
    if isinstance(have, int) and isinstance(right, str):
        if right in _PROTOCOL_NUMBERS:
            return _PROTOCOL_NUMBERS[right]
        names = _ICMPV6_TYPES if isinstance(have, _Icmpv6Type) else _ICMP_TYPES
        if right in names:
            return names[right]
        if right.isdigit():
            return int(right)
        try:
            return socket.getservbyname(right)
        except OSError:
            raise Unmodelled(f"the constant {right!r}") from None
    return right
