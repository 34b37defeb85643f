"""FORMATS: each report format by the name `--format`/`--output` accept, as a function
Report → str."""

from __future__ import annotations

import json
from collections.abc import Callable

from netdiag.checks.engine import Report
from netdiag.checks.output import junit, sarif, text
from netdiag.checks.output.data import report_data


def render_json(report: Report) -> str:
    return json.dumps(report_data(report), indent=2) + "\n"


FORMATS: dict[str, Callable[[Report], str]] = {
    "text": text.render,
    "json": render_json,
    "junit": junit.render,
    "sarif": sarif.render,
}
