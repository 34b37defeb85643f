"""`check --format json` through msgspec gives json.dumps(indent=2)'s text byte for byte,
whether the report goes the fast way (ASCII only) or back through json (non-ASCII, DEL)."""

import dataclasses
import json

import pytest

from netdiag.checks import engine
from netdiag.checks.output.data import report_data
from netdiag.checks.output.formats import render_json
from tests.fixtures.scenarios import docker_host


def faulty_report() -> engine.Report:
    d = docker_host()
    d.b.sysctl(d.host, "net.ipv4.ip_forward", 0)
    d.b.update_link(d.host, "eth0", mtu=1400)
    return engine.run(d.build())


def with_message(report: engine.Report, message: str) -> engine.Report:
    first = dataclasses.replace(report.findings[0], message=message)
    return dataclasses.replace(report, findings=(first, *report.findings[1:]))


@pytest.mark.parametrize("message", [None, "web → db — café", "a\x7fb", "tab\tquote\"\\\x01",
                                     "emoji 🛰 beyond the BMP"])
def test_the_json_report_is_json_dumps_byte_for_byte(message):
    report = faulty_report()
    assert len(report.findings) >= 2
    if message is not None:
        report = with_message(report, message)
    assert render_json(report) == json.dumps(report_data(report), indent=2) + "\n"


def test_an_empty_report_too():
    report = engine.run(docker_host().build())
    assert render_json(report) == json.dumps(report_data(report), indent=2) + "\n"
