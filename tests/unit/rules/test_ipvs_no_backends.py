from netdiag.checks.lb import ipvs_no_backends as rule
from netdiag.findings.repair import Safety
from netdiag.model import IpvsDestination, IpvsService, NsKind
from tests.fixtures.builder import SnapshotBuilder
from tests.unit.rules.part2_fixtures import amend, run


def snapshot_with(*services):
    b = SnapshotBuilder()
    lb = b.namespace("lb_abc", kind=NsKind.DOCKER)
    return amend(b.build(), lb, ipvs=services), lb


def test_service_without_real_servers_fires():
    snapshot, lb = snapshot_with(IpvsService(protocol="", fwmark=257))
    (finding,) = run(rule, snapshot)
    assert finding.namespace.id == lb
    assert finding.subject == "FWM 257"
    assert "no real servers" in finding.message
    assert finding.evidence[0].kind == "ipvs" and finding.evidence[0].key == "FWM 257"
    assert finding.repair.safety is Safety.MANUAL


def test_all_weights_zero_fires():
    snapshot, _ = snapshot_with(IpvsService(
        protocol="tcp", address="10.0.0.5", port=80,
        destinations=(IpvsDestination("10.0.1.2", 80, 0), IpvsDestination("10.0.1.3", 80, 0))))
    (finding,) = run(rule, snapshot)
    assert finding.subject == "TCP 10.0.0.5:80"
    assert "all 2 real servers have weight 0" in finding.message
    assert [e.key for e in finding.evidence[1:]] == ["TCP 10.0.0.5:80 -> 10.0.1.2:80",
                                                     "TCP 10.0.0.5:80 -> 10.0.1.3:80"]


def test_one_live_backend_passes():
    snapshot, _ = snapshot_with(IpvsService(
        protocol="", fwmark=256,
        destinations=(IpvsDestination("10.0.1.2", 0, 0), IpvsDestination("10.0.1.3", 0, 1))))
    assert run(rule, snapshot) == []
