"""The Podman rules on a Podman 5 host (netavark on nftables), on the fixture host of
test_podman_rules.py with the `table inet netavark` a real Podman 5.8 wrote for it
(tests/fixtures/podman5): quiet as it is; a published port's DNAT gone is named by the flow
engine's verdict, the table gone is one finding (tests/integration/test_podman.py does both on
a real Podman 5.8); a Podman 5 whose netavark was told to write iptables is judged by its
iptables chains as Podman 4 is."""

from dataclasses import replace
from pathlib import Path

from netdiag.collect.nftables import parse_ruleset
from tests.fixtures.rules import run_rule
from tests.unit.rules.test_podman_rules import loud, podman_host

RECORDED = Path(__file__).resolve().parents[2] / "fixtures" / "podman5"

PODMAN5 = "5.8.6"
PODMAN_RULES = ("podman-port-unpublished", "podman-network-rules-missing",
                "podman-forward-dropped")


def with_netavark_table(snapshot, host: int, without: str = ""):
    """The snapshot with netavark's recorded table in the host's firewall (less the rules
    whose text holds `without`)."""
    tables, chains, rules, sets = parse_ruleset((RECORDED / "netavark.json").read_text(),
                                                (RECORDED / "netavark.nft").read_text())
    state = snapshot.namespace(host)
    firewall = replace(state.firewall, nft_tables=tables, nft_chains=chains, nft_sets=sets,
                       nft_rules=tuple(r for r in rules if not without or without not in r.text))
    return replace(snapshot, namespaces=tuple(
        replace(s, firewall=firewall) if s.ref.id == host else s for s in snapshot.namespaces))


def nftables_host():
    """The fixture host as Podman 5 leaves it: no netavark chain in iptables."""
    p = podman_host()
    p.nat, p.filter = [], []
    return p


def test_a_podman_5_host_with_its_table_is_quiet():
    p = nftables_host()
    snapshot = with_netavark_table(p.build(version=PODMAN5), p.host)
    assert loud(snapshot) == []


def test_a_published_port_without_its_dnat_rule():
    p = nftables_host()
    snapshot = with_netavark_table(p.build(version=PODMAN5), p.host,
                                   without="dnat ip to 10.89.0.2:80")
    findings = [f for rule in PODMAN_RULES for f in run_rule(rule, snapshot)]
    assert [(f.rule, f.subject) for f in findings] == [("podman-port-unpublished", "tcp/8080")]
    assert "table inet netavark takes no connection to tcp/8080 to 10.89.0.2:80" in \
        findings[0].message
    assert findings[0].related == (p.web,)


def test_the_netavark_table_gone_is_named_once():
    p = nftables_host()
    snapshot = p.build(version=PODMAN5)
    findings = [f for rule in PODMAN_RULES for f in run_rule(rule, snapshot)]
    assert [(f.rule, f.subject) for f in findings] == [
        ("podman-network-rules-missing", "inet netavark")]
    # The network in use that reaches beyond the host; not the internal one.
    assert "n1 (10.89.0.0/24)" in findings[0].message
    assert "inner" not in findings[0].message and "podman (" not in findings[0].message


def test_no_table_is_quiet_while_no_network_needs_one():
    p = nftables_host()
    snapshot = p.build(version=PODMAN5)
    engine = snapshot.docker[0]
    idle = replace(engine, containers=tuple(c for c in engine.containers if c.name != "web"))
    assert run_rule("podman-network-rules-missing", replace(snapshot, docker=(idle,))) == []


def test_a_podman_5_on_iptables_is_judged_by_its_chains():
    p = podman_host()  # netavark's iptables chains, as firewall_driver = "iptables" writes
    assert loud(p.build(version=PODMAN5)) == []
    p = podman_host()
    p.nat = [line for line in p.nat if "DNAT --to-destination" not in line]
    findings = run_rule("podman-port-unpublished", p.build(version=PODMAN5))
    assert [f.subject for f in findings] == ["tcp/8080"]


def test_podman_4_without_chains_is_still_judged_by_iptables():
    p = nftables_host()
    findings = run_rule("podman-network-rules-missing", p.build())
    assert {f.subject for f in findings} == {"nat/POSTROUTING", "filter/FORWARD"}
