"""The report as JUnit XML: one test case per rule and namespace it found something in.

CI dashboards show a rule that found nothing as a passing case, each finding as a failure
(with its evidence as the failure text), and a rule that failed or timed out as an error.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from netdiag.checks.engine import Report


def render(report: Report) -> str:
    suite = ET.Element("testsuite", name="netdiag check", timestamp=report.generated_at)
    failures = errors = 0
    for module in report.rules:
        rule = module.RULE
        found = [f for f in report.findings if f.rule == rule.name]
        unknown = [u for u in report.unknown if u.rule == rule.name]
        if unknown:
            case = ET.SubElement(suite, "testcase", classname=rule.code, name=rule.name)
            ET.SubElement(case, "error", message=unknown[0].message, type=unknown[0].reason)
            errors += 1
        elif not found:
            ET.SubElement(suite, "testcase", classname=rule.code, name=rule.name)
        for finding in found:
            case = ET.SubElement(suite, "testcase", classname=rule.code,
                                 name=f"{rule.name} {finding.namespace.display}: {finding.subject}")
            failure = ET.SubElement(case, "failure", message=finding.message,
                                    type=finding.severity.value)
            failure.text = "\n".join(e.text for e in finding.evidence)
            failures += 1
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
