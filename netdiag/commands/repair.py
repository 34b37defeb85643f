"""`netdiag repair`: run the checks, show each finding's repair plan, apply it, check again.

    netdiag repair (--ns REF ... | --lab NAME) [--dry-run | --apply] [--unsafe]

Every planned step is printed with its equivalent ip/bridge/iptables/sysctl command. `--apply`
applies the safe steps (unsafe ones only with `--unsafe`; manual ones are only printed), then
collects again and shows the findings before and after. A repair can uncover the next problem
(lowering one end of a link makes its bridge's ports disagree), so up to five rounds run
while new repairable findings appear. A step that fails stops the repair there, with one line
naming the step and the error. What may change is the executor's policy
(netdiag/repair/executor.py): with `--ns`, those namespaces and the ones on their paths (a
shared property such as an overlay's MTU is repaired on every host, not one); with `--lab`, the
lab's namespaces. Every namespace a round will change is printed before it is applied. Exit
code: 0 when nothing at or above `--fail-on` is left, 1 otherwise (for a dry run: when
anything needs repairing); a failed step's error decides it (3 when the kernel refused).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from netdiag import terminal
from netdiag.cli import SUMMARIES
from netdiag.commands.common import add_docker_arg
from netdiag.errors import EXIT_FINDINGS, EXIT_OK, CollectError, RepairFailed, UsageError
from netdiag.findings.repair import Safety
from netdiag.findings.severity import Severity

if TYPE_CHECKING:  # the rules, the collectors and the executor load in run(), not for --help
    from netdiag.checks import engine
    from netdiag.collect import scope
    from netdiag.findings.finding import Finding
    from netdiag.findings.rule import CheckConfig
    from netdiag.model import Snapshot
    from netdiag.repair.executor import Policy, StepResult

MAX_ROUNDS = 5


def register(subparsers) -> None:
    parser = subparsers.add_parser("repair", help=SUMMARIES["repair"],
                                   description=__doc__.splitlines()[0])
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--ns", action="append", default=[], metavar="REF",
                       help="repair this namespace and what its findings name (repeatable); "
                            "e.g. --ns container:web")
    scope.add_argument("--lab", metavar="NAME",
                       help="repair every namespace of a lab; e.g. --lab broken-mtu")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="only print the plan (default)")
    mode.add_argument("--apply", action="store_true", help="apply safe steps")
    parser.add_argument("--unsafe", action="store_true", help="with --apply: unsafe steps too")
    parser.add_argument("--rule", action="append", default=[], metavar="NAME",
                        help="only this rule's findings (repeatable); e.g. --rule "
                             "docker-network-rules-missing")
    parser.add_argument("--skip", action="append", default=[], metavar="NAME",
                        help="leave this rule's findings alone (repeatable); e.g. --skip "
                             "mtu-mismatch")
    parser.add_argument("--fail-on", choices=[s.value for s in Severity], default="warning",
                        help="lowest severity that, left after the repair, makes the exit "
                             "code 1 (default: warning); e.g. --fail-on error")
    add_docker_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netdiag.checks import config as check_config
    from netdiag.findings.rule import CheckConfig
    from netdiag.progress import Progress
    from netdiag.repair.executor import execute, refusal

    if args.unsafe and not args.apply:
        raise UsageError("--unsafe only makes sense with --apply")
    config = check_config.with_command_line(CheckConfig(), args.rule, args.skip)
    chosen = _chosen(args)
    look = terminal.look(args.color)
    before, snapshot, policy = _check(chosen, config, args.unsafe)
    _print_findings("Before", before, snapshot, look)
    fail_on = Severity(args.fail_on)
    if not args.apply:
        for finding in before.findings:
            _print_plan(finding, snapshot, policy, None, look)
        return EXIT_FINDINGS if _worst_at_least(before, fail_on) else EXIT_OK

    applied: set = set()
    report = before
    for round_ in range(1, MAX_ROUNDS + 1):
        todo = [f for f in report.findings if f.repair is not None
                and not refusal(f.repair, snapshot, policy)
                and any(step not in applied for step in f.repair.steps)]
        if round_ > 1 and not todo:
            break
        if round_ > 1:  # a repair can uncover the next problem (one end of a pair fixed...)
            print(f"Round {round_}: the repairs uncovered {len(todo)} more")
        _print_scope(todo, snapshot)
        for finding in report.findings if round_ == 1 else todo:
            results = None
            if finding in todo:
                with Progress() as line:
                    line.update(f"repairing {todo.index(finding) + 1}/{len(todo)}: "
                                f"{finding.rule} {finding.subject}")
                    results = execute(finding.repair, snapshot, policy, applied)
                applied.update(r.step for r in results if r.applied)
            _print_plan(finding, snapshot, policy, results, look)
            _stop_on_failure(finding, results or (), snapshot)
        report, snapshot, policy = _check(chosen, config, args.unsafe)
    _print_findings("After", report, snapshot, look)
    return EXIT_FINDINGS if _worst_at_least(report, fail_on) else EXIT_OK


def _stop_on_failure(finding: Finding, results, snapshot: Snapshot) -> None:
    """A step that failed ends the repair: trying it again (or the steps after it) would
    fail the same way (issue 31: five rounds of the same refused step)."""
    from netdiag.repair.executor import describe

    failed = next((result for result in results if result.error is not None), None)
    if failed is not None:
        raise RepairFailed(f"repair stopped: `{describe(failed.step, snapshot)}` "
                           f"({finding.rule} {finding.subject}) failed", failed.error)


def _chosen(args) -> scope.ReadScope:
    """What to read (everything), and the namespaces the user pointed at."""
    from netdiag.collect import scope

    if not args.lab:
        return scope.select(args.ns, engines=args.docker)
    from netdiag.lab import teardown
    from netdiag.topology import journal

    lab = journal.load(args.lab)
    everything = scope.select([], engines=args.docker)
    names = set(lab.namespaces) | set(teardown.nested_namespaces(lab))
    return scope.ReadScope(read=everything.read, chosen=frozenset(
        ref.id for ref in everything.read if ref.name in names), docker=everything.docker)


def _check(chosen: scope.ReadScope, config: CheckConfig, unsafe: bool
           ) -> tuple[engine.Report, Snapshot, Policy]:
    from netdiag.checks import engine
    from netdiag.collect import collect_snapshot
    from netdiag.repair.executor import Policy

    snapshot = collect_snapshot(chosen.read, intent=chosen.docker)
    if not snapshot.namespaces or \
            (chosen.chosen and not any(snapshot.namespace(ns_id) for ns_id in chosen.chosen)):
        raise CollectError("could not read any of the namespaces to repair")
    policy = Policy.for_namespaces(snapshot, chosen.chosen, unsafe) if chosen.chosen \
        else Policy(frozenset(state.ref.id for state in snapshot.namespaces), unsafe)
    report = engine.run(snapshot, config, focus=chosen.chosen)
    return _with_intent(report, snapshot), snapshot, policy


def _with_intent(report: engine.Report, snapshot: Snapshot) -> engine.Report:
    """Each plan with the intent it repairs (the executor's with_intent), so the plan
    printed is the one applied."""
    from dataclasses import replace

    from netdiag.repair.executor import with_intent

    return replace(report, findings=tuple(
        replace(f, repair=with_intent(f.repair, snapshot)) if f.repair else f
        for f in report.findings))


def _print_scope(findings: list[Finding], snapshot: Snapshot) -> None:
    """Before anything is applied: every namespace the repairs will change."""
    from netdiag.repair.executor import changes

    changed = frozenset().union(*(changes(f.repair) for f in findings))
    if changed:
        names = sorted(_label(snapshot, ns_id) for ns_id in changed)
        print(f"Changing {len(names)} namespace{'s' if len(names) != 1 else ''}: "
              f"{', '.join(names)}")


def _label(snapshot: Snapshot, ns_id: int) -> str:
    state = snapshot.namespace(ns_id)
    return state.ref.display if state else f"inode:{ns_id}"


def _print_findings(when: str, report: engine.Report, snapshot: Snapshot,
                    look: terminal.Look) -> None:
    counts = ", ".join(_count(report.count(s), s.value, plural=s is not Severity.INFO)
                       for s in reversed(Severity))
    verdict = _count(len(report.findings), "finding") if report.findings else "clean"
    worst = report.worst()
    print(f"{when}: {look.paint(counts, worst.value if worst else 'ok')} — {verdict} "
          f"({len(snapshot.namespaces)} namespaces)")


def _count(number: int, word: str, plural: bool = True) -> str:
    return f"{number} {word}{'s' if plural and number != 1 else ''}"


def _print_plan(finding: Finding, snapshot: Snapshot, policy: Policy,
                results: list[StepResult] | None, look: terminal.Look) -> None:
    """A finding with its repair steps; `results` is None when nothing was tried."""
    from netdiag.repair.executor import describe, refusal

    title = look.paint(f"{finding.code} {finding.rule}", finding.severity.value)
    print(f"  {title} ({finding.severity.value}) {finding.namespace.display}: "
          f"{finding.subject}")
    print(f"    {finding.message}")
    if finding.repair is None:
        print("    no repair known")
        return
    print(f"    repair ({finding.repair.safety.value}): {finding.repair.title}")
    why = refusal(finding.repair, snapshot, policy)
    if why and finding.repair.safety is not Safety.MANUAL:
        print(f"    not applied: {why}")
    outcome = {id(r.step): r for r in results or ()}
    for step in finding.repair.steps:
        result = outcome.get(id(step))
        status = "" if result is None else "applied" if result.applied else \
            f"not applied: {result.message}"
        painted = look.paint(f"[{status}]", "ok" if result and result.applied else "warning")
        print(f"      $ {describe(step, snapshot)}" + (f"  {painted}" if status else ""))


def _worst_at_least(report: engine.Report, fail_on: Severity) -> bool:
    worst = report.worst()
    return worst is not None and worst.rank >= fail_on.rank
