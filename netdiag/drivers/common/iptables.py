"""Applying iptables rules in one `iptables-restore --noflush` batch per operation.

Rules are written in the exact form iptables-save prints them, so whether a rule exists is a
text comparison against one `iptables-save` of the namespace. A batch then only adds what is
missing (or deletes what is present): operations are idempotent and a half-built state can be
completed or removed by running the same operation again. Two quirks shape this module:
declaring a user chain that exists in a --noflush batch flushes it, so only missing chains are
declared; and a jump that must stay first (FORWARD → DOCKER-USER) is deleted and re-inserted,
as Docker's EnsureJumpRule does. Reading and writing happen under a lock of the namespace
(flock on its nsfs file), so two processes changing one namespace's rules do not build batches
from the same reading (iptables-nft takes no lock of its own).

IPv6 rules are the same mechanism run with ip6tables-save/ip6tables-restore: a rule carries
its family, and each family is read and written in its own batch.

Every function expects the calling thread to be inside the namespace (netns.entered).
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from netdiag import helper

BUILTIN = frozenset({"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"})
SAVE = {4: "iptables-save", 6: "ip6tables-save"}
RESTORE = {4: "iptables-restore", 6: "ip6tables-restore"}


class RulePlacement(str, Enum):
    APPEND = "append"  # -A, when missing
    INSERT = "insert"  # -I at the top, when missing
    FIRST = "first"  # delete wherever it is, then -I at the top (Docker's EnsureJumpRule)


@dataclass(frozen=True, slots=True)
class FwRule:
    table: str
    chain: str
    spec: str  # the rule after "-A CHAIN ", exactly as iptables-save prints it
    where: RulePlacement = RulePlacement.APPEND
    family: int = 4  # 6: an ip6tables rule

    @property
    def line(self) -> str:
        return f"-A {self.chain} {self.spec}"


@dataclass(frozen=True, slots=True)
class Saved:
    """The namespace's rules as iptables-save printed them: table → chains, rule lines."""

    chains: dict[str, list[str]]
    lines: dict[str, list[str]]
    policies: dict[tuple[str, str], str]

    def has(self, rule: FwRule) -> bool:
        return rule.line in self.lines.get(rule.table, ())

    def has_chain(self, table: str, chain: str) -> bool:
        return chain in self.chains.get(table, ())


def parse_save(text: str) -> Saved:
    chains: dict[str, list[str]] = {}
    lines: dict[str, list[str]] = {}
    policies: dict[tuple[str, str], str] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
            chains.setdefault(table, [])
            lines.setdefault(table, [])
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            chains[table].append(name)
            if policy != "-":
                policies[(table, name)] = policy
        elif line.startswith("-A "):
            lines[table].append(line)
    return Saved(chains, lines, policies)


def read(family: int = 4) -> Saved:
    return parse_save(helper.run([SAVE[family]]))


def batch_add(saved: Saved, chains: Iterable[tuple[str, str]], rules: Sequence[FwRule],
              policies: Iterable[tuple[str, str, str]] = ()) -> dict[str, list[str]]:
    """table → restore lines that create the missing chains and rules, in order."""
    out: dict[str, list[str]] = {}
    for table, chain, policy in policies:
        out.setdefault(table, []).append(f":{chain} {policy} [0:0]")
    for table, chain in chains:
        if chain not in BUILTIN and not saved.has_chain(table, chain):
            out.setdefault(table, []).append(f":{chain} - [0:0]")
    present = {table: set(lines) for table, lines in saved.lines.items()}
    for rule in rules:
        have = present.setdefault(rule.table, set())
        ops = out.setdefault(rule.table, [])
        if rule.where is RulePlacement.FIRST:
            if rule.line in have:
                ops.append(f"-D {rule.chain} {rule.spec}")
            ops.append(f"-I {rule.chain} 1 {rule.spec}")
        elif rule.line not in have:
            verb = "-I" if rule.where is RulePlacement.INSERT else "-A"
            position = " 1" if rule.where is RulePlacement.INSERT else ""
            ops.append(f"{verb} {rule.chain}{position} {rule.spec}")
        have.add(rule.line)
    return out


def batch_delete(saved: Saved, rules: Sequence[FwRule]) -> dict[str, list[str]]:
    """table → restore lines deleting those of `rules` that are present."""
    out: dict[str, list[str]] = {}
    for rule in rules:
        if saved.has(rule):
            out.setdefault(rule.table, []).append(f"-D {rule.chain} {rule.spec}")
    return out


def restore(batch: dict[str, list[str]], family: int = 4) -> None:
    """Apply a batch in one iptables-restore --noflush run (nothing to do: no run)."""
    sections = [f"*{table}\n" + "\n".join(ops) + "\nCOMMIT\n"
                for table, ops in batch.items() if ops]
    if not sections:
        return
    # run_helper has no stdin, and a file is what iptables-restore reports line numbers for.
    with tempfile.NamedTemporaryFile("w", prefix="netdiag-bridge-", suffix=".rules") as file:
        file.write("".join(sections))
        file.flush()
        helper.run([RESTORE[family], "--noflush", file.name])


@contextmanager
def _namespace_lock() -> Iterator[None]:
    # flock on the namespace's own nsfs file: one lock per namespace, and no lock files.
    with open("/proc/thread-self/ns/net") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


def apply_add(chains: Iterable[tuple[str, str]], rules: Sequence[FwRule],
              policies: Iterable[tuple[str, str, str]] = (), family: int = 4) -> None:
    """Create what is missing of `chains` and `rules` (and set `policies`) of one family (all
    `rules` are of it), in one batch."""
    assert all(rule.family == family for rule in rules)
    with _namespace_lock():
        restore(batch_add(read(family), chains, rules, policies), family)


def apply_delete(rules: Sequence[FwRule]) -> None:
    """Delete those of `rules` that are present, in one batch per family."""
    with _namespace_lock():
        for family in sorted({rule.family for rule in rules}):
            mine = [rule for rule in rules if rule.family == family]
            restore(batch_delete(read(family), mine), family)


def missing(saved: Saved, rules: Sequence[FwRule]) -> list[FwRule]:
    return [rule for rule in rules if not saved.has(rule)]
