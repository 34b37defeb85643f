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
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

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


def run(snapshot: Snapshot, config: CheckConfig = CheckConfig(), *,
        rules: Sequence[RuleModule] = RULES, focus: Iterable[int] = (),
        deadline: float | None = None) -> Report:
    """Check `snapshot`. `deadline` is a time.monotonic() value after which rules are abandoned."""
    selected = select_rules(config, rules)
    results: list[tuple[RuleModule, list[Finding] | Exception]] = []
    worker = threading.Thread(target=_run_all, args=(snapshot, config, selected, results),
                              name="netdiag-rules", daemon=True)
    worker.start()
    worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    done = list(results)  # the worker may still append after the deadline

    findings: list[Finding] = []
    unknown: list[Unknown] = []
    for module, outcome in done:
        if isinstance(outcome, Exception):
            unknown.append(Unknown(module.RULE.code, module.RULE.name, "error",
                                   f"the rule failed: {type(outcome).__name__}: {outcome}"))
        else:
            findings.extend(outcome)
    for module in selected[len(done):]:
        unknown.append(Unknown(module.RULE.code, module.RULE.name, "timeout",
                               "the rule did not finish before the timeout"))

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
