"""The report as plain data: the JSON shape that `check --format json` promises.

{"schema_version", "generated_at", "summary": {"error", "warning", "info"}, "findings": [...],
"gaps": [...]}. A gap's "needs" names the capability netdiag ran without ("NET_ADMIN"), or is
null. Rules whose outcome is unknown (they failed or timed out) are listed among the
gaps, with source "rule <name>", because their absence of findings proves nothing either.
Every repair step carries its "action", its fields and the equivalent shell "command".
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from netdiag.checks.engine import Report
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import Repair, RepairStep
from netdiag.model import NamespaceRef, NsKind

REPORT_SCHEMA_VERSION = 1


def report_data(report: Report) -> dict:
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated_at": report.generated_at,
        "summary": {s.value: report.count(s) for s in (Severity.ERROR, Severity.WARNING,
                                                        Severity.INFO)},
        "findings": [finding_data(f, report.namespaces) for f in report.findings],
        "gaps": gaps_data(report),
    }


def namespace_data(ref: NamespaceRef | None, ns_id: int | None = None) -> dict | None:
    if ref is None:
        return None if ns_id is None else {"id": ns_id, "kind": "", "label": f"inode:{ns_id}"}
    return {"id": ref.id, "kind": ref.kind.value, "label": ref.display}


def finding_data(finding: Finding, namespaces: dict[int, NamespaceRef]) -> dict:
    return {
        "code": finding.code,
        "rule": finding.rule,
        "severity": finding.severity.value,
        "namespace": namespace_data(finding.namespace),
        "subject": finding.subject,
        "message": finding.message,
        "evidence": [evidence_data(e) for e in finding.evidence],
        "repair": repair_data(finding.repair, namespaces),
        "related": [namespace_data(namespaces.get(ns_id), ns_id) for ns_id in finding.related],
    }


def evidence_data(evidence: Evidence) -> dict:
    return {"text": evidence.text, "namespace": evidence.namespace, "kind": evidence.kind,
            "key": evidence.key}


def repair_data(repair: Repair | None, namespaces: dict[int, NamespaceRef]) -> dict | None:
    if repair is None:
        return None
    return {"safety": repair.safety.value, "title": repair.title,
            "steps": [step_data(s, namespaces) for s in repair.steps]}


def step_data(step: RepairStep, namespaces: dict[int, NamespaceRef]) -> dict:
    fields = {f.name: _plain(getattr(step, f.name)) for f in dataclasses.fields(step)}
    return {"action": action_name(step), **fields, "command": step_command(step, namespaces)}


def action_name(step: RepairStep) -> str:
    """SetMtu → "set-mtu"."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(step).__name__).lower()


def step_command(step: RepairStep, namespaces: dict[int, NamespaceRef]) -> str:
    """The shell command equivalent to `step`, entering its namespace the way that works there."""
    ref = namespaces.get(step.namespace) if step.namespace is not None else None
    if ref is None or ref.kind is NsKind.HOST:
        return step.command()
    if ref.kind in (NsKind.NAMED, NsKind.LAB) and ref.name:
        return step.command(ref.name)
    return f"nsenter --net={shlex.quote(ref.path)} {step.command()}"


def gaps_data(report: Report) -> list[dict]:
    gaps = [{"source": gap.collector, "kind": gap.kind, "message": gap.message,
             "namespace": namespace_data(report.namespaces.get(gap.namespace), gap.namespace)
             if gap.namespace is not None else None, "needs": gap.needs or None}
            for gap in report.gaps]
    gaps += [{"source": f"rule {u.rule}", "kind": u.reason, "message": u.message,
              "namespace": None, "needs": None} for u in report.unknown]
    return gaps


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
