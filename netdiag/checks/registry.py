"""The one explicit list of rules. A test fails when a rule module is not in it.

Add a rule by importing its module and putting it in RULES (one line each, grouped by domain);
`netdiag explain`, `check --rule/--skip` and the config file all find rules here by name.
"""

from __future__ import annotations

from netdiag.checks.addressing import overlapping_subnets
from netdiag.checks.api import RuleModule
from netdiag.checks.forwarding import ip_forward_disabled, missing_default_route
from netdiag.checks.links import link_down
from netdiag.errors import UsageError

RULES: tuple[RuleModule, ...] = (
    overlapping_subnets,
    ip_forward_disabled,
    missing_default_route,
    link_down,
)


def names() -> tuple[str, ...]:
    return tuple(module.RULE.name for module in RULES)


def find(name: str) -> RuleModule:
    """The rule called `name` (or with that code); one clear line listing the known ones if none."""
    for module in RULES:
        if name in (module.RULE.name, module.RULE.code):
            return module
    raise UsageError(f"unknown rule {name!r}; known rules: {', '.join(names())}")
