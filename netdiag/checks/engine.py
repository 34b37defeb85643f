"""Run the selected rules over one Snapshot and gather a Report.

The engine is where CheckConfig takes effect: it picks the rules (enabled, disabled), drops
findings about excluded namespaces and interfaces, applies severity overrides, and keeps only
findings that involve the focus namespaces or a namespace on their paths when the user asked
for some (`check --ns`, the TUI's attached namespace): Topology.on_paths_of. Rules always run
over the whole snapshot, so a focused report is the unfocused one filtered — a superset of
what concerns the focus, never a different answer.

A rule that raises does not end the run: it becomes an `Unknown` entry, as do the rules that
had not finished when the deadline passed. Rules run one after another in a daemon thread so
that a rule stuck in a loop can be abandoned at the deadline without keeping the process alive.

On a big snapshot (BIG_NAMESPACES namespaces, or BIG_ROUTES routes) in a process that may
fork (netdiag/forked.py: the CLI), the rules that walk flows (a module's `WALKS_FLOWS`) run in
a second process meanwhile, on the second core: they are most of the time on a host of 1000
containers (every container's expected flows) or of 1M routes (exposure). The index is built
first, so both processes start from it; the child sends its findings back, and one
that has not finished by the deadline is killed, its rules "timeout".
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from netdiag import forked
from netdiag.checks.registry import RULES
from netdiag.findings.finding import Finding, Severity
from netdiag.findings.rule import CheckConfig, RuleModule
from netdiag.model import Gap, NamespaceRef, Snapshot
from netdiag.model.index import index


@dataclass(frozen=True, slots=True)
class Unknown:
    """A rule whose result is not known: it raised, or it did not finish in time."""

    code: str
    rule: str
    reason: str  # "error" or "timeout"
    message: str


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: str
    rules: tuple[RuleModule, ...]  # the rules that were selected
    findings: tuple[Finding, ...]
    unknown: tuple[Unknown, ...]
    gaps: tuple[Gap, ...]
    namespaces: dict[int, NamespaceRef]  # every namespace of the snapshot, for names
    # The kernel features a rule would have read here and this kernel lacks (collectors of
    # "feature-missing" gaps): what a person is told; the rest are gaps of no consequence.
    missed_features: frozenset[str] = frozenset()
    # The namespaces not read at all (unread(): not entered, not read in time...): while
    # there is one, no finding is no answer, and `check` exits 3.
    unread: tuple[Gap, ...] = ()

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)


def select_rules(config: CheckConfig, rules: Sequence[RuleModule] = RULES
                 ) -> tuple[RuleModule, ...]:
    """The rules `config` enables, in registry order (names were validated by the caller)."""
    return tuple(module for module in rules
                 if (not config.enabled or module.RULE.name in config.enabled)
                 and module.RULE.name not in config.disabled)


BIG_NAMESPACES = 200
BIG_ROUTES = 100_000


def run(snapshot: Snapshot, config: CheckConfig = CheckConfig(), *,
        rules: Sequence[RuleModule] = RULES, focus: Iterable[int] = (),
        deadline: float | None = None, beside: bool | None = None) -> Report:
    """Check `snapshot`. `deadline` is a time.monotonic() value after which rules are
    abandoned. `beside`: run the rules that walk flows in a second process (None: on a big
    snapshot, when this process may fork)."""
    selected = select_rules(config, rules)
    if beside is None:
        beside = forked.alone() and forked.cpus() > 1 and _big(snapshot)
    walkers = tuple(m for m in selected if beside and getattr(m, "WALKS_FLOWS", False))
    child = None
    if walkers:
        index(snapshot)  # built once, before the fork: both processes start from it
        child = forked.start(lambda: _encoded(snapshot, config, walkers))
    here = tuple(m for m in selected if m not in walkers)
    results: list[tuple[RuleModule, list[Finding] | Exception | str]] = []
    worker = threading.Thread(target=_run_all, args=(snapshot, config, here, results),
                              name="netdiag-rules", daemon=True)
    try:
        worker.start()
        worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        # by id(): a rule module (or a test's stand-in) need not be hashable
        outcomes = {id(module): outcome for module, outcome in list(results)}  # may still grow
        if child is not None:
            outcomes.update(_received(child, walkers, deadline))
            child = None  # ended and reaped
    finally:
        if child is not None:
            forked.stop(child)  # Ctrl-C meanwhile: the child goes too

    findings: list[Finding] = []
    unknown: list[Unknown] = []
    for module in selected:
        outcome = outcomes.get(id(module))
        if outcome is None:
            unknown.append(Unknown(module.RULE.code, module.RULE.name, "timeout",
                                   "the rule did not finish before the timeout"))
        elif isinstance(outcome, list):
            findings.extend(outcome)
        else:
            unknown.append(Unknown(module.RULE.code, module.RULE.name, "error",
                                   f"the rule failed: {_failure(outcome)}"))

    focus = frozenset(focus)
    keep = _Filter(config, index(snapshot).on_paths_of(focus) if focus else focus)
    kept = [_with_severity(f, config) for f in findings if keep(f)]
    kept.sort(key=lambda f: (-f.severity.rank, f.code, f.namespace.display, f.subject))
    return Report(generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
                  rules=selected, findings=tuple(kept), unknown=tuple(unknown),
                  gaps=snapshot.gaps,
                  namespaces={state.ref.id: state.ref for state in snapshot.namespaces},
                  missed_features=_missed_features(snapshot, selected),
                  unread=unread(snapshot.gaps, focus))


def unread(gaps: Iterable[Gap], named: Iterable[int] = ()) -> tuple[Gap, ...]:
    """The gaps of namespaces that were not read at all: not entered (permission denied, as
    root without CAP_SYS_ADMIN in a container), not read within the timeout, failed. A
    collector's gap (no IPVS in this kernel, no CAP_NET_ADMIN for the firewall) is not one:
    the namespace itself was read. A namespace that vanished after it was found (a container
    removed meanwhile) is no longer there to check, unless it is one the user `named`."""
    named = frozenset(named)
    return tuple(gap for gap in gaps if gap.collector == "namespace"
                 and (gap.kind != "gone" or gap.namespace in named))


def _missed_features(snapshot: Snapshot, rules: Sequence[RuleModule]) -> frozenset[str]:
    """Missing features that matter: a rule that reads it says it would have had something
    to read (its `needs(snapshot)`); a feature no rule declares always matters."""
    missing = {gap.collector for gap in snapshot.gaps if gap.kind == "feature-missing"}
    declared = {name for module in RULES for name in getattr(module, "FEATURES", ())}
    needed = {name for module in rules if hasattr(module, "needs")
              for name in module.needs(snapshot)}
    return frozenset(name for name in missing if name not in declared or name in needed)


def _big(snapshot: Snapshot) -> bool:
    return len(snapshot.namespaces) >= BIG_NAMESPACES or \
        sum(len(state.routes) for state in snapshot.namespaces) >= BIG_ROUTES


_Sent = list[tuple[str, list[Finding] | str]]  # (rule name, its findings or why it failed)


def _failure(outcome: Exception | str) -> str:
    return outcome if isinstance(outcome, str) else f"{type(outcome).__name__}: {outcome}"


def _encoded(snapshot: Snapshot, config: CheckConfig, rules: Sequence[RuleModule]) -> bytes:
    """The child's work: each rule's findings, or the text of what it raised (an exception
    may not pickle), by the rule's name."""
    results: list = []
    _run_all(snapshot, config, rules, results)
    return forked.encode([(module.RULE.name, outcome if isinstance(outcome, list) else
                           _failure(outcome)) for module, outcome in results], _Sent)


def _received(child: forked.Child, rules: Sequence[RuleModule], deadline: float | None
              ) -> dict[int, list[Finding] | str]:
    """The second process's outcomes by id(rule module) (none of a child that ran out of
    time)."""
    data = forked.result(child, deadline)
    if data is None:
        late = deadline is not None and time.monotonic() >= deadline
        return {} if late else {id(module): "the process running it failed" for module in rules}
    by_name = {module.RULE.name: id(module) for module in rules}
    return {by_name[name]: outcome for name, outcome in forked.decode(data, _Sent)}


def _run_all(snapshot: Snapshot, config: CheckConfig, rules: Sequence[RuleModule],
             results: list) -> None:
    for module in rules:
        try:
            outcome: list[Finding] | Exception = list(module.check(snapshot, config))
        except Exception as exc:  # noqa: BLE001 - a broken rule is reported, not fatal
            outcome = exc
        results.append((module, outcome))


def counts_by_namespace(findings: Iterable[Finding]) -> dict[int, int]:
    """namespace id → how many findings involve it (what the TUI's picker shows)."""
    counts: dict[int, int] = {}
    for finding in findings:
        for ns_id in finding.involved:
            counts[ns_id] = counts.get(ns_id, 0) + 1
    return counts


class _Filter:
    """Decides whether a finding is kept: focus namespaces and the config's exclusions."""

    def __init__(self, config: CheckConfig, focus: frozenset[int]):
        self.focus = focus
        self.namespaces = [re.compile(p) for p in config.exclude_namespaces]
        self.interfaces = [re.compile(p) for p in config.exclude_interfaces]

    def __call__(self, finding: Finding) -> bool:
        if self.focus and self.focus.isdisjoint(finding.involved):
            return False
        ref = finding.namespace
        names = [n for n in (ref.label, ref.name, ref.container, ref.node) if n]
        if any(p.fullmatch(n) for p in self.namespaces for n in names):
            return False
        return not any(p.fullmatch(finding.subject) for p in self.interfaces)


def _with_severity(finding: Finding, config: CheckConfig) -> Finding:
    for name, severity in config.severity:
        if name == finding.rule:
            return replace(finding, severity=severity)
    return finding
