"""The report as text for a person: findings grouped by severity, worst first.

Namespaces are named the way people know them — container, lab node, named namespace — and
each finding shows its evidence and the commands its repair would run.
"""

from __future__ import annotations

from netdiag.checks.engine import Report
from netdiag.checks.finding import Finding, Severity
from netdiag.checks.output.data import step_command
from netdiag.model import NamespaceRef, NsKind

_KIND_WORD = {NsKind.DOCKER: "container", NsKind.LAB: "lab node", NsKind.NAMED: "netns",
              NsKind.PID: "process"}


def describe(ref: NamespaceRef) -> str:
    """"container web", "lab node demo/r1", "host"."""
    if ref.kind is NsKind.HOST:
        return "host"
    if ref.kind is NsKind.DOCKER and not ref.container:
        return ref.display  # Docker's own namespaces are labelled "overlay NETWORK" and such
    return f"{_KIND_WORD[ref.kind]} {ref.display}"


def render(report: Report) -> str:
    lines: list[str] = []
    for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        group = [f for f in report.findings if f.severity is severity]
        if group:
            lines.append(f"{severity.value.upper()} ({len(group)})")
            for finding in group:
                lines.extend(_finding_lines(finding, report))
            lines.append("")
    lines.extend(_not_checked_lines(report))
    lines.append(_summary(report))
    return "\n".join(lines) + "\n"


def _finding_lines(finding: Finding, report: Report) -> list[str]:
    lines = [f"  {finding.code} {finding.rule}  {describe(finding.namespace)}: {finding.subject}",
             f"    {finding.message}"]
    for evidence in finding.evidence:
        lines.append(f"      · {evidence.text}")
    repair = finding.repair
    if repair is not None:
        lines.append(f"    repair ({repair.safety.value}): {repair.title}")
        lines.extend(f"      $ {step_command(step, report.namespaces)}" for step in repair.steps)
    return lines


def _not_checked_lines(report: Report) -> list[str]:
    if not report.gaps and not report.unknown:
        return []
    lines = ["NOT CHECKED"]
    for gap in report.gaps:
        ref = report.namespaces.get(gap.namespace) if gap.namespace is not None else None
        where = f" in {describe(ref)}" if ref else ""
        lines.append(f"  {gap.collector}{where} ({gap.kind}): {gap.message}")
    for unknown in report.unknown:
        lines.append(f"  rule {unknown.rule} ({unknown.reason}): {unknown.message}")
    lines.append("")
    return lines


def _summary(report: Report) -> str:
    counts = ", ".join(_count(report.count(s), s.value) if s is not Severity.INFO
                       else f"{report.count(s)} info"
                       for s in (Severity.ERROR, Severity.WARNING, Severity.INFO))
    return (f"{counts} — {_count(len(report.rules), 'rule')} over "
            f"{_count(len(report.namespaces), 'namespace')}"
            + (f", {len(report.unknown)} unknown" if report.unknown else ""))


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"
