"""`netdiag repair`: run the checks, show each finding's repair plan, apply it, check again.

    netdiag repair (--ns REF ... | --lab NAME) [--dry-run | --apply] [--unsafe]

Every planned step is printed with its equivalent ip/bridge/iptables/sysctl command. `--apply`
applies the safe steps (unsafe ones only with `--unsafe`; manual ones are only printed), then
collects again and shows the findings before and after. A repair can uncover the next problem
(lowering one end of a link makes its bridge's ports disagree), so up to five rounds run
while new repairable findings appear. repair only touches the namespaces it
was pointed at: with `--ns`, those namespaces (their wired neighbours are read, not changed);
with `--lab`, the lab's namespaces. Exit code: 0 when nothing at or above `--fail-on` is left,
1 otherwise (for a dry run: when anything needs repairing).
"""

from __future__ import annotations

import argparse

from netdiag import netns
from netdiag.checks import config as check_config
from netdiag.checks import engine
from netdiag.checks.api import CheckConfig, Finding, Safety, Severity
from netdiag.collect import collect_snapshot
from netdiag.commands import check_scope
from netdiag.commands.common import require_root
from netdiag.errors import EXIT_FINDINGS, EXIT_OK, CollectError, UsageError
from netdiag.model import NamespaceRef, Snapshot
from netdiag.repair.executor import StepResult, allowed_paths, apply_steps, describe

MAX_ROUNDS = 5


def register(subparsers) -> None:
    parser = subparsers.add_parser("repair", help="apply the repairs of what check finds, "
                                                  "then check again",
                                   description=__doc__.splitlines()[0])
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--ns", action="append", default=[], metavar="REF",
                       help="repair this namespace (repeatable)")
    scope.add_argument("--lab", metavar="NAME", help="repair every namespace of a lab")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="only print the plan (default)")
    mode.add_argument("--apply", action="store_true", help="apply safe steps")
    parser.add_argument("--unsafe", action="store_true", help="with --apply: unsafe steps too")
    parser.add_argument("--rule", action="append", default=[], metavar="NAME",
                        help="only this rule's findings (repeatable)")
    parser.add_argument("--skip", action="append", default=[], metavar="NAME")
    parser.add_argument("--fail-on", choices=[s.value for s in Severity], default="warning")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.unsafe and not args.apply:
        raise UsageError("--unsafe only makes sense with --apply")
    require_root(args.ns or ["all"])
    config = check_config.with_command_line(CheckConfig(), args.rule, args.skip)
    targets, selected = _targets(args)
    before, snapshot = _check(selected, targets, config)
    _print_findings("Before", before, snapshot)
    fail_on = Severity(args.fail_on)
    if not args.apply:
        for finding in before.findings:
            _print_plan(finding, snapshot, results=None)
        return EXIT_FINDINGS if _worst_at_least(before, fail_on) else EXIT_OK

    applied: set = set()
    report = before
    for round_ in range(1, MAX_ROUNDS + 1):
        paths = allowed_paths(snapshot, targets)
        todo = [f for f in report.findings if _allowed(f, args.unsafe)
                and any(step not in applied for step in f.repair.steps)]
        if round_ > 1 and not todo:
            break
        if round_ > 1:  # a repair can uncover the next problem (one end of a pair fixed...)
            print(f"Round {round_}: the repairs uncovered {len(todo)} more")
        for finding in report.findings if round_ == 1 else todo:
            results = _apply(finding, paths, args.unsafe, applied)
            _print_plan(finding, snapshot, results)
        report, snapshot = _check(selected, targets, config)
    _print_findings("After", report, snapshot)
    return EXIT_FINDINGS if _worst_at_least(report, fail_on) else EXIT_OK


def _targets(args) -> tuple[frozenset[int], list[NamespaceRef]]:
    """(ids of the namespaces repair may change, namespaces to read)."""
    found = netns.discover()
    if args.lab:
        from netdiag.lab import build, journal

        lab = journal.load(args.lab)
        names = set(lab.namespaces) | set(build.nested_namespaces(lab))
        chosen = [ref for ref in found if ref.name in names]
        return frozenset(ref.id for ref in chosen), chosen
    chosen = {ref.id: ref for ref in netns.resolve_all(args.ns, found)}
    return frozenset(chosen), check_scope.wired(found, list(chosen.values()))


def _check(selected: list[NamespaceRef], targets: frozenset[int],
           config: CheckConfig) -> tuple[engine.Report, Snapshot]:
    snapshot = collect_snapshot(selected)
    if not snapshot.namespaces:
        raise CollectError("could not read any of the namespaces to repair")
    return engine.run(snapshot, config, focus=targets), snapshot


def _allowed(finding: Finding, unsafe: bool) -> bool:
    if finding.repair is None or finding.repair.safety is Safety.MANUAL:
        return False
    return finding.repair.safety is Safety.SAFE or unsafe


def _apply(finding: Finding, paths, unsafe: bool, applied: set) -> list[StepResult] | None:
    if not _allowed(finding, unsafe):
        return None
    # Two findings may plan the same step (both ends of one mismatch): apply it once.
    done_before = [step for step in finding.repair.steps if step in applied]
    ran = apply_steps([step for step in finding.repair.steps if step not in applied], paths)
    applied.update(r.step for r in ran if r.applied)
    return ran + [StepResult(step, True, "applied for another finding") for step in done_before]


def _print_findings(when: str, report: engine.Report, snapshot: Snapshot) -> None:
    counts = ", ".join(_count(report.count(s), s.value, plural=s is not Severity.INFO)
                       for s in reversed(Severity))
    verdict = _count(len(report.findings), "finding") if report.findings else "clean"
    print(f"{when}: {counts} — {verdict} ({len(snapshot.namespaces)} namespaces)")


def _count(number: int, word: str, plural: bool = True) -> str:
    return f"{number} {word}{'s' if plural and number != 1 else ''}"


def _print_plan(finding: Finding, snapshot: Snapshot,
                results: list[StepResult] | None) -> None:
    """A finding with its repair steps; `results` is None for a dry run."""
    print(f"  {finding.code} {finding.rule} ({finding.severity.value}) "
          f"{finding.namespace.display}: {finding.subject}")
    print(f"    {finding.message}")
    if finding.repair is None:
        print("    no repair known")
        return
    safety = finding.repair.safety
    print(f"    repair ({safety.value}): {finding.repair.title}")
    outcome = {id(r.step): r for r in results or ()}
    for step in finding.repair.steps:
        result = outcome.get(id(step))
        if result is not None:
            status = "applied" if result.applied else f"not applied: {result.message}"
        elif safety is Safety.UNSAFE:
            status = "needs --unsafe" if results is None else "not applied: needs --unsafe"
        else:
            status = "" if results is None or safety is Safety.MANUAL else "not applied"
        print(f"      $ {describe(step, snapshot)}" + (f"  [{status}]" if status else ""))


def _worst_at_least(report: engine.Report, fail_on: Severity) -> bool:
    worst = report.worst()
    return worst is not None and worst.rank >= fail_on.rank
