"""No rule may cry wolf on a healthy Docker host, in either firewall layout (fixtures)."""

import pytest

from netdiag.checks import engine
from tests.fixtures.scenarios import docker_host


@pytest.mark.parametrize("layout", ["classic", "modern"])
def test_healthy_docker_host_has_no_warning_or_error(layout):
    report = engine.run(docker_host(layout).build())
    assert not report.unknown, report.unknown
    loud = [(f.rule, f.namespace.display, f.subject, f.message) for f in report.findings
            if f.severity.rank >= 1]
    assert loud == []
