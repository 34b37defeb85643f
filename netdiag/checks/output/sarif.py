"""The report as SARIF 2.1.0, the static-analysis format code hosts and security tools read.

Findings have no source file, so each result is located logically: the namespace and the
object (interface, route, port) it is about. Rule metadata comes from the registry. Evidence
of kind "control" (a benchmark control, key "BENCHMARK#ID": netdiag/checks/exposure_model.py)
becomes the result's taxa, in one taxonomy per benchmark, so a security team files the finding
where it files that benchmark's results.
"""

from __future__ import annotations

import json

from netdiag import __version__
from netdiag.checks.engine import Report
from netdiag.checks.output.data import evidence_data, namespace_data
from netdiag.findings.finding import Severity

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render(report: Report) -> str:
    rules = [module.RULE for module in report.rules]
    index = {rule.name: i for i, rule in enumerate(rules)}
    run = {
        "tool": {"driver": {
            "name": "netdiag", "version": __version__,
            "rules": [{"id": r.code, "name": r.name, "shortDescription": {"text": r.summary},
                       "defaultConfiguration": {"level": _LEVEL[r.severity]}} for r in rules],
        }},
        "results": [{
            "ruleId": f.code, "ruleIndex": index.get(f.rule, -1), "level": _LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [{"logicalLocations": [{
                "name": f.subject, "kind": "object",
                "fullyQualifiedName": f"{f.namespace.display}/{f.subject}"}]}],
            "properties": {"rule": f.rule, "namespace": namespace_data(f.namespace),
                           "evidence": [evidence_data(e) for e in f.evidence]},
            **({"taxa": taxa} if (taxa := _taxa(f.evidence)) else {}),
        } for f in report.findings],
        **({"taxonomies": taxonomies} if (taxonomies := _taxonomies(report)) else {}),
        "invocations": [{"executionSuccessful": not report.unknown,
                         "toolExecutionNotifications": [
                             {"level": "error", "message": {"text": f"rule {u.rule}: {u.message}"}}
                             for u in report.unknown]}],
    }
    return json.dumps({"version": "2.1.0", "$schema": SCHEMA, "runs": [run]}, indent=2) + "\n"


def _controls(evidence) -> list[tuple[str, str, str]]:
    """(benchmark, control id, its text) of the evidence that names a benchmark control."""
    return [(*e.key.split("#", 1), e.text) for e in evidence if e.kind == "control"
            and "#" in e.key]


def _taxa(evidence) -> list[dict]:
    return [{"id": number, "toolComponent": {"name": benchmark}}
            for benchmark, number, _ in _controls(evidence)]


def _taxonomies(report: Report) -> list[dict]:
    found: dict[str, dict[str, str]] = {}
    for finding in report.findings:
        for benchmark, number, text in _controls(finding.evidence):
            found.setdefault(benchmark, {})[number] = text
    return [{"name": benchmark, "taxa": [{"id": number, "shortDescription": {"text": text}}
                                         for number, text in sorted(taxa.items())]}
            for benchmark, taxa in sorted(found.items())]
