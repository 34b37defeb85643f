"""An ipset's answer to iptables' `-m set --match-set NAME src,dst`, as xt_set asks it.

The flags name, dimension by dimension in the order of the set type's name, which end of the
packet to look at: `hash:ip,port` with `dst,dst` takes the destination address and port,
`hash:net,iface` with `src,src` the source address and the in-interface (`dst`: the out-
interface; a `physdev:` member the bridge port). As in the kernel (ip_set_test):

* a set of the other family never matches (a list:set or bitmap:port made without one
  serves both), nor do fewer flags than the type's dimensions;
* of the members that hold the packet, the most specific decides (hash:net types look from
  the longest prefix down): a `nomatch` member means no match — or a match, with
  `--return-nomatch`, where a plain member then means none;
* a list:set matches at its first member set that matches.

An ICMP packet's "port" is its type << 8 | code, as ipset stores `icmp:8/0`. What the model
cannot tell — a mark or MAC address member, an ICMP type it has no number for, a
portless packet against a portless bitmap:port — is None (unknown), never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from netdiag.model import Ipset
from netdiag.model.index import network_interval

_PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132, "udplite": 136, "icmp": 1, "icmpv6": 58}
_MAX_DEPTH = 8  # a list:set holds no list:set in the kernel; a corrupt file might


@dataclass(frozen=True, slots=True)
class Lookup:
    """What xt_set reads of a packet: both ends' addresses and ports, its protocol and
    where it is (interfaces, bridge ports). A port is None when unknown (an ICMP type without
    a number)."""

    family: int
    src: str
    dst: str
    protocol: int
    sport: int | None
    dport: int | None
    in_if: str = ""
    out_if: str = ""
    physdev_in: str = ""
    physdev_out: str = ""


@dataclass(frozen=True, slots=True)
class _Member:
    # per dimension, a test of (lookup, from the source?) → bool | None
    parts: tuple
    specificity: tuple[int, ...]  # the prefix lengths of its networks: the longest decides
    nomatch: bool


class Ipsets:
    """A namespace's ipsets by name, each parsed on first use."""

    def __init__(self, sets: Sequence[Ipset]):
        self._sets = {s.name: s for s in sets}
        self._members: dict[str, tuple[_Member, ...] | None] = {}

    def known(self, name: str) -> bool:
        return name in self._sets

    def test(self, name: str, sources: tuple[bool, ...], lookup: Lookup,
             return_nomatch: bool = False, depth: int = 0) -> bool | None:
        """Does set `name` hold the packet, each dimension read from its source (True) or
        destination? None: the set was not read, or the answer cannot be told."""
        found = self._sets.get(name)
        if found is None or depth > _MAX_DEPTH:
            return None
        if found.family not in (0, lookup.family):
            return False
        if found.type.startswith("list:"):
            unsure = False
            for member in found.members:
                hit = self.test(member.value, sources, lookup, return_nomatch, depth + 1)
                if hit:
                    return True
                unsure = unsure or hit is None
            return None if unsure else False
        kinds = found.type.partition(":")[2].split(",")
        if len(sources) < len(kinds):
            return False
        members = self._parsed(found, kinds)
        if members is None:
            return None
        best, unsure = None, False
        for member in members:
            hit = _holds(member, sources, lookup)
            if hit is None:
                unsure = True
            elif hit and (best is None or member.specificity > best.specificity):
                best = member
        if unsure:  # a member that cannot be judged might be the more specific one
            return None
        if best is None:
            return False
        if return_nomatch and "net" in kinds:  # only hash:*net* types know nomatch
            return best.nomatch
        return not best.nomatch

    def _parsed(self, found: Ipset, kinds: list[str]) -> tuple[_Member, ...] | None:
        if found.name not in self._members:
            try:
                self._members[found.name] = tuple(_member(m.value, m.nomatch, kinds)
                                                  for m in found.members)
            except ValueError:  # a member this model cannot read: the set is unknown
                self._members[found.name] = None
        return self._members[found.name]


def _holds(member: _Member, sources: tuple[bool, ...], lookup: Lookup) -> bool | None:
    result: bool | None = True
    for part, source in zip(member.parts, sources, strict=False):
        hit = part(lookup, source)
        if hit is False:
            return False
        if hit is None:
            result = None
    return result


def _member(value: str, nomatch: bool, kinds: list[str]) -> _Member:
    texts = value.split(",")
    if len(texts) != len(kinds):
        raise ValueError(value)
    parts, specificity = [], []
    for kind, text in zip(kinds, texts, strict=True):
        if kind in ("ip", "net"):
            test, prefix = _address(text)
            parts.append(test)
            if kind == "net":
                specificity.append(prefix)
        elif kind == "port":
            parts.append(_port(text))
        elif kind == "iface":
            parts.append(_iface(text))
        else:  # mac, mark: not modelled
            parts.append(lambda lookup, source: None)
    return _Member(tuple(parts), tuple(specificity), nomatch)


def address_ranges(ipset: Ipset, dimension: int) -> list[tuple[int, int]] | None:
    """The addresses the set's members hold in its type's `dimension`-th part (from 0), as
    (first, last) intervals, nomatch exceptions left out; None when that part is not an
    address, or the set a list:set (whose members are sets)."""
    kinds = ipset.type.partition(":")[2].split(",")
    if ipset.type.startswith("list:") or dimension >= len(kinds) or \
            kinds[dimension] not in ("ip", "net"):
        return None
    try:
        return [_interval(member.value.split(",")[dimension])[:2]
                for member in ipset.members if not member.nomatch]
    except (ValueError, IndexError):
        return None


def _interval(text: str) -> tuple[int, int, int]:
    """An address, network or range (bitmap:ip) → (first, last, prefix length)."""
    if "-" in text:
        low, _, high = text.partition("-")
        _, first, _, _ = network_interval(low)
        _, last, _, _ = network_interval(high)
        return first, last, 0
    _, first, last, prefix = network_interval(text)
    return first, last, prefix


def _address(text: str):
    first, last, prefix = _interval(text)

    def test(lookup: Lookup, source: bool) -> bool:
        return first <= _value(lookup.src if source else lookup.dst) <= last
    return test, prefix


@lru_cache(maxsize=4096)
def _value(address: str) -> int:
    """An address as an integer: asked once per member of a set, for the same few packets."""
    return network_interval(address)[1]


def _port(text: str):
    name, _, ports = text.rpartition(":")
    protocol = None if not name else _PROTOCOLS[name] if name in _PROTOCOLS else int(name)
    if protocol in (1, 58):  # icmp:TYPE/CODE
        icmp_type, _, code = ports.partition("/")
        low = high = int(icmp_type) << 8 | int(code or 0)
    else:
        first, _, last = ports.partition("-")
        low, high = int(first), int(last or first)

    def test(lookup: Lookup, source: bool) -> bool | None:
        port = lookup.sport if source else lookup.dport
        if protocol is None:  # bitmap:port: TCP, UDP and the like only
            if lookup.protocol not in (6, 17, 132, 136):
                return None
        elif protocol != lookup.protocol:
            return False
        if port is None:
            return None
        return low <= port <= high
    return test


def _iface(text: str):
    physdev = text.startswith("physdev:")
    name = text.removeprefix("physdev:")

    def test(lookup: Lookup, source: bool) -> bool:
        if physdev:
            here = lookup.physdev_in if source else lookup.physdev_out
        else:
            here = lookup.in_if if source else lookup.out_if
        if not here:  # no such interface at this hook (a local packet's in-interface)
            return False
        return here.startswith(name[:-1]) if name.endswith("+") else here == name
    return test
