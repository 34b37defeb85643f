"""The rule registry: every rule module is registered once, with unique codes and names and
complete documentation (fixtures, no root)."""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import netdiag.checks
from netdiag.checks import registry
from netdiag.errors import UsageError
from netdiag.findings.finding import Severity
from netdiag.findings.rule import Rule

SECTIONS = ("What it finds", "Why it matters", "Example", "Repair")
CHECKS_DIR = Path(netdiag.checks.__file__).parent


def rule_modules():
    """Every module in a domain folder netdiag/checks/<domain>/ (rules live only there)."""
    found = []
    for domain in sorted(p for p in CHECKS_DIR.iterdir() if (p / "__init__.py").exists()):
        if domain.name == "output":
            continue
        for info in pkgutil.iter_modules([str(domain)]):
            found.append(importlib.import_module(f"netdiag.checks.{domain.name}.{info.name}"))
    return found


def test_every_rule_module_is_registered():
    missing = [m.__name__ for m in rule_modules() if m not in registry.RULES]
    assert not missing, f"not in registry.RULES: {missing}"


def test_registered_modules_are_rules():
    for module in registry.RULES:
        assert isinstance(module.RULE, Rule), module.__name__
        assert callable(module.check), module.__name__
        assert isinstance(module.RULE.severity, Severity)


def test_codes_and_names_are_unique_and_well_formed():
    codes = [m.RULE.code for m in registry.RULES]
    names = [m.RULE.name for m in registry.RULES]
    assert len(codes) == len(set(codes)), codes
    assert len(names) == len(set(names)), names
    for module in registry.RULES:
        assert re.fullmatch(r"ND\d{3}", module.RULE.code), module.RULE.code
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", module.RULE.name), module.RULE.name


def test_every_code_and_name_has_one_owner_in_the_catalogue():
    """The rule engine's rules and the drivers' checks share one catalogue: `explain CODE`
    documents the rule that reported a finding, whichever reported it."""
    entries = registry.catalogue()
    codes = [rule.code for rule, _ in entries]
    names = [rule.name for rule, _ in entries]
    assert sorted(c for c in codes if codes.count(c) > 1) == []
    assert sorted(n for n in names if names.count(n) > 1) == []
    for rule, doc in entries:
        assert re.fullmatch(r"ND\d{3}", rule.code), rule.code
        lines = [line.strip() for line in doc.splitlines()]
        for section in SECTIONS:
            assert section in lines, f"{rule.name}: its documentation lacks {section!r}"
        assert registry.describe(rule.code) == (rule, doc)
        assert registry.describe(rule.name.upper()) == (rule, doc)


def test_the_drivers_checks_report_only_catalogued_codes():
    """Every Rule record in the code base is a catalogue entry (none kept on the side)."""
    import ast
    from pathlib import Path

    import netdiag

    known = {rule.code for rule, _ in registry.catalogue()}
    root = Path(netdiag.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Rule":
                code = node.args[0] if node.args else next(
                    (k.value for k in node.keywords if k.arg == "code"), None)
                if isinstance(code, ast.Constant):
                    assert code.value in known, f"{path}: {code.value} is not in the catalogue"


def test_rule_file_is_named_after_the_rule():
    for module in registry.RULES:
        assert module.__name__.rsplit(".", 1)[1] == module.RULE.name.replace("-", "_")


@pytest.mark.parametrize("module", registry.RULES, ids=lambda m: m.RULE.name)
def test_docstring_has_every_section(module):
    doc = module.__doc__ or ""
    lines = [line.strip() for line in doc.splitlines()]
    for section in SECTIONS:
        assert section in lines, f"{module.__name__}: docstring lacks the section {section!r}"


def test_find_accepts_name_or_code_and_lists_known_rules_otherwise():
    first = registry.RULES[0]
    assert registry.find(first.RULE.name) is first
    assert registry.find(first.RULE.code) is first
    with pytest.raises(UsageError) as info:
        registry.find("no-such-rule")
    assert first.RULE.name in str(info.value)
    assert "\n" not in str(info.value)
