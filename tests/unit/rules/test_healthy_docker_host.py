"""No rule may cry wolf on a healthy Docker host, in either firewall layout (fixtures)."""

from pathlib import Path

import pytest

from netdiag.checks import engine
from netdiag.model.serialize import load
from tests.fixtures.scenarios import docker_host

DOCKER28 = Path(__file__).parents[2] / "fixtures" / "docker28" / "healthy.json"


@pytest.mark.parametrize("layout", ["classic", "modern"])
def test_healthy_docker_host_has_no_warning_or_error(layout):
    report = engine.run(docker_host(layout).build())
    assert not report.unknown, report.unknown
    loud = [(f.rule, f.namespace.display, f.subject, f.message) for f in report.findings
            if f.severity.rank >= 1]
    assert loud == []


def test_a_real_docker_28_hosts_snapshot_is_quiet():
    """The snapshot of a real, healthy Docker 28.5.2 host (tests/fixtures/docker28/README.md):
    its raw-table drops, DOCKER-FORWARD chains, ipsets and a routed network, as the engine
    wrote them."""
    snapshot = load(DOCKER28)
    assert [e.version.split("+")[0] for e in snapshot.docker] == ["28.5.2"]
    report = engine.run(snapshot)
    assert not report.unknown, report.unknown
    loud = [(f.rule, f.namespace.display, f.subject, f.message) for f in report.findings
            if f.severity.rank >= 1]
    assert loud == []
