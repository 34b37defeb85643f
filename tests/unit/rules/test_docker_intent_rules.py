"""The rules that compare Docker's intent with the kernel, on fixture snapshots: each quiet on
the healthy Docker host (whose intent says what its kernel state holds), each firing on one
fault, and each silent where the intent cannot be placed or says nothing."""

from dataclasses import replace

from netdiag.findings.finding import Severity
from netdiag.findings.repair import AddAddress, AddIptablesRule, Safety, SetMaster
from netdiag.model.docker import DaemonConfig, DockerContainer, DockerPort
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import docker_host

RULES = ("docker-port-unpublished", "docker-bridge-broken", "docker-endpoint-broken",
         "docker-network-rules-missing")
WEB_DNAT = "-A DOCKER ! -i br-web -p tcp -m tcp --dport 8080 -j DNAT --to-destination {to}"


def without_rule(d, table: str, text: str) -> None:
    rules = d.b._fields[d.host]["iptables_rules"]
    d.b._fields[d.host]["iptables_rules"] = [r for r in rules if
                                              not (r.table == table and text in r.text)]


def test_the_healthy_host_is_quiet_for_every_docker_rule():
    snapshot = docker_host().build()
    for rule in RULES:
        assert run_rule(rule, snapshot) == [], rule


def test_without_intent_or_an_engine_that_cannot_be_placed_nothing_is_said():
    d = docker_host()
    without_rule(d, "nat", "MASQUERADE")
    d.b.update_link(d.host, "br-web", admin_up=False, oper_state="down")
    bare = replace(d.build(), docker=())  # a version-1 snapshot, or --docker none
    d.intent(namespace=0)  # found only by its socket, from inside a container
    for snapshot in (bare, d.build()):
        for rule in RULES:
            assert run_rule(rule, snapshot) == [], rule


# --- docker-port-unpublished -------------------------------------------------------------------


def test_published_port_without_its_dnat():
    d = docker_host()
    without_rule(d, "nat", "--dport 8080")
    d.intent(daemon=DaemonConfig(userland_proxy=False))
    (finding,) = run_rule("docker-port-unpublished", d.build())
    assert finding.subject == "tcp/8080" and finding.severity is Severity.ERROR
    assert "no DNAT for tcp/8080 to 172.18.0.2:80" in finding.message
    assert finding.related == (d.web,)
    assert {e.kind for e in finding.evidence} == {"docker", "firewall"}


def test_with_the_userland_proxy_a_missing_dnat_is_a_warning():
    d = docker_host()
    without_rule(d, "nat", "--dport 8080")
    (finding,) = run_rule("docker-port-unpublished", d.build())
    assert finding.severity is Severity.WARNING and "docker-proxy" in finding.message


def test_dnat_to_another_address_than_the_containers():
    d = docker_host()
    without_rule(d, "nat", "--dport 8080")
    d.b.iptables(d.host, "nat", WEB_DNAT.format(to="172.18.0.9:80"))
    (finding,) = run_rule("docker-port-unpublished", d.build())
    assert "to 172.18.0.9:80, not to 172.18.0.2:80" in finding.message


def test_engine_without_iptables_writes_no_rules_to_judge():
    d = docker_host()
    without_rule(d, "nat", "--dport 8080")
    d.intent(daemon=DaemonConfig(iptables=False))
    assert run_rule("docker-port-unpublished", d.build()) == []


def test_container_that_could_not_start_names_who_holds_the_port():
    d = docker_host()
    engine = d.b.docker[0]
    late = DockerContainer(
        id="l" * 64, name="late", state="created", exit_code=128, network_mode="web",
        ports=(DockerPort(80, "tcp", host_port=8080),),
        error="driver failed programming external connectivity on endpoint late (0123): "
              "Bind for 0.0.0.0:8080 failed: port is already allocated")
    d.intent(containers=engine.containers + (late,))
    (finding,) = run_rule("docker-port-unpublished", d.build())
    assert finding.subject == "tcp/8080" and "late wants 0.0.0.0:8080->80/tcp" in finding.message
    assert "published by web" in finding.message
    assert finding.repair.safety is Safety.MANUAL


def test_container_that_exited_for_another_reason_is_not_a_port_problem():
    d = docker_host()
    engine = d.b.docker[0]
    done = DockerContainer(id="x" * 64, name="job", state="exited", exit_code=1,
                           ports=(DockerPort(80, "tcp", host_port=9000),))
    d.intent(containers=engine.containers + (done,))
    assert run_rule("docker-port-unpublished", d.build()) == []


# --- docker-bridge-broken ----------------------------------------------------------------------


def test_bridge_without_its_gateway_address():
    d = docker_host()
    fields = d.b._fields[d.host]
    fields["addresses"] = [a for a in fields["addresses"] if a.ifname != "br-web"]
    (finding,) = run_rule("docker-bridge-broken", d.build())
    assert finding.subject == "br-web" and "gateway 172.18.0.1" in finding.message
    (step,) = finding.repair.steps
    assert step == AddAddress(d.host, "br-web", "172.18.0.1/16")
    assert finding.repair.safety is Safety.UNSAFE


def test_bridge_down_and_bridge_missing():
    d = docker_host()
    d.b.update_link(d.host, "br-web", admin_up=False, oper_state="down")
    fields = d.b._fields[d.host]
    fields["links"] = [link for link in fields["links"] if link.name != "br-int"]
    found = {f.subject: f for f in run_rule("docker-bridge-broken", d.build())}
    assert set(found) == {"br-web", "br-int"}
    assert "is down" in found["br-web"].message and found["br-web"].repair.safety is Safety.SAFE
    assert "is missing" in found["br-int"].message


def test_docker0_without_containers_has_no_carrier_and_that_is_fine():
    """docker0 is admin-up with operational state down when nothing is plugged in."""
    assert run_rule("docker-bridge-broken", docker_host().build()) == []


# --- docker-endpoint-broken --------------------------------------------------------------------


def test_veth_off_its_bridge():
    d = docker_host()
    d.b.update_link(d.host, "veth1a2b3c4", master="")
    (finding,) = run_rule("docker-endpoint-broken", d.build())
    assert finding.namespace.id == d.web and finding.subject == "eth0"
    assert "veth1a2b3c4" in finding.message and "not of br-web" in finding.message
    assert finding.repair.steps == (SetMaster(d.host, "veth1a2b3c4", "br-web"),)
    assert finding.repair.safety is Safety.SAFE and finding.related == (d.host,)


def test_endpoint_address_gone_from_the_container():
    d = docker_host()
    fields = d.b._fields[d.web]
    fields["addresses"] = [a for a in fields["addresses"] if a.ifname != "eth0"]
    (finding,) = run_rule("docker-endpoint-broken", d.build())
    assert finding.subject == "172.18.0.2" and "no interface" in finding.message


def test_sidecar_in_another_namespace_than_the_container_it_joined():
    d = docker_host()
    stale = d.b.container("old-sandbox")
    engine = d.b.docker[0]
    side = DockerContainer(id="s" * 64, name="side", state="running", pid=300, netns=stale,
                           network_mode="container:" + "w" * 64)
    d.intent(containers=engine.containers + (side,))
    (finding,) = run_rule("docker-endpoint-broken", d.build())
    assert finding.namespace.id == stale and finding.subject == "network namespace"
    assert "--network container:web" in finding.message and "only lo" in finding.message
    assert finding.related == (d.web,)


def test_sidecar_in_the_namespace_it_joined_is_fine():
    d = docker_host()
    engine = d.b.docker[0]
    side = DockerContainer(id="s" * 64, name="side", state="running", pid=300, netns=d.web,
                           network_mode="container:" + "w" * 64)
    d.intent(containers=engine.containers + (side,))
    assert run_rule("docker-endpoint-broken", d.build()) == []


# --- docker-network-rules-missing --------------------------------------------------------------


def test_masquerade_rule_gone():
    d = docker_host()
    without_rule(d, "nat", "-s 172.18.0.0/16 ! -o br-web -j MASQUERADE")
    (finding,) = run_rule("docker-network-rules-missing", d.build())
    assert finding.subject == "nat/POSTROUTING" and "172.18.0.0/16" in finding.message
    assert finding.repair.steps == (AddIptablesRule(
        d.host, "nat", "POSTROUTING", ("-s", "172.18.0.0/16", "!", "-o", "br-web", "-j",
                                       "MASQUERADE")),)


def test_internal_networks_and_masquerade_off_need_no_masquerade():
    d = docker_host()
    without_rule(d, "nat", "MASQUERADE")
    engine = d.b.docker[0]
    d.intent(networks=tuple(replace(n, options=n.options + (
        ("com.docker.network.bridge.enable_ip_masquerade", "false"),)) for n in engine.networks))
    assert run_rule("docker-network-rules-missing", d.build()) == []


def test_a_routed_or_isolated_network_is_not_masqueraded_by_design():
    """Docker 27+'s gateway_mode_ipv4=routed writes no MASQUERADE: restoring one (a "safe"
    repair) would undo the mode Docker was configured for. nat-unprotected still has one."""
    for mode, fires in (("routed", False), ("isolated", False), ("nat-unprotected", True),
                        ("nat", True)):
        d = docker_host()
        without_rule(d, "nat", "-s 172.18.0.0/16 ! -o br-web -j MASQUERADE")
        engine = d.b.docker[0]
        d.intent(networks=tuple(replace(n, options=n.options + (
            ("com.docker.network.bridge.gateway_mode_ipv4", mode),)) for n in engine.networks))
        found = run_rule("docker-network-rules-missing", d.build())
        assert [f.subject for f in found] == (["nat/POSTROUTING"] if fires else []), mode


def test_icc_off_without_its_drop_rule():
    d = docker_host()
    engine = d.b.docker[0]
    d.intent(networks=tuple(replace(n, options=n.options + (
        ("com.docker.network.bridge.enable_icc", "false"),)) if n.name == "web" else n
        for n in engine.networks))
    (finding,) = run_rule("docker-network-rules-missing", d.build())
    assert finding.subject == "filter/FORWARD" and finding.severity is Severity.WARNING
    d.b.iptables(d.host, "filter", "-A FORWARD -i br-web -o br-web -j DROP")
    assert run_rule("docker-network-rules-missing", d.build()) == []


# --- docker-prerequisite-missing ---------------------------------------------------------------


def _proxy_off(d):
    d.intent(daemon=DaemonConfig(userland_proxy=False))


def test_hairpin_off_on_a_publishing_containers_port_with_the_proxy_off():
    from netdiag.findings.repair import SetHairpin
    from netdiag.model import BridgePortInfo

    d = docker_host()
    _proxy_off(d)
    d.b.update_link(d.host, "veth1a2b3c4", port=BridgePortInfo(state="forwarding",
                                                                hairpin=False))
    (finding,) = run_rule("docker-prerequisite-missing", d.build())
    assert finding.subject == "veth1a2b3c4" and "web cannot reach" in finding.message
    assert finding.repair.steps == (SetHairpin(d.host, "veth1a2b3c4"),)
    d.b.update_link(d.host, "veth1a2b3c4", port=BridgePortInfo(state="forwarding",
                                                                hairpin=True))
    assert run_rule("docker-prerequisite-missing", d.build()) == []


def test_with_the_proxy_on_hairpin_is_not_needed():
    from netdiag.model import BridgePortInfo

    d = docker_host()
    d.b.update_link(d.host, "veth1a2b3c4", port=BridgePortInfo(hairpin=False))
    assert run_rule("docker-prerequisite-missing", d.build()) == []


def test_icc_off_with_bridged_frames_skipping_iptables():
    d = docker_host()
    engine = d.b.docker[0]
    d.intent(networks=tuple(replace(n, options=n.options + (
        ("com.docker.network.bridge.enable_icc", "false"),)) if n.name == "web" else n
        for n in engine.networks))
    assert run_rule("docker-prerequisite-missing", d.build()) == []  # sysctl not read: no word
    d.b.sysctl(d.host, "net.bridge.bridge-nf-call-iptables", 0)
    (finding,) = run_rule("docker-prerequisite-missing", d.build())
    assert finding.subject == "net.bridge.bridge-nf-call-iptables"
    assert finding.repair.safety is Safety.UNSAFE


def test_an_internal_network_by_intent_needs_no_default_route():
    """db is on the internal network int: even with Docker's isolation rules gone (so the
    kernel alone would take br-int's gateway for a router), the intent says internal."""
    d = docker_host()
    without_rule(d, "filter", "br-int -j DROP")
    without_rule(d, "filter", "-o br-int -j DROP")
    assert run_rule("missing-default-route", d.build()) == []
    bare = replace(d.build(), docker=())
    assert [f.namespace.id for f in run_rule("missing-default-route", bare)] == [d.db]


def test_isolation_chains_flushed_altogether_with_and_without_intent():
    """`iptables -F DOCKER-ISOLATION-STAGE-1` leaves no pair isolated: from the kernel alone
    no promise is visible, Docker's intent says every pair of its networks is one."""
    d = docker_host()
    without_rule(d, "filter", "-A DOCKER-ISOLATION-STAGE-1")
    found = run_rule("bridge-isolation-broken", d.build())
    assert sorted(f.subject for f in found) == ["br-int<->br-web", "br-int<->docker0",
                                                 "br-web<->docker0"]
    web = next(f for f in found if f.subject == "br-web<->docker0")
    assert "although Docker isolates its networks" in web.message
    assert {e.key for e in web.evidence if e.kind == "docker"} == {"web", "bridge"}
    d.intent(daemon=DaemonConfig(iptables=False))  # an engine that writes no rules promises none
    assert run_rule("bridge-isolation-broken", d.build()) == []
    d.b.docker = []
    assert run_rule("bridge-isolation-broken", d.build()) == []


def test_one_isolation_rule_gone_is_one_pair_with_intent():
    d = docker_host()
    without_rule(d, "filter", "-A DOCKER-ISOLATION-STAGE-2 -o br-web -j DROP")
    found = run_rule("bridge-isolation-broken", d.build())
    assert [f.subject for f in found] == ["br-web<->docker0"]


def test_docker_28s_raw_drops_still_isolate_when_the_forward_rules_are_gone():
    """Docker 28.2 drops packets to a NAT-mode container that do not come from its bridge, in
    the raw table: with the FORWARD isolation rules gone, a network whose every container is so
    guarded is still isolated (the kernel says so); one whose raw drops went too is not."""
    d = docker_host("modern")
    without_rule(d, "filter", "-A DOCKER ! -i")
    found = run_rule("bridge-isolation-broken", d.build())
    # docker0 has no container, so nothing guards it; br-web's container is guarded (and the
    # internal network keeps its own DOCKER-INTERNAL drops).
    (finding,) = found
    assert finding.subject == "br-web<->docker0"
    assert "br-web → docker0" in finding.message and "docker0 → br-web" not in finding.message
    without_rule(d, "raw", "-d 172.18.0.2/32")
    (finding,) = run_rule("bridge-isolation-broken", d.build())
    assert "docker0 → br-web" in finding.message
