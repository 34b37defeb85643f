"""The repair policy (repair/executor.py) from fixture snapshots: no kernel is touched."""

from netdiag.findings.repair import DeleteIptablesRule, ManualStep, Repair, Safety, SetMtu
from netdiag.repair.executor import Policy, refusal
from tests.fixtures.scenarios import docker_host


def _dnat(ns: int, to: str) -> DeleteIptablesRule:
    return DeleteIptablesRule(ns, "nat", "DOCKER", ("!", "-i", "br-web", "-p", "tcp", "-m", "tcp",
                                                    "--dport", "8080", "-j", "DNAT",
                                                    "--to-destination", to))


def test_a_safe_delete_of_a_dnat_rule_whose_target_answers_is_refused():
    d = docker_host()
    snapshot = d.build()
    policy = Policy(frozenset((d.host,)))
    why = refusal(Repair("delete", Safety.SAFE, (_dnat(d.host, "172.18.0.2:80"),)), snapshot,
                  policy)
    assert "172.18.0.2:80 is served by httpd in web" in why
    assert refusal(Repair("delete", Safety.SAFE, (_dnat(d.host, "172.18.0.2:8000"),)),
                   snapshot, policy) == ""


def test_safety_levels_and_namespaces_are_the_policys():
    d = docker_host()
    snapshot = d.build()
    mtu = SetMtu(d.web, "eth0", 1400)
    assert "outside the namespaces" in refusal(Repair("r", Safety.SAFE, (mtu,)), snapshot,
                                               Policy(frozenset((d.host,))))
    assert refusal(Repair("r", Safety.UNSAFE, (mtu,)), snapshot,
                   Policy(frozenset((d.web,)))) == "an unsafe repair: needs --unsafe"
    assert refusal(Repair("r", Safety.UNSAFE, (mtu,)), snapshot,
                   Policy(frozenset((d.web,)), unsafe=True)) == ""
    assert "manual" in refusal(Repair("r", Safety.MANUAL, (ManualStep("by hand"),)), snapshot,
                               Policy(frozenset((d.web,)), unsafe=True))
    # --ns host: the containers on its bridges are on its paths, so both ends may change.
    assert d.web in Policy.for_namespaces(snapshot, {d.host}).may_change
