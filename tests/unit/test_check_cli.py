"""`netdiag check` / `netdiag explain` on saved snapshots: formats, exit codes, config, and the
engine's handling of failing and slow rules (fixtures, no root)."""

import json
import os
import threading
import time
import types
import xml.etree.ElementTree as ET

import pytest

from netdiag.checks import engine
from netdiag.cli import main
from netdiag.findings.finding import Severity
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model.serialize import save
from tests.fixtures.scenarios import docker_host


@pytest.fixture
def faulty(tmp_path):
    """A Docker host with one error (ip_forward off) and one warning (web above its path)."""
    d = docker_host()
    d.b.sysctl(d.host, "net.ipv4.ip_forward", 0)
    d.b.update_link(d.host, "eth0", mtu=1400)
    path = tmp_path / "snap.json"
    save(d.build(), path)
    return str(path)


@pytest.fixture
def healthy(tmp_path):
    path = tmp_path / "healthy.json"
    save(docker_host().build(), path)
    return str(path)


def check(capsys, *args):
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_exactly_the_promised_shape(capsys, faulty):
    code, out, _ = check(capsys, "--from", faulty, "--format", "json")
    data = json.loads(out)
    assert code == 1
    assert set(data) == {"schema_version", "generated_at", "summary", "findings", "gaps"}
    assert data["summary"] == {"error": 1, "warning": 1, "info": 0}
    for finding in data["findings"]:
        assert set(finding) == {"code", "rule", "severity", "namespace", "subject", "message",
                                "evidence", "repair", "related"}
        assert all(set(ref) == {"id", "kind", "label"} for ref in finding["related"])
        assert set(finding["namespace"]) == {"id", "kind", "label"}
        assert set(finding["repair"]) == {"safety", "title", "steps"}
        for step in finding["repair"]["steps"]:
            assert step["action"] and step["command"]
    by_rule = {f["rule"]: f for f in data["findings"]}
    assert by_rule["ip-forward-disabled"]["repair"]["steps"][0] == {
        "action": "set-sysctl", "namespace": by_rule["ip-forward-disabled"]["namespace"]["id"],
        "name": "net.ipv4.ip_forward", "value": "1",
        "command": "sysctl -w net.ipv4.ip_forward=1"}
    mtu = by_rule["mtu-mismatch"]
    assert mtu["namespace"]["label"] == "web" and mtu["namespace"]["kind"] == "docker"
    # A container is entered by its path: `ip netns exec` only knows named namespaces.
    assert mtu["repair"]["steps"][0]["command"].startswith("nsenter --net=/run/netns/web ip link")


def test_text_groups_by_severity_and_names_containers(capsys, faulty):
    code, out, _ = check(capsys, "--from", faulty)
    assert code == 1
    assert out.index("ERROR (1)") < out.index("WARNING (1)")
    assert "ND201 mtu-mismatch  container web: eth0" in out
    assert "1 error, 1 warning, 0 info" in out


def test_exit_codes_follow_fail_on_and_exit_zero(capsys, faulty, healthy):
    assert check(capsys, "--from", healthy)[0] == 0
    assert check(capsys, "--from", faulty, "--exit-zero")[0] == 0
    assert check(capsys, "--from", faulty, "--skip", "ip-forward-disabled",
                 "--fail-on", "error")[0] == 0
    assert check(capsys, "--from", faulty, "--rule", "mtu-mismatch", "--fail-on", "info")[0] == 1


def test_unknown_rule_is_one_line_listing_the_known_ones(capsys, faulty):
    code, out, err = check(capsys, "--from", faulty, "--rule", "mtu-mismach")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "mtu-mismatch" in err and "link-down" in err


def test_corrupt_snapshot_is_bad_input(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code, _, err = check(capsys, "--from", str(bad))
    assert code == 2 and "not JSON" in err


def test_several_outputs_in_one_run(capsys, faulty, tmp_path):
    junit, sarif = tmp_path / "r.xml", tmp_path / "r.sarif"
    code, out, _ = check(capsys, "--from", faulty, "--format", "json",
                         "--output", f"junit={junit}", "--output", f"sarif={sarif}")
    assert code == 1 and json.loads(out)["summary"]["error"] == 1
    suite = ET.fromstring(junit.read_text())
    assert suite.get("failures") == "2"
    failed = {case.get("classname") for case in suite if case.find("failure") is not None}
    assert failed == {"ND501", "ND201"}
    log = json.loads(sarif.read_text())
    assert log["version"] == "2.1.0"
    results = log["runs"][0]["results"]
    assert {(r["ruleId"], r["level"]) for r in results} == {("ND501", "error"),
                                                           ("ND201", "warning")}
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)


def test_bad_output_argument(capsys, faulty):
    code, _, err = check(capsys, "--from", faulty, "--output", "yaml=x")
    assert code == 2 and "FORMAT=FILE" in err


def test_an_output_file_that_cannot_be_written_is_said_before_anything(capsys, faulty,
                                                                         tmp_path):
    """Issue 31: `--output sarif=/nonexistent/x` printed the whole report, then failed."""
    for value, words in ((f"sarif={tmp_path}/nonexistent/x", "no folder"),
                         (f"junit={tmp_path}", "is a folder")):
        code, out, err = check(capsys, "--from", faulty, "--output", value)
        assert code == 2 and out == "" and err.count("\n") == 1, (out, err)
        assert f"--output {value}: {words}" in err, err


def test_ns_focus_on_a_saved_snapshot(capsys, faulty):
    code, out, _ = check(capsys, "--from", faulty, "--ns", "web", "--format", "json")
    # The MTU finding is about web; ip_forward is about the host but names web as related.
    assert {f["rule"] for f in json.loads(out)["findings"]} == {"mtu-mismatch",
                                                                "ip-forward-disabled"}
    # db's bridge lives in the host, so the host's findings are on db's path too; whatever
    # --ns reports, --all reports as well (a focus filters, it never answers differently).
    code, out, _ = check(capsys, "--from", faulty, "--ns", "db", "--format", "json")
    focused = json.loads(out)["findings"]
    assert "ip-forward-disabled" in {f["rule"] for f in focused} and code == 1
    _, out, _ = check(capsys, "--from", faulty, "--all", "--format", "json")
    assert all(f in json.loads(out)["findings"] for f in focused)


def test_config_file_disables_overrides_and_excludes(capsys, faulty, tmp_path):
    config = tmp_path / "netdiag.yaml"
    config.write_text("severity: {ip-forward-disabled: info}\n"
                      "exclude: {namespaces: ['w.b']}\n")
    code, out, _ = check(capsys, "--from", faulty, "--config", str(config), "--format", "json")
    data = json.loads(out)
    assert data["summary"] == {"error": 0, "warning": 0, "info": 1} and code == 0
    config.write_text("disable: [ip-forward-disabled]\nexclude: {interfaces: ['eth.*']}\n")
    code, out, _ = check(capsys, "--from", faulty, "--config", str(config), "--format", "json")
    assert json.loads(out)["findings"] == []


@pytest.mark.parametrize("text, words", [
    ("disable: [no-such-rule]\n", "disable: unknown rule 'no-such-rule'"),
    ("severity: {link-down: loud}\n", "'loud' is not info, warning or error"),
    ("exclude: {namespaces: ['(']}\n", "bad regular expression"),
    ("excludes: {}\n", "unknown key excludes"),
    ("a: [\n", "not valid YAML"),
])
def test_bad_config_is_one_clear_line(capsys, faulty, tmp_path, text, words):
    config = tmp_path / "netdiag.yaml"
    config.write_text(text)
    code, _, err = check(capsys, "--from", faulty, "--config", str(config))
    assert code == 2 and words in err and err.count("\n") == 1


def test_explain_prints_the_rule_documentation(capsys):
    assert main(["explain", "mtu-mismatch"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ND201 mtu-mismatch (error)")
    for section in ("What it finds", "Why it matters", "Example", "Repair"):
        assert section in out
    assert main(["explain", "nope"]) == 2


def fake_rule(name, check):
    return types.SimpleNamespace(RULE=Rule(code="ND999", name=name, severity=Severity.ERROR,
                                           summary="test"), check=check, __doc__="")


def test_a_rule_that_raises_becomes_unknown_and_the_others_still_run():
    def broken(snapshot, config):
        raise KeyError("boom")
        yield

    from netdiag.checks import registry
    rules = (fake_rule("broken", broken), registry.find("ip-forward-disabled"))
    d = docker_host()
    d.b.sysctl(d.host, "net.ipv4.ip_forward", 0)
    report = engine.run(d.build(), rules=rules)
    assert [u.rule for u in report.unknown] == ["broken"]
    assert "KeyError" in report.unknown[0].message and report.unknown[0].reason == "error"
    assert [f.rule for f in report.findings] == ["ip-forward-disabled"]


def test_rules_past_the_deadline_are_unknown_not_waited_for():
    release = threading.Event()

    def stuck(snapshot, config):
        release.wait()  # until the test ends: it must be abandoned, not joined
        yield from ()

    report = engine.run(docker_host().build(), rules=(fake_rule("stuck", stuck),),
                        deadline=time.monotonic() + 0.1)
    release.set()
    assert [(u.rule, u.reason) for u in report.unknown] == [("stuck", "timeout")]


def test_disabled_and_enabled_rules_are_selected_in_registry_order():
    from netdiag.checks import registry
    config = CheckConfig(enabled=frozenset({"link-down", "mtu-mismatch"}),
                         disabled=frozenset({"link-down"}))
    assert [m.RULE.name for m in engine.select_rules(config)] == ["mtu-mismatch"]
    assert len(engine.select_rules(CheckConfig())) == len(registry.RULES)


def test_rules_of_unknown_outcome_are_reported_among_the_gaps(capsys):
    from netdiag.checks.output.data import report_data
    from netdiag.checks.output.formats import FORMATS

    def broken(snapshot, config):
        raise RuntimeError("boom")
        yield

    report = engine.run(docker_host().build(), rules=(fake_rule("broken", broken),))
    (gap,) = report_data(report)["gaps"]
    assert gap == {"source": "rule broken", "kind": "error", "namespace": None,
                   "message": "the rule failed: RuntimeError: boom", "needs": None}
    assert "rule broken (error): the rule failed" in FORMATS["text"](report)
    suite = ET.fromstring(FORMATS["junit"](report))
    assert suite.get("errors") == "1"
    assert json.loads(FORMATS["sarif"](report))["runs"][0]["invocations"][0][
        "executionSuccessful"] is False


def _with_gaps(tmp_path, *gaps):
    from dataclasses import replace

    path = tmp_path / "gaps.json"
    save(replace(docker_host().build(), gaps=gaps), path)
    return str(path)


def test_a_namespace_not_read_at_all_is_no_all_clear(capsys, tmp_path):
    """Issue 31: root without CAP_SYS_ADMIN read one namespace of many, and `check` said "0
    errors" and exited 0. A namespace not read at all makes the exit code 3, also with --ns
    and --quiet, and the summary says so first; a collector's gap (no IPVS in this kernel,
    no CAP_NET_ADMIN for the firewall) does not: the namespace itself was read."""
    from netdiag.model import Gap

    entered = Gap("namespace", "permission", "cannot enter /proc/1/ns/net: permission denied: "
                  "netdiag runs as root without CAP_SYS_ADMIN", namespace=99, needs="SYS_ADMIN")
    partial = (Gap("ipvs", "feature-missing", "kernel has no IPVS"),
               Gap("firewall", "permission", "cannot read iptables: permission denied",
                   namespace=4026531840, needs="NET_ADMIN"))
    read = _with_gaps(tmp_path, *partial)
    assert check(capsys, "--from", read)[0] == 0
    unread = _with_gaps(tmp_path, *partial, entered)
    for extra in ((), ("--ns", "web"), ("--quiet",), ("--format", "json")):
        code, out, _ = check(capsys, "--from", unread, *extra)
        assert code == 3, (extra, out)
    code, out, _ = check(capsys, "--from", unread)
    summary = out.rstrip("\n").splitlines()[-1]
    assert summary.startswith("1 namespace not checked"), summary
    assert "0 errors" in summary
    assert check(capsys, "--from", unread, "--exit-zero")[0] == 0


def test_only_namespaces_not_read_at_all_count_as_unread():
    from netdiag.model import Gap

    timeout = Gap("namespace", "timeout", "web: not read in time", namespace=1)
    refused = Gap("namespace", "permission", "cannot enter", namespace=2)
    gone = Gap("namespace", "gone", "namespace /run/netns/x is gone", namespace=3)
    foreign = Gap("fleet", "unreadable", "/netdiag/fleet/v1/node/x: not a fleet record")
    feature = Gap("ipvs", "feature-missing", "kernel has no IPVS")
    collector = Gap("firewall", "permission", "cannot read iptables", namespace=4)
    gaps = (timeout, refused, gone, foreign, feature, collector)
    # A namespace removed after it was found is no longer there to check, unless named.
    assert engine.unread(gaps) == (timeout, refused)
    assert engine.unread(gaps, named={3}) == (timeout, refused, gone)


def test_a_namespace_that_went_away_while_read_is_a_note_not_a_gap(capsys, tmp_path):
    """On a busy host containers come and go while `check` reads them: one removed meanwhile
    is no longer there to check. It is not NOT CHECKED, and `--quiet` stays quiet (cron)."""
    from netdiag.model import Gap

    gone = Gap("namespace", "gone", "namespace /run/netns/x is gone", namespace=99)
    path = _with_gaps(tmp_path, gone)
    code, out, _ = check(capsys, "--from", path)
    assert code == 0 and "NOT CHECKED" not in out, out
    assert "note: 1 namespace went away while being read" in out
    assert check(capsys, "--from", path, "--quiet")[:2] == (0, "")


def _walker(name, check):
    module = fake_rule(name, check)
    module.WALKS_FLOWS = True
    return module


def test_rules_that_walk_flows_give_the_same_report_from_a_second_process():
    """On a big snapshot the CLI runs them beside the others (engine.run's `beside`): the
    report is the one a single process gives, its findings included."""
    from netdiag.checks import registry
    d = docker_host()
    rules_ = d.b._fields[d.host]["iptables_rules"]
    d.b._fields[d.host]["iptables_rules"] = [r for r in rules_ if r.chain != "DOCKER-USER"]
    d.b.iptables(d.host, "filter", "-A DOCKER-USER -i eth0 -j DROP")
    snapshot = d.build()
    alone = engine.run(snapshot, beside=False)
    beside = engine.run(snapshot, beside=True)
    assert registry.find("expected-flow-blocked").WALKS_FLOWS
    assert [f.rule for f in alone.findings].count("expected-flow-blocked") == 2
    assert beside.findings == alone.findings and beside.unknown == alone.unknown == ()
    assert beside.rules == alone.rules


def test_a_rule_failing_or_late_in_the_second_process_is_unknown():
    parent = os.getpid()

    def broken(snapshot, config):
        raise KeyError("boom")
        yield

    def slow(snapshot, config):
        if os.getpid() != parent:  # in the second process only: killed at the deadline
            time.sleep(30)
        yield from ()

    report = engine.run(docker_host().build(), rules=(_walker("broken", broken),),
                        beside=True)
    assert [(u.rule, u.reason, u.message) for u in report.unknown] == [
        ("broken", "error", "the rule failed: KeyError: 'boom'")]
    report = engine.run(docker_host().build(), rules=(_walker("slow", slow),),
                        deadline=time.monotonic() + 0.5, beside=True)
    assert [(u.rule, u.reason) for u in report.unknown] == [("slow", "timeout")]
