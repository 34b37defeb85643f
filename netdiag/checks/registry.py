"""The one explicit list of rules. A test fails when a rule module is not in it."""

from __future__ import annotations

RULES: tuple = (
)
