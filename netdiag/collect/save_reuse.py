"""Read iptables-nft-save's output once per distinct ruleset, not once per namespace.

iptables-nft-save is a function of the nftables objects of one family (tables, chains, rules)
and nothing else: it prints each chain with its policy counters and each rule with its counter
expression's values. Hosts with many namespaces often give many of them the same rules (lab
nodes, the benchmark's 1000 namespaces); starting the program costs 1.5 ms of CPU per
namespace, while two netlink dumps that identify the ruleset cost a tenth of that. So the
firewall collector first dumps the family's tables, chains and rules, and keys them with
every counter left out; a namespace whose key was already read in this snapshot gets the
records read then, with its own counters put in; otherwise the program runs as usual and its
records are kept under the key.

Kept only when nothing can differ but the counters:

* every rule holds only expressions iptables-nft writes itself (the same set the nftables
  collector trusts it with), so nothing outside the dumps (set elements, named objects) can
  show in the output;
* the ruleset did not change between the dumps and the program's run: every dump answer
  carries the nftables generation it was made at (the low 16 bits, in nfgenmsg.res_id), and
  they must all be the generation the kernel reports after the program ran.

Rulesets that differ only in ports are alike too: Docker gives every container on a user network
the same four embedded-DNS rules, each with the ports of that container's resolver (`--dport 53
-j DNAT --to-destination 127.0.0.11:41123`, `--sport 41123 -j SNAT`). Their "shape" is the key
with every 2-byte value a `cmp` or `immediate` expression holds left out, and the port of an
xtables DNAT or SNAT target (iptables-nft writes those as the kernel's `target` expression, with
struct nf_nat_range2 as its data: a single port stands at offsets 36 and 38, min and max
proto); a namespace whose
shape was read before gets that ruleset's records with its own ports written in where the old
ones stood (`_with_port`: only where a rule shows the old port exactly once, in its text and in
its fields; one changed port a rule, else the program runs). The first such namespace of a shape
also runs the program, and the shape is used only when the two agree; on a host of 1000
containers this is two program runs instead of 1000.
"""

from __future__ import annotations

import re
import struct
import threading
from dataclasses import dataclass, replace

from netdiag import netlink
from netdiag.collect import nftables
from netdiag.collect.nftables import (
    IPTABLES_NFT_EXPRESSIONS,
    NFNL_SUBSYS_NFTABLES,
    NFTA_EXPR_NAME,
    NFTA_RULE_EXPRESSIONS,
)
from netdiag.model import IptablesChain, IptablesRule

NFT_MSG_GETTABLE, NFT_MSG_GETCHAIN, NFT_MSG_GETRULE, NFT_MSG_GETGEN = 1, 4, 7, 16
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, NFTA_CHAIN_COUNTERS = 1, 3, 8
NFTA_RULE_TABLE, NFTA_RULE_CHAIN = 1, 2
NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS = 1, 2
NFTA_EXPR_DATA = 2
NFTA_GEN_ID = 1
NFTA_CMP_DATA, NFTA_IMMEDIATE_DATA, NFTA_DATA_VALUE = 3, 2, 1
NFTA_TARGET_NAME, NFTA_TARGET_REV, NFTA_TARGET_INFO = 1, 2, 3
_NAT_TARGETS = (b"DNAT", b"SNAT")
_REV2 = b"\0\0\0\2"  # struct nf_nat_range2 (include/uapi/linux/netfilter/nf_nat.h)
NFPROTO = {4: 2, 6: 10}
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
MAX_KEPT = 256  # distinct rulesets kept per snapshot
MAX_BODIES = 20_000  # distinct chain and rule answers kept parsed per snapshot
# NFTA_EXPR_NAME payloads as the kernel sends them (with their NUL)
_IPTABLES_NFT_NAMES = frozenset(name.encode() + b"\0" for name in IPTABLES_NFT_EXPRESSIONS)
_COUNTER = b"counter\0"
# expression → its attribute holding the data whose 2-byte values (ports) leave the shape
_VALUE_HOLDERS = {b"cmp\0": NFTA_CMP_DATA, b"immediate\0": NFTA_IMMEDIATE_DATA}

Parsed = tuple[tuple[IptablesChain, ...], tuple[IptablesRule, ...]]


@dataclass(frozen=True, slots=True)
class Ruleset:
    """One family's nftables objects as iptables-nft-save would read them."""

    key: tuple  # everything but the counters
    generation: int  # the low 16 bits of the nftables generation it was read at
    chain_counters: dict[tuple[str, str], tuple[int, int]]  # (table, chain) → packets, bytes
    rule_counters: dict[tuple[str, str, int], tuple[int, int]]  # (table, chain, position)
    shape: tuple = ()  # the key without the rules' 2-byte values
    values: tuple[tuple[tuple[str, str, int], bytes], ...] = ()  # (rule's place, value) each


@dataclass
class _Shape:
    ruleset: Ruleset  # the first ruleset read of this shape
    parsed: Parsed  # the program's records of it
    agrees: bool | None = None  # did the program agree with them for a second one? None: not asked


class Kept:
    """The records read per ruleset key, shared by the worker threads of one snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[tuple, Parsed] = {}
        self._shapes: dict[tuple, _Shape] = {}

    def get(self, key: tuple) -> Parsed | None:
        with self._lock:
            return self._found.get(key)

    def variant(self, ruleset: Ruleset) -> tuple[Parsed | None, bool]:
        """The records of a ruleset of the same shape with `ruleset`'s ports written in (None
        when there is none, or they cannot be), and whether the shape can be trusted (the
        program agreed for a second ruleset of it)."""
        with self._lock:
            shape = self._shapes.get(ruleset.shape)
        if shape is None or shape.agrees is False:
            return None, False
        return _substituted(shape.parsed, shape.ruleset, ruleset), bool(shape.agrees)

    def put(self, ruleset: Ruleset, parsed: Parsed, variant: Parsed | None = None) -> None:
        """Keep the program's records of `ruleset`; `variant`, what `variant()` made of it
        before the program ran, tells whether its shape can be trusted."""
        with self._lock:
            if len(self._found) < MAX_KEPT:
                self._found[ruleset.key] = parsed
            shape = self._shapes.get(ruleset.shape)
            if shape is None:
                if len(self._shapes) < MAX_KEPT:
                    self._shapes[ruleset.shape] = _Shape(ruleset, parsed)
            elif variant is not None and shape.agrees is None:
                # (both with the dumps' counters: a packet counted meanwhile is no disagreement)
                shape.agrees = with_counters(variant, ruleset) == with_counters(parsed, ruleset)


def _request(ctx, msg_type: int, family: int, what: str) -> list[bytes]:
    answers = netlink.dump(netlink.NETLINK_NETFILTER,
                           (NFNL_SUBSYS_NFTABLES << 8) | msg_type,
                           struct.pack("=BBH", family, 0, 0), what, ctx)
    return [body for _kind, body in answers]


def generation(ctx=None) -> int:
    """The namespace's nftables generation id: it changes with every ruleset change."""
    answers = netlink.request(netlink.NETLINK_NETFILTER,
                              (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
                              struct.pack("=BBH", 0, 0, 0), "nftables generation", ctx)
    for _kind, body in answers:
        value = netlink.attributes(body, 4).get(NFTA_GEN_ID)
        if value and len(value) == 4:
            return _U32.unpack(value)[0]
    return -1


def read(ctx, ip_version: int) -> Ruleset | None:
    """The ruleset iptables-nft-save (IPv4 or IPv6) would print; None when it holds something
    whose printing could depend on more than these dumps, or changed while being read."""
    family = NFPROTO[ip_version]
    table_bodies = [b for b in nftables.dump(ctx, NFT_MSG_GETTABLE, "nftables tables")
                    if b[0] == family]
    chain_bodies = _request(ctx, NFT_MSG_GETCHAIN, family, "nftables chains")
    rule_bodies = [b for b in nftables.dump(ctx, NFT_MSG_GETRULE, "nftables rules")
                   if b[0] == family]
    generations = {body[2:4] for body in (*table_bodies, *chain_bodies, *rule_bodies)}
    if len(generations) != 1:
        return None
    key: list = [ip_version]
    key.extend(body[:1] + body[4:] for body in table_bodies)
    shape = list(key)
    values: list[tuple[tuple[str, str, int], bytes]] = []
    chains = ctx.shared.setdefault("save_reuse.chains", ParsedAnswers(_chain))
    rules = ctx.shared.setdefault("save_reuse.rules", ParsedAnswers(_rule))
    chain_counters: dict[tuple[str, str], tuple[int, int]] = {}
    for body in chain_bodies:
        name, entry, counters = chains.get(body)
        if counters is not None:
            chain_counters[name] = counters
        key.append(entry)
        shape.append(entry)
    rule_counters: dict[tuple[str, str, int], tuple[int, int]] = {}
    positions: dict[tuple[str, str], int] = {}
    for body in rule_bodies:
        rule = rules.get(body)
        if rule is None:
            return None
        where, entry, counted, rule_shape, rule_values = rule
        positions[where] = position = positions.get(where, 0) + 1
        rule_counters[(*where, position)] = counted
        key.append(entry)
        shape.append(rule_shape)
        values.extend(((*where, position), value) for value in rule_values)
    (generation16,) = generations
    return Ruleset(tuple(key), _U16.unpack(generation16)[0], chain_counters, rule_counters,
                   tuple(shape), tuple(values))


class ParsedAnswers:
    """What `parse` (_chain or _rule) made of each dump answer seen in this snapshot, by the
    answer's bytes without the generation: namespaces built alike send byte-identical answers
    (idle ones even with the same zero counters), and each is taken apart once, not once per
    namespace. Unlocked: two threads parsing the same answer at once only do it twice."""

    def __init__(self, parse) -> None:
        self._parse = parse
        self._found: dict[bytes, object] = {}

    def get(self, body: bytes):
        known = body[:2] + body[4:]  # family and version; res_id is the generation
        found = self._found.get(known, _NOT_SEEN)
        if found is _NOT_SEEN:
            found = self._parse(body)
            if len(self._found) < MAX_BODIES:
                self._found[known] = found
        return found


_NOT_SEEN = object()


def _chain(body: bytes) -> tuple[tuple[str, str], tuple, tuple[int, int] | None]:
    """An NFT_MSG_NEWCHAIN answer → ((table, chain), its key entry, its counters if any)."""
    attrs = netlink.attributes(body, 4)
    counters = attrs.pop(NFTA_CHAIN_COUNTERS, None)
    name = (netlink.cstring(attrs.get(NFTA_CHAIN_TABLE, b"")),
            netlink.cstring(attrs.get(NFTA_CHAIN_NAME, b"")))
    return (name, ("chain", tuple(sorted(attrs.items()))),
            None if counters is None else _counters(netlink.attributes(counters)))


def _rule(body: bytes):
    """An NFT_MSG_NEWRULE answer → ((table, chain), its key entry, its counters, its shape
    entry, the 2-byte values the shape leaves out), or None when it holds an expression
    iptables-nft does not write."""
    attrs = netlink.attributes(body, 4)
    where = (netlink.cstring(attrs.get(NFTA_RULE_TABLE, b"")),
             netlink.cstring(attrs.get(NFTA_RULE_CHAIN, b"")))
    expressions, shaped, values = [], [], []
    counted = None
    for name, data in _expressions(attrs.pop(NFTA_RULE_EXPRESSIONS, b"")):
        if name not in _IPTABLES_NFT_NAMES:
            return None
        if name == _COUNTER:  # iptables-nft-save shows the last one a rule has
            counted = _counters(netlink.attributes(data))
            data = b""
        expressions.append((name, data))
        holder = _VALUE_HOLDERS.get(name)
        if holder is not None:
            parts = netlink.attributes(data)
            value = netlink.attributes(parts.get(holder, b"")).get(NFTA_DATA_VALUE, b"")
            if len(value) == 2:
                del parts[holder]
                shaped.append((name, tuple(sorted(parts.items()))))
                values.append(value)
                continue
        elif name == b"target\0":
            parts = netlink.attributes(data)
            info = parts.get(NFTA_TARGET_INFO, b"")
            if parts.get(NFTA_TARGET_NAME, b"").rstrip(b"\0") in _NAT_TARGETS and \
                    parts.get(NFTA_TARGET_REV) == _REV2 and len(info) >= 42 and \
                    info[36:38] == info[38:40]:  # one port, not a range
                parts[NFTA_TARGET_INFO] = info[:36] + bytes(4) + info[40:]
                shaped.append((name, tuple(sorted(parts.items()))))
                values.append(info[36:38])
                continue
        shaped.append((name, data))
    rest = tuple(sorted(attrs.items()))
    return (where, ("rule", rest, tuple(expressions)), counted or (0, 0),
            ("rule", rest, tuple(shaped)), tuple(values))


def _substituted(parsed: Parsed, template: Ruleset, ruleset: Ruleset) -> Parsed | None:
    """`template`'s records with `ruleset`'s ports written in (same shape), or None when a
    changed port cannot be placed for certain."""
    changed: dict[tuple[str, str, int], tuple[int, int]] = {}
    for (place, old), (other_place, new) in zip(template.values, ruleset.values, strict=True):
        if place != other_place:
            return None
        if old != new:
            if place in changed:
                return None  # two ports of one rule changed: which is which in its text?
            changed[place] = (_U16.unpack(old)[0], _U16.unpack(new)[0])
    chains, rules = parsed
    written = []
    for rule in rules:
        ports = changed.pop((rule.table, rule.chain, rule.position), None)
        if ports is not None:
            rule = _with_port(rule, *ports)
            if rule is None:
                return None
        written.append(rule)
    if changed:  # a rule the records do not show
        return None
    return chains, tuple(written)


def _with_port(rule: IptablesRule, old: int, new: int) -> IptablesRule | None:
    """The rule with port `old` replaced by `new`, when `old` stands exactly once in its text
    and once in its fields (matches, target options); else None."""
    number = re.compile(rf"(?<!\d){old}(?!\d)")
    fields = [m.value for m in rule.matches] + [value for _, value in rule.target_options]
    if len(number.findall(rule.text)) != 1 or \
            sum(len(number.findall(value)) for value in fields) != 1:
        return None
    text = str(new)
    return replace(rule, text=number.sub(text, rule.text),
                   matches=tuple(replace(m, value=number.sub(text, m.value))
                                 for m in rule.matches),
                   target_options=tuple((key, number.sub(text, value))
                                        for key, value in rule.target_options))


def _expressions(data: bytes) -> list[tuple[bytes, bytes]]:
    """(raw name, raw data) of each expression of a rule; names stay as the kernel sent them
    (b"counter\\0"): decoding ~30 names per namespace cost more than the rest of the loop."""
    found = []
    offset, end = 0, len(data)
    unpack = netlink.ATTR_HEADER.unpack_from
    while offset + 4 <= end:
        length, _kind = unpack(data, offset)
        if length < 4:
            break
        element = netlink.attributes(data, offset + 4, min(offset + length, end))
        found.append((element.get(NFTA_EXPR_NAME, b""), element.get(NFTA_EXPR_DATA, b"")))
        offset += (length + 3) & ~3
    return found


def _counters(attrs: dict[int, bytes]) -> tuple[int, int]:
    def value(kind: int) -> int:
        raw = attrs.get(kind, b"")
        return _U64.unpack(raw)[0] if len(raw) == 8 else 0
    return value(NFTA_COUNTER_PACKETS), value(NFTA_COUNTER_BYTES)


def with_counters(parsed: Parsed, ruleset: Ruleset) -> Parsed:
    """Records read in another namespace with the same ruleset, with this one's counters."""
    chains, rules = parsed
    new_chains = []
    for chain in chains:
        packets, count = ruleset.chain_counters.get((chain.table, chain.name), (0, 0))
        if (packets, count) != (chain.packets, chain.bytes):
            chain = replace(chain, packets=packets, bytes=count)
        new_chains.append(chain)
    new_rules = []
    for rule in rules:
        packets, count = ruleset.rule_counters.get((rule.table, rule.chain, rule.position),
                                                   (0, 0))
        if (packets, count) != (rule.packets, rule.bytes):
            rule = replace(rule, packets=packets, bytes=count)
        new_rules.append(rule)
    return tuple(new_chains), tuple(new_rules)
