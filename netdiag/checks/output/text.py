"""The report as text for a person: findings grouped by severity, worst first.

Namespaces are named the way people know them — container, lab node, named namespace — and
each finding shows its evidence and the commands its repair would run.
"""

from __future__ import annotations

from netdiag import capabilities
from netdiag.checks.engine import Report
from netdiag.checks.output.data import step_command
from netdiag.findings.finding import Finding, Severity
from netdiag.model import NamespaceRef, NsKind
from netdiag.terminal import PLAIN, Look

_KIND_WORD = {NsKind.DOCKER: "container", NsKind.PODMAN: "container", NsKind.LAB: "lab node",
              NsKind.NAMED: "netns", NsKind.PID: "process"}


def describe(ref: NamespaceRef) -> str:
    """"container web", "lab node demo/r1", "host" — in a fleet snapshot "node m1",
    "container m1/web"."""
    if ref.kind is NsKind.HOST:
        return f"node {ref.machine}" if ref.machine else "host"
    if ref.kind is NsKind.DOCKER and not ref.container:
        return ref.display  # Docker's own namespaces are labelled "overlay NETWORK" and such
    return f"{_KIND_WORD[ref.kind]} {ref.display}"


def render(report: Report, look: Look = PLAIN) -> str:
    lines: list[str] = []
    for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        group = [f for f in report.findings if f.severity is severity]
        if group:
            lines.append(look.paint(f"{severity.value.upper()} ({len(group)})",
                                    severity.value))
            for finding in group:
                lines.extend(_finding_lines(finding, report, look))
            lines.append("")
    lines.extend(_not_checked_lines(report, look))
    lines.append(_summary(report, look))
    lines.extend(_footnotes(report, look))
    return "\n".join(lines) + "\n"


def _finding_lines(finding: Finding, report: Report, look: Look) -> list[str]:
    title = look.paint(f"{finding.code} {finding.rule}", finding.severity.value)
    lines = [f"  {title}  {look.paint(describe(finding.namespace), 'bold')}: {finding.subject}",
             f"    {finding.message}"]
    for evidence in finding.evidence:
        lines.append(look.paint(f"      · {evidence.text}", "dim"))
    repair = finding.repair
    if repair is not None:
        lines.append(f"    repair ({repair.safety.value}): {repair.title}")
        lines.extend(f"      $ {step_command(step, report.namespaces)}" for step in repair.steps)
    return lines


def _not_checked_lines(report: Report, look: Look) -> list[str]:
    gaps = [gap for gap in report.gaps
            if gap.kind != "feature-missing" and not _vanished(report, gap)]
    if not gaps and not report.unknown:
        return []
    lines = [look.paint("NOT CHECKED", "warning")]
    for gap in gaps:
        ref = report.namespaces.get(gap.namespace) if gap.namespace is not None else None
        where = f" in {describe(ref)}" if ref else ""
        lines.append(f"  {gap.collector}{where} ({gap.kind}): {gap.message}")
    for unknown in report.unknown:
        lines.append(f"  rule {unknown.rule} ({unknown.reason}): {unknown.message}")
    lines.extend(f"  {advice}" for advice in capabilities.advice(gap.needs for gap in gaps))
    lines.append("")
    return lines


def _vanished(report: Report, gap) -> bool:
    """A namespace removed while it was being read (a container that stopped), which the
    user did not name: there is nothing left to check, and nothing was missed."""
    return gap.kind == "gone" and gap not in report.unread


def _footnotes(report: Report, look: Look) -> list[str]:
    """What this kernel lacks that a rule would have read here: once each, dimmed, last; and
    how many namespaces went away while they were read."""
    said: dict[str, str] = {}
    for gap in report.gaps:
        if gap.kind == "feature-missing" and gap.collector in report.missed_features:
            said.setdefault(gap.collector, gap.message)
    notes = [look.paint(f"note: {message} ({collector} not read)", "dim")
             for collector, message in said.items()]
    vanished = {gap.namespace for gap in report.gaps if _vanished(report, gap)}
    if vanished:
        notes.append(look.paint(f"note: {_count(len(vanished), 'namespace')} went away while "
                                "being read (removed meanwhile)", "dim"))
    return notes


def _summary(report: Report, look: Look) -> str:
    counts = ", ".join(_count(report.count(s), s.value) if s is not Severity.INFO
                       else f"{report.count(s)} info"
                       for s in (Severity.ERROR, Severity.WARNING, Severity.INFO))
    worst = report.worst()
    counts = look.paint(counts, worst.value if worst else "ok")
    # Unread namespaces first: "0 errors" over what was read is no all-clear for them.
    unread = look.paint(f"{_count(len(report.unread), 'namespace')} not checked (not read, "
                        "see above) — ", "warning") if report.unread else ""
    return (f"{unread}{counts} — {_count(len(report.rules), 'rule')} over "
            f"{_count(len(report.namespaces), 'namespace')}"
            + (f", {len(report.unknown)} unknown" if report.unknown else ""))


    unread = look.paint(f"{_count(len(report.unread), 'namespace')} not checked (not read, "
                        "see above) — ", "warning") if report.unread else ""
def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"
