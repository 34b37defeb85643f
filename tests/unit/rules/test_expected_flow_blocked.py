"""expected-flow-blocked (ND921) on fixture snapshots: the flows Docker's intent promises,
simulated; a stop by a firewall rule or a policy route is named, faults of other rules are
left to them."""

from netdiag.findings.finding import Severity
from netdiag.flows import expected
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import docker_host


def test_the_healthy_docker_host_keeps_every_promise():
    d = docker_host()
    promised = [e.what for e in expected.expectations(d.build())]
    assert "web reaches its gateway 172.18.0.1 on network web" in promised
    assert "a client beyond the host reaches web's published port 192.168.1.10:8080" in promised
    assert "web reaches Docker's DNS at 127.0.0.11:53" in promised
    assert run_rule("expected-flow-blocked", d.build()) == []


def test_a_drop_in_docker_user_names_the_flow_the_hop_and_the_rule():
    d = docker_host()
    rules = d.b._fields[d.host]["iptables_rules"]
    d.b._fields[d.host]["iptables_rules"] = [r for r in rules if r.chain != "DOCKER-USER"]
    d.b.iptables(d.host, "filter", "-A DOCKER-USER -i eth0 -j DROP")  # inserted first (-I)
    d.b.iptables(d.host, "filter", "-A DOCKER-USER -j RETURN")
    found = {f.subject: f for f in run_rule("expected-flow-blocked", d.build())}
    # Inbound to the published port, and the replies to web's own outbound connections.
    assert set(found) == {"tcp 198.51.100.7:43210 → 192.168.1.10:8080",
                          "tcp 172.18.0.2:43210 → 198.51.100.7:443"}
    outbound = found["tcp 172.18.0.2:43210 → 198.51.100.7:443"]
    assert "web reaches beyond the host (by eth0)" in outbound.message
    assert "its reply is denied in host at filter/DOCKER-USER/1" in outbound.message
    finding = found["tcp 198.51.100.7:43210 → 192.168.1.10:8080"]
    assert finding.severity is Severity.ERROR
    assert "web's published port" in finding.message and "denied in host at " \
        "filter/DOCKER-USER/1" in finding.message
    rule = next(e for e in finding.evidence if e.kind == "firewall")
    assert rule.text == "rule: -A DOCKER-USER -i eth0 -j DROP" and rule.key == \
        "filter/DOCKER-USER/1"


def test_a_policy_route_into_a_blackhole_table():
    from netdiag.model import PolicyRule, Route

    d = docker_host()
    snapshot = d.build()
    # db's replies to the outside are policy-routed into a table with only a blackhole.
    from dataclasses import replace

    host = snapshot.namespace(d.host)
    host = replace(host, rules=(PolicyRule(4, 0, table=255), PolicyRule(4, 100, table=100,
                                                            src="172.18.0.0/16"),
                                PolicyRule(4, 32766, table=254), PolicyRule(4, 32767, table=253)),
                   routes=host.routes + (Route(4, "default", table=100, type="blackhole"),))
    snapshot = replace(snapshot, namespaces=tuple(host if s.ref.id == d.host else s
                                                  for s in snapshot.namespaces))
    found = sorted(f.message for f in run_rule("expected-flow-blocked", snapshot))
    # The host's own replies from 172.18.0.1 match the rule as well, as in the kernel.
    assert len(found) == 3, found
    assert found[0].startswith("a client beyond the host reaches web's published port")
    assert found[1].startswith("web reaches beyond the host (by eth0) from network web: it "
                               "is null-routed in host")
    assert found[2].startswith("web reaches its gateway 172.18.0.1")
    assert all("null-routed in host at route: blackhole" in m for m in found)


def test_faults_of_specialised_rules_are_left_to_them():
    d = docker_host()
    d.b.sysctl(d.host, "net.ipv4.ip_forward", 0)
    assert run_rule("expected-flow-blocked", d.build()) == []  # ip-forward-disabled's
    d = docker_host()
    d.b.update_link(d.host, "veth1a2b3c4", master="")
    assert run_rule("expected-flow-blocked", d.build()) == []  # docker-endpoint-broken's


def test_the_users_expectations_from_the_config_file(tmp_path):
    from netdiag.checks import config

    path = tmp_path / "netdiag.yaml"
    path.write_text("expect:\n"
                    "  - {from: web, to: db, port: 5432}\n"
                    "  - {from: host, to: web, port: 80, reach: false}\n"
                    "  - {from: nowhere, to: web}\n")
    wanted = config.load(path)
    assert [e.text for e in wanted.expect] == [
        "web → db:5432 (tcp) reaches", "host → web:80 (tcp) is blocked",
        "nowhere → web (icmp) reaches"]
    d = docker_host()
    found = {f.subject: f for f in run_rule("expected-flow-blocked", d.build(), wanted)}
    web_db = found["tcp 172.18.0.2:43210 → 172.19.0.2:5432"]
    assert "denied in host at filter/DOCKER-ISOLATION-STAGE-1/1" in web_db.message
    host_web = found["tcp 172.18.0.1:43210 → 172.18.0.2:80"]
    assert "is blocked: but it is delivered" in host_web.message
    unplaced = found["nowhere → web (icmp) reaches"]
    assert unplaced.severity is Severity.WARNING and "cannot be checked" in unplaced.message


def test_a_bad_expect_entry_is_one_clear_error(tmp_path):
    import pytest

    from netdiag.checks import config
    from netdiag.errors import UsageError

    for text, says in (("expect: {from: a}", "expected a list"),
                       ("expect:\n  - {from: a, to: b, port: 99999}", "expect[1].port"),
                       ("expect:\n  - {from: a, to: b, proto: tcp}", "need a port"),
                       ("expect:\n  - {from: a, to: b, reach: maybe}", "expect[1].reach"),
                       ("expect:\n  - {from: a, to: b, via: c}", "unknown key expect[1].via")):
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(UsageError, match=says.replace("[", r"\[").replace("]", r"\]")):
            config.load(path)
