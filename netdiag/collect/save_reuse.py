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
"""

from __future__ import annotations

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
NFPROTO = {4: 2, 6: 10}
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
MAX_KEPT = 256  # distinct rulesets kept per snapshot
MAX_BODIES = 20_000  # distinct chain and rule answers kept parsed per snapshot
# NFTA_EXPR_NAME payloads as the kernel sends them (with their NUL)
_IPTABLES_NFT_NAMES = frozenset(name.encode() + b"\0" for name in IPTABLES_NFT_EXPRESSIONS)
_COUNTER = b"counter\0"

Parsed = tuple[tuple[IptablesChain, ...], tuple[IptablesRule, ...]]


@dataclass(frozen=True, slots=True)
class Ruleset:
    """One family's nftables objects as iptables-nft-save would read them."""

    key: tuple  # everything but the counters
    generation: int  # the low 16 bits of the nftables generation it was read at
    chain_counters: dict[tuple[str, str], tuple[int, int]]  # (table, chain) → packets, bytes
    rule_counters: dict[tuple[str, str, int], tuple[int, int]]  # (table, chain, position)


class Kept:
    """The records read per ruleset key, shared by the worker threads of one snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[tuple, Parsed] = {}

    def get(self, key: tuple) -> Parsed | None:
        with self._lock:
            return self._found.get(key)

    def put(self, key: tuple, parsed: Parsed) -> None:
        with self._lock:
            if len(self._found) < MAX_KEPT:
                self._found[key] = parsed


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
    chains = ctx.shared.setdefault("save_reuse.chains", ParsedAnswers(_chain))
    rules = ctx.shared.setdefault("save_reuse.rules", ParsedAnswers(_rule))
    chain_counters: dict[tuple[str, str], tuple[int, int]] = {}
    for body in chain_bodies:
        name, entry, counters = chains.get(body)
        if counters is not None:
            chain_counters[name] = counters
        key.append(entry)
    rule_counters: dict[tuple[str, str, int], tuple[int, int]] = {}
    positions: dict[tuple[str, str], int] = {}
    for body in rule_bodies:
        rule = rules.get(body)
        if rule is None:
            return None
        where, entry, counted = rule
        positions[where] = position = positions.get(where, 0) + 1
        rule_counters[(*where, position)] = counted
        key.append(entry)
    (generation16,) = generations
    return Ruleset(tuple(key), _U16.unpack(generation16)[0], chain_counters, rule_counters)


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


def _rule(body: bytes) -> tuple[tuple[str, str], tuple, tuple[int, int]] | None:
    """An NFT_MSG_NEWRULE answer → ((table, chain), its key entry, its counters), or None when
    it holds an expression iptables-nft does not write."""
    attrs = netlink.attributes(body, 4)
    where = (netlink.cstring(attrs.get(NFTA_RULE_TABLE, b"")),
             netlink.cstring(attrs.get(NFTA_RULE_CHAIN, b"")))
    expressions = []
    counted = None
    for name, data in _expressions(attrs.pop(NFTA_RULE_EXPRESSIONS, b"")):
        if name not in _IPTABLES_NFT_NAMES:
            return None
        if name == _COUNTER:  # iptables-nft-save shows the last one a rule has
            counted = _counters(netlink.attributes(data))
            data = b""
        expressions.append((name, data))
    return where, ("rule", tuple(sorted(attrs.items())), tuple(expressions)), counted or (0, 0)


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
