"""Parse `iptables-save -c` text into IptablesChain and IptablesRule records.

The same parser reads all four dumps (iptables/ip6tables, nft and legacy backends): they share
one format. Options are normalised to their long names (`-s` → `source`) and each match keeps
the `-m` module that provides it and whether it was negated with `!`. The parser does not know
every extension's options: an option's value is every following token up to the next option,
which also covers flags (no value) and two-word values such as `--tcp-flags SYN,RST SYN`.
Quoted tokens (comments, log prefixes) are never mistaken for options.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from netdiag.errors import CollectError
from netdiag.model import IptablesChain, IptablesRule, Match

# Short and alternative spellings → the long name the model uses.
_OPTION_NAMES = {
    "s": "source", "src": "source",
    "d": "destination", "dst": "destination",
    "i": "in-interface",
    "o": "out-interface",
    "p": "protocol",
    "f": "fragment",
    "m": "match",
    "j": "jump",
    "g": "goto",
    "A": "append",
    "source-port": "sport",
    "destination-port": "dport",
    "source-ports": "sports",
    "destination-ports": "dports",
}

_COUNTERS = re.compile(r"^\[(\d+):(\d+)\]\s+")
_CHAIN = re.compile(r"^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?\s*$")
# "# Table `nat' contains incompatible base-chains, use 'nft' tool to list them."
# "# Table `filter' is incompatible, use 'nft' tool."
_INCOMPATIBLE = re.compile(r"^# Table `([^']+)' (?:is|contains) incompatible", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    quoted: bool  # came (at least partly) from a "quoted string": a value, never an option

    @property
    def is_option(self) -> bool:
        return not self.quoted and self.text.startswith("-") and len(self.text) > 1

    @property
    def is_bang(self) -> bool:
        return not self.quoted and self.text == "!"


def tokenize(line: str) -> list[_Token]:
    """Split like iptables-save quotes: "double quotes" with backslash escapes, nothing else."""
    tokens: list[_Token] = []
    word: list[str] = []
    quoted = in_quotes = False
    in_word = False
    i = 0
    while i < len(line):
        char = line[i]
        if in_quotes:
            if char == "\\" and i + 1 < len(line):
                i += 1
                word.append(line[i])
            elif char == '"':
                in_quotes = False
            else:
                word.append(char)
        elif char == '"':
            in_quotes = quoted = in_word = True
        elif char.isspace():
            if in_word:
                tokens.append(_Token("".join(word), quoted))
            word, quoted, in_word = [], False, False
        else:
            word.append(char)
            in_word = True
        i += 1
    if in_quotes:
        raise ValueError("unterminated quote")
    if in_word:
        tokens.append(_Token("".join(word), quoted))
    return tokens


def _option_name(token: str) -> str:
    name = token.lstrip("-")
    return _OPTION_NAMES.get(name, name)


def _take_value(tokens: list[_Token], start: int) -> tuple[str, int]:
    """The value after an option: all tokens up to the next option or `!`; ("", start) if none."""
    end = start
    while end < len(tokens) and not tokens[end].is_option and not tokens[end].is_bang:
        end += 1
    return " ".join(t.text for t in tokens[start:end]), end


@dataclass(frozen=True, slots=True)
class _ParsedRule:
    chain: str
    matches: tuple[Match, ...]
    target: str
    target_options: tuple[tuple[str, str], ...]
    goto: bool


def parse_rule(text: str) -> _ParsedRule:
    """One `-A CHAIN ...` line (without a leading [packets:bytes]) → its parts."""
    try:
        tokens = tokenize(text)
    except ValueError as exc:
        raise CollectError(f"cannot parse iptables rule {text!r}: {exc}") from None
    if len(tokens) < 2 or _option_name(tokens[0].text) != "append":
        raise CollectError(f"cannot parse iptables rule {text!r}: it does not start with -A")
    chain = tokens[1].text
    matches: list[Match] = []
    target_options: list[tuple[str, str]] = []
    target, goto = "", False
    module = ""
    negate = False
    i = 2
    while i < len(tokens):
        token = tokens[i]
        if token.is_bang:
            negate = True
            i += 1
            continue
        if not token.is_option:
            raise CollectError(f"cannot parse iptables rule {text!r}: "
                               f"unexpected {token.text!r}")
        name = _option_name(token.text)
        value, i = _take_value(tokens, i + 1)
        if name == "match":
            module = value
        elif name in ("jump", "goto"):
            target, goto = value, name == "goto"
            module = ""
        elif target:
            target_options.append((name, value))
        else:
            matches.append(Match(option=name, value=value, negated=negate, module=module))
        negate = False
    return _ParsedRule(chain, tuple(matches), target, tuple(target_options), goto)


def parse(text: str, backend: str, family: int) -> tuple[tuple[IptablesChain, ...],
                                                         tuple[IptablesRule, ...]]:
    """A whole iptables-save dump → its chains and rules, in the order it lists them.

    A table that iptables-nft-save calls incompatible (native nftables chains in an `ip nat`
    or `ip filter` table) is skipped: the save program prints made-up built-in chains for it,
    while the nftables collector has the real ones.
    """
    chains: list[IptablesChain] = []
    rules: list[IptablesRule] = []
    positions: dict[tuple[str, str], int] = {}
    incompatible = set(_INCOMPATIBLE.findall(text))
    table = ""
    for number, line in _lines(text):
        if line.startswith("*"):
            table = line[1:].strip()
        elif line == "COMMIT":
            table = ""
        elif not table:
            raise CollectError(f"iptables-save line {number}: {line!r} is outside a table")
        elif table in incompatible:
            continue
        elif line.startswith(":"):
            chains.append(_parse_chain(line, number, backend, family, table))
        else:
            rule = _parse_rule_line(line, backend, family, table, positions)
            rules.append(rule)
    return tuple(chains), tuple(rules)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def _parse_chain(line: str, number: int, backend: str, family: int,
                 table: str) -> IptablesChain:
    found = _CHAIN.match(line)
    if not found:
        raise CollectError(f"iptables-save line {number}: cannot parse chain {line!r}")
    name, policy, packets, count = found.groups()
    return IptablesChain(backend=backend, family=family, table=table, name=name,
                         policy="" if policy == "-" else policy,
                         packets=int(packets or 0), bytes=int(count or 0))


def _parse_rule_line(line: str, backend: str, family: int, table: str,
                     positions: dict[tuple[str, str], int]) -> IptablesRule:
    packets = count = 0
    counters = _COUNTERS.match(line)
    if counters:
        packets, count = int(counters.group(1)), int(counters.group(2))
        line = line[counters.end():]
    parsed = parse_rule(line)
    key = (table, parsed.chain)
    positions[key] = positions.get(key, 0) + 1
    return IptablesRule(backend=backend, family=family, table=table, chain=parsed.chain,
                        position=positions[key], matches=parsed.matches, target=parsed.target,
                        target_options=parsed.target_options, goto=parsed.goto,
                        packets=packets, bytes=count, text=line)
