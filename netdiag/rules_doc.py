"""The rules reference, docs/rules.md, generated from the rules themselves:

    python -m netdiag.rules_doc > docs/rules.md

A rule's module docstring is its user documentation (`netdiag explain RULE` prints it); this
renders every registered rule's, sorted by code, and then the documentation of the codes the
drivers' own checks report (the rest of registry.catalogue()), as one Markdown page, so the
published reference cannot drift from the code: tests/unit/test_docs.py fails when
docs/rules.md is not what `render()` returns.
"""

from __future__ import annotations

import inspect
import sys
import textwrap

from netdiag.checks.registry import RULES, catalogue

SECTIONS = ("What it finds", "Why it matters", "Example", "Repair")
HEADER = """\
# Rules

Generated from each rule's docstring by `python -m netdiag.rules_doc > docs/rules.md`; do not
edit by hand (a test fails when this file is stale). `netdiag explain` lists the rules and
`netdiag explain RULE` prints one of these at a terminal. A rule can be disabled, and its
severity overridden, in the config file (see [check.md](check.md#the-config-file)).
"""
DRIVER_HEADER = """\
# The drivers' checks

netdiag's own network drivers compare the kernel with what they configured (`check()`) and
report these codes as ordinary findings, from the same catalogue as the rules above.
"""


def render() -> str:
    """The whole page: the rules (an index table, then one section each, by code), then the
    codes the drivers' own checks report, if the catalogue has any."""
    rules = sorted(((m.RULE, m.__doc__ or "") for m in RULES), key=lambda entry: entry[0].code)
    codes = {rule.code for rule, _ in rules}
    drivers = sorted((entry for entry in catalogue() if entry[0].code not in codes),
                     key=lambda entry: entry[0].code)
    parts = [HEADER, _index(rules), *(_rule(rule, doc) for rule, doc in rules)]
    if drivers:
        parts += [DRIVER_HEADER, _index(drivers), *(_rule(rule, doc) for rule, doc in drivers)]
    return "\n".join(parts)


def _index(entries) -> str:
    rows = [f"| [{rule.code}](#{_anchor(rule)}) | `{rule.name}` | {rule.severity.value} "
            f"| {_cell(rule.summary)} |" for rule, _ in entries]
    return "\n".join(["| Code | Rule | Default severity | Summary |", "|---|---|---|---|",
                      *rows]) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _anchor(rule) -> str:
    return f"{rule.code}-{rule.name}".lower()


def _rule(rule, doc: str) -> str:
    lead, sections = _split(inspect.cleandoc(doc))
    out = [f"## {rule.code} {rule.name}", "",
           f"* Default severity: **{rule.severity.value}**", f"* Summary: {rule.summary}", ""]
    if lead:
        out += [lead, ""]
    for name, body in sections:
        out += [f"### {name}", ""]
        out += ["```text", body, "```"] if name == "Example" else [body]
        out.append("")
    return "\n".join(out)


def _split(doc: str) -> tuple[str, list[tuple[str, str]]]:
    """What the docstring says before its first section (its first line without the leading
    `rule-name: `, each paragraph on one line), and its sections with their bodies dedented."""
    lines = doc.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() in SECTIONS]
    lead = "\n".join(lines[:starts[0]] if starts else lines).strip()
    paragraphs = [" ".join(p.split()) for p in lead.split("\n\n") if p.strip()]
    if paragraphs:
        name, sep, rest = paragraphs[0].partition(": ")
        if sep and " " not in name:
            paragraphs[0] = rest[:1].upper() + rest[1:]
    sections = []
    for at, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        body = textwrap.dedent("\n".join(lines[at + 1:end])).strip("\n")
        sections.append((lines[at].strip(), body))
    return "\n\n".join(paragraphs), sections


if __name__ == "__main__":
    sys.stdout.write(render())
