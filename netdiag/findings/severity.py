"""How serious a finding is: its own small module, so that `check --help` can list the levels
for `--fail-on` without loading the Snapshot model that finding.py needs."""

from __future__ import annotations

from enum import Enum


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return ("info", "warning", "error").index(self.value)
