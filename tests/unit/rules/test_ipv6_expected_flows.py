"""The IPv6 twins of Docker's expected flows (netdiag/flows/expected.py), on the snapshots of
real dual-stack Docker 28 and 20.10 hosts (tests/fixtures/docker28_ipv6/README.md): healthy,
each promises its IPv6 flows and keeps them, quietly; one fault at a time,
expected-flow-blocked names the IPv6 flow and what stops it — or leaves the fault to the rule
that owns it (one finding per cause)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netdiag.checks import engine
from netdiag.collect.iptables_save import parse
from netdiag.flows import expected
from netdiag.model import Sysctl, intent
from netdiag.model.serialize import load
from tests.fixtures.rules import run_rule

FIXTURES = Path(__file__).parents[2] / "fixtures" / "docker28_ipv6"
# network six, fd00:29::/64: web (fd00:29::2) publishing 8080, app (fd00:29::3)
OUT6 = "app reaches beyond the host over IPv6 (by up0) from network six"
IN6 = "a client beyond the host reaches web's published port [fd00:19:29::2]:8080 over IPv6"


@pytest.fixture(scope="module", params=["healthy.json", "healthy-20.10.json"])
def healthy(request):
    return load(FIXTURES / request.param)


def _host(snapshot):
    [docker] = snapshot.docker
    return snapshot.namespace(docker.namespace)


def _six_bridge(snapshot) -> str:
    [docker] = snapshot.docker
    return intent.bridge_name(next(n for n in docker.networks if n.name == "six"))


def _changed(snapshot, ns_id: int, **fields):
    return replace(snapshot, namespaces=tuple(replace(s, **fields) if s.ref.id == ns_id else s
                                              for s in snapshot.namespaces))


def _with_ip6tables(snapshot, table: str, *lines: str):
    """The host with these ip6tables rules first in their chains (`-I`)."""
    host = _host(snapshot)
    _, added = parse(f"*{table}\n" + "\n".join(lines) + "\nCOMMIT\n", "nft", 6)
    chains = {rule.chain for rule in added}
    kept = tuple(replace(r, position=r.position + sum(a.chain == r.chain for a in added))
                 if r.family == 6 and r.table == table and r.chain in chains else r
                 for r in host.firewall.iptables_rules)
    return _changed(snapshot, host.ref.id,
                    firewall=replace(host.firewall, iptables_rules=added + kept))


def _with_sysctl(snapshot, ns_id: int, name: str, value: str):
    state = snapshot.namespace(ns_id)
    return _changed(snapshot, ns_id, sysctls=tuple(
        s for s in state.sysctls if s.name != name) + (Sysctl(name, value),))


def _loud(snapshot):
    report = engine.run(snapshot)
    return sorted((f.rule, f.subject) for f in report.findings if f.severity.rank >= 1)


def test_a_real_dual_stack_docker_host_promises_its_ipv6_flows_and_keeps_them(healthy):
    promised = {e.what: e for e in expected.expectations(healthy)}
    for what in ("web reaches its gateway fd00:29::1 on network six",
                 "app reaches web (fd00:29::2) on network six",
                 "web reaches app (fd00:29::3) on network six", OUT6, IN6):
        assert what in promised, sorted(promised)
        assert promised[what].packet.family == 6
    # the internal IPv6 network: no IPv6 gateway to reach, nothing beyond the host
    assert not [w for w in promised if w.startswith("db reaches its gateway fd00")]
    assert not [w for w in promised if w.startswith("db reaches beyond")]
    # IPv4's promises are all still there
    assert "web reaches its gateway 172.18.0.1 on network six" in promised
    assert list(expected.judge(healthy)) == []
    assert _loud(healthy) == []


def test_an_ip6tables_drop_for_the_ipv6_subnet_names_the_ipv6_flows_and_the_rule(healthy):
    snapshot = _with_ip6tables(healthy, "filter", "-A FORWARD -s fd00:29::/64 -j DROP")
    found = {f.subject: f for f in run_rule("expected-flow-blocked", snapshot)}
    # Out, the published port's answer, and — the engine turned bridge-nf-call-ip6tables on
    # in its namespace — the two containers' bridged packets to each other, as in the kernel.
    assert _host(snapshot).sysctl("net.bridge.bridge-nf-call-ip6tables") == "1"
    assert set(found) == {"tcp [fd00:29::3]:43210 → [3fff::7]:443",
                          "tcp [3fff::7]:43210 → [fd00:19:29::2]:8080",
                          "icmpv6 fd00:29::3 → fd00:29::2", "icmpv6 fd00:29::2 → fd00:29::3"}
    out = found["tcp [fd00:29::3]:43210 → [3fff::7]:443"]
    assert out.message.startswith(f"{OUT6}: it is denied in {_host(snapshot).ref.display} at "
                                  "filter/FORWARD/1")
    rule = next(e for e in out.evidence if e.kind == "firewall")
    assert rule.text == "rule: -A FORWARD -s fd00:29::/64 -j DROP"
    assert found["tcp [3fff::7]:43210 → [fd00:19:29::2]:8080"].message.startswith(
        f"{IN6}: its reply is denied")
    # IPv4 is untouched by an ip6tables rule
    assert {o.result.flow.packet.family for o in expected.judge(snapshot)} == {6}
    assert {rule for rule, _ in _loud(snapshot)} == {"expected-flow-blocked"}


def test_an_ip6tables_forward_drop_into_the_bridge_names_the_published_port(healthy):
    snapshot = _with_ip6tables(healthy, "filter", f"-A FORWARD -d fd00:29::/64 -o "
                               f"{_six_bridge(healthy)} -p tcp -j DROP")  # a narrower one
    found = {f.message.partition(": i")[0]: f.message for f in
             run_rule("expected-flow-blocked", snapshot)}
    host = _host(snapshot).ref.display
    assert set(found) == {IN6, OUT6}  # in, and the answers to app's connection out
    assert f"it is denied in {host} at filter/FORWARD/1" in found[IN6]
    assert f"its reply is denied in {host} at filter/FORWARD/1" in found[OUT6]


def test_ipv6_forwarding_off_is_one_finding_of_ip_forward_disabled(healthy):
    host = _host(healthy)
    snapshot = _with_sysctl(healthy, host.ref.id, "net.ipv6.conf.all.forwarding", "0")
    # the flows are judged, and stopped by the sysctl ...
    stopped = {o.expectation.what: o.result for o in expected.judge(snapshot)}
    assert set(stopped) == {OUT6, IN6}
    assert all(r.forward.drop.cause == "forwarding" for r in stopped.values())
    assert "net.ipv6.conf.all.forwarding is 0" in stopped[OUT6].forward.drop.reason
    # ... and the fault is reported once, by the rule with its repair
    assert run_rule("expected-flow-blocked", snapshot) == []
    assert _loud(snapshot) == [("ip-forward-disabled", "net.ipv6.conf.all.forwarding")]


def test_without_dockers_ip6tables_nothing_leaves_over_ipv6_but_a_routed_prefix(healthy):
    host = _host(healthy)
    firewall = host.firewall
    no_ip6tables = _changed(healthy, host.ref.id, firewall=replace(
        firewall, iptables_chains=tuple(c for c in firewall.iptables_chains if c.family == 4),
        iptables_rules=tuple(r for r in firewall.iptables_rules if r.family == 4)))
    promised = {e.what for e in expected.expectations(no_ip6tables)}
    assert OUT6 not in promised and IN6 not in promised  # no NAT66, no IPv6 DNAT
    assert "web reaches its gateway fd00:29::1 on network six" in promised
    [docker] = healthy.docker
    routed = replace(docker, networks=tuple(
        replace(n, options=n.options + (("com.docker.network.bridge.gateway_mode_ipv6",
                                         "routed"),)) if n.name == "six" else n
        for n in docker.networks))
    promised = {e.what for e in expected.expectations(replace(no_ip6tables, docker=(routed,)))}
    assert OUT6 in promised and IN6 not in promised


def test_no_ipv6_uplink_or_an_isolated_ipv6_gateway_promises_less(healthy):
    host = _host(healthy)
    no_default6 = _changed(healthy, host.ref.id, routes=tuple(
        r for r in host.routes if not (r.family == 6 and r.dst == "default")))
    promised = {e.what for e in expected.expectations(no_default6)}
    assert OUT6 not in promised and IN6 not in promised
    assert "app reaches web (fd00:29::2) on network six" in promised
    [docker] = healthy.docker
    isolated = replace(docker, networks=tuple(
        replace(n, options=n.options + (("com.docker.network.bridge.gateway_mode_ipv6",
                                         "isolated"),)) if n.name == "six" else n
        for n in docker.networks))
    promised = {e.what for e in expected.expectations(replace(healthy, docker=(isolated,)))}
    assert not [w for w in promised if "gateway fd00:29::1" in w]
    assert OUT6 not in promised


def test_a_container_without_its_ipv6_default_route_is_missing_default_routes(healthy):
    [docker] = healthy.docker
    app = next(c for c in docker.containers if c.name == "app").netns
    state = healthy.namespace(app)
    snapshot = _changed(healthy, app, routes=tuple(
        r for r in state.routes if not (r.family == 6 and r.dst == "default")))
    [outcome] = expected.judge(snapshot)
    assert outcome.expectation.what == OUT6 and outcome.result.disposition == "no-route"
    assert run_rule("expected-flow-blocked", snapshot) == []  # the route's rule says it
    [finding] = run_rule("missing-default-route", snapshot)
    assert finding.subject == "eth0 (IPv6)"
    assert "fd00:29::3/64 on eth0 and no IPv6 default route, although fd00:29::1" in \
        finding.message
    assert finding.repair.steps[0].command() == \
        "ip route add ::/0 via fd00:29::1 dev eth0"
    assert _loud(snapshot) == [("missing-default-route", "eth0 (IPv6)")]


HAIRPIN6 = "web reaches its own published port [fd00:19:29::2]:8080 over IPv6"


def test_a_container_reaches_its_own_published_port_over_ipv6(healthy):
    """Docker's userland proxy listens on [::]:8080 (with the proxy off, the hairpin DNAT:
    tests/integration/test_ipv6_hairpin.py); an ip6tables INPUT drop on the port stops the
    container's IPv6 hairpin and nothing else (the client beyond is DNATed: FORWARD)."""
    promised = {e.what: e for e in expected.expectations(healthy)}
    assert promised[HAIRPIN6].packet.src == "fd00:29::2"
    snapshot = _with_ip6tables(healthy, "filter", "-A INPUT -p tcp --dport 8080 -j DROP")
    [found] = run_rule("expected-flow-blocked", snapshot)
    assert found.message.startswith(f"{HAIRPIN6}: it is denied in "
                                    f"{_host(snapshot).ref.display} at filter/INPUT/1")
