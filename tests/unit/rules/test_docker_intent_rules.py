"""The rules that compare Docker's intent with the kernel, on fixture snapshots: each quiet on
the healthy Docker host (whose intent says what its kernel state holds), each firing on one
fault, and each silent where the intent cannot be placed or says nothing."""

from dataclasses import replace
from pathlib import Path

import pytest

from netdiag.findings.finding import Severity
from netdiag.findings.repair import AddAddress, AddIptablesRule, Safety, SetMaster
from netdiag.model import NftChain, NftTable, Snapshot
from netdiag.model.docker import DaemonConfig, DockerContainer, DockerIpam, DockerPort
from netdiag.model.serialize import load
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import docker_host

RULES = ("docker-port-unpublished", "docker-bridge-broken", "docker-endpoint-broken",
         "docker-network-rules-missing")
WEB_DNAT = "-A DOCKER ! -i br-web -p tcp -m tcp --dport 8080 -j DNAT --to-destination {to}"
# The healthy host in 20.10's firewall layout and in 28's (DOCKER-FORWARD, DOCKER-BRIDGE,
# DOCKER-CT, DOCKER-INTERNAL, the raw-table drops), whose intent then says 28.5.2.
LAYOUTS = ("classic", "modern")


def host_of(layout: str):
    d = docker_host(layout)
    if layout == "modern":
        d.intent(version="28.5.2")
    return d


def without_rule(d, table: str, text: str) -> None:
    rules = d.b._fields[d.host]["iptables_rules"]
    d.b._fields[d.host]["iptables_rules"] = [r for r in rules if
                                              not (r.table == table and text in r.text)]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_healthy_host_is_quiet_for_every_docker_rule(layout):
    snapshot = host_of(layout).build()
    for rule in RULES:
        assert run_rule(rule, snapshot) == [], rule


def test_docker_29s_nftables_backend_is_judged_by_its_own_tables():
    """Docker 29 with `firewall-backend: nftables` writes its NAT and DNAT into `table ip
    docker-bridges`, none into iptables: there the rules read that table, never iptables
    (an unrelated iptables rule remains), and repair by the daemon, never by an iptables
    rule. A table without Docker's chains lacks the masquerade and the DNAT (the healthy and
    broken tables of moby's documents: tests/unit/rules/test_docker29_intent_rules.py)."""
    d = docker_host()
    for table in ("nat", "filter"):
        without_rule(d, table, "")
    d.b.iptables(d.host, "filter", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT")
    d.intent(version="29.0.0")
    iptables_only = d.build()
    assert {f.rule for r in ("docker-port-unpublished", "docker-network-rules-missing")
            for f in run_rule(r, iptables_only)} == {"docker-port-unpublished",
                                                     "docker-network-rules-missing"}
    host = iptables_only.namespace(d.host)
    nft = replace(host.firewall, nft_tables=(NftTable("ip", "docker-bridges", origin="nft"),),
                  nft_chains=(NftChain("ip", "docker-bridges", "filter-FORWARD",
                                       type="filter", hook="forward", policy="accept"),))
    docker29 = replace(iptables_only, namespaces=tuple(
        replace(s, firewall=nft) if s.ref.id == d.host else s for s in iptables_only.namespaces))
    findings = [f for rule in RULES for f in run_rule(rule, docker29)]
    assert {(f.rule, f.subject) for f in findings} == {
        ("docker-network-rules-missing", "nft ip docker-bridges"),
        ("docker-port-unpublished", "tcp/8080")}
    for finding in findings:
        assert "docker-bridges" in finding.message, finding.message
        assert finding.repair.safety is Safety.MANUAL
        assert not any(isinstance(s, AddIptablesRule) for s in finding.repair.steps)


def test_a_daemon_configured_for_nftables_whose_tables_are_gone_is_repaired_by_the_daemon():
    """`firewall-backend: nftables` in the daemon's configuration, and no docker-bridges
    table left (`nft flush ruleset` by a firewall reload): the rules judge the nftables the
    daemon writes (everything missing) and never offer an iptables rule as the repair."""
    d = docker_host()
    for table in ("nat", "filter"):
        without_rule(d, table, "")
    d.intent(version="29.0.0", daemon=DaemonConfig(firewall_backend="nftables"))
    findings = [f for rule in ("docker-port-unpublished", "docker-network-rules-missing")
                for f in run_rule(rule, d.build())]
    assert {f.rule for f in findings} == {"docker-port-unpublished",
                                          "docker-network-rules-missing"}
    for finding in findings:
        assert "docker-bridges" in finding.message, finding.message
        assert finding.repair.safety is Safety.MANUAL


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


@pytest.mark.parametrize("layout", LAYOUTS)
def test_published_port_without_its_dnat(layout):
    d = host_of(layout)
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


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bridge_without_its_gateway_address(layout):
    d = host_of(layout)
    fields = d.b._fields[d.host]
    fields["addresses"] = [a for a in fields["addresses"] if a.ifname != "br-web"]
    (finding,) = run_rule("docker-bridge-broken", d.build())
    assert finding.subject == "br-web" and "gateway 172.18.0.1" in finding.message
    (step,) = finding.repair.steps
    assert step == AddAddress(d.host, "br-web", "172.18.0.1/16")
    assert finding.repair.safety is Safety.UNSAFE


def test_an_isolated_gateway_mode_bridge_holds_no_address_by_design():
    """Docker 28's gateway_mode_ipv4=isolated leaves the bridge without an address (the
    network's IPAM still names a gateway): nothing is missing."""
    d = host_of("modern")
    fields = d.b._fields[d.host]
    fields["addresses"] = [a for a in fields["addresses"] if a.ifname != "br-int"]
    (finding,) = run_rule("docker-bridge-broken", d.build())
    assert finding.subject == "br-int"
    engine = d.b.docker[0]
    d.intent(networks=tuple(replace(n, options=n.options + (
        ("com.docker.network.bridge.gateway_mode_ipv4", "isolated"),)) if n.name == "int"
        else n for n in engine.networks))
    assert run_rule("docker-bridge-broken", d.build()) == []


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


@pytest.mark.parametrize("layout", LAYOUTS)
def test_veth_off_its_bridge(layout):
    d = host_of(layout)
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


@pytest.mark.parametrize("layout", LAYOUTS)
def test_masquerade_rule_gone(layout):
    d = host_of(layout)
    without_rule(d, "nat", "-s 172.18.0.0/16 ! -o br-web -j MASQUERADE")
    (finding,) = run_rule("docker-network-rules-missing", d.build())
    assert finding.subject == "nat/POSTROUTING" and "172.18.0.0/16" in finding.message
    assert finding.repair.steps == (AddIptablesRule(
        d.host, "nat", "POSTROUTING", ("-s", "172.18.0.0/16", "!", "-o", "br-web", "-j",
                                       "MASQUERADE")),)


WEB6 = ("-A POSTROUTING -s fd00:18::/64 ! -o br-web -j MASQUERADE",
        "-A DOCKER ! -i br-web -p tcp -m tcp --dport 8080 -j DNAT --to-destination "
        "[fd00:18::2]:80")


def dual_stack(layout: str = "classic", ip6tables: bool = True):
    """The Docker host whose network web is also IPv6 (fd00:18::/64, web at fd00:18::2,
    published on [::]:8080 too), with Docker's ip6tables rules when `ip6tables` is on (28's
    default; 20.10's experimental option), and none at all when it is off."""
    d = host_of(layout)
    engine = d.b.docker[0]
    d.intent(networks=tuple(replace(n, ipv6=True, ipam=n.ipam + (DockerIpam("fd00:18::/64"),))
                            if n.name == "web" else n for n in engine.networks))
    web = next(c for c in d.b.docker[0].containers if c.name == "web")
    d.container_intent("web", bound=web.bound + (replace(web.bound[0], host_ip="::"),),
                       endpoints=(replace(web.endpoints[0], ipv6="fd00:18::2"),))
    if ip6tables:
        d.b.chain(d.host, "nat", "DOCKER", family=6)
        for line in WEB6:
            d.b.iptables(d.host, "nat", line, family=6)
    return d


def without_rule6(d, text: str) -> None:
    rules = d.b._fields[d.host]["iptables_rules"]
    d.b._fields[d.host]["iptables_rules"] = [r for r in rules
                                              if not (r.family == 6 and text in r.text)]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ipv6_masquerade_and_dnat_gone_with_ip6tables_on(layout):
    """Docker's IPv6 network in NAT mode: ip6tables' MASQUERADE and DNAT, judged like the
    IPv4 ones; the repair of the masquerade is the ip6tables rule."""
    quiet = dual_stack(layout).build()
    for rule in RULES:
        assert run_rule(rule, quiet) == [], rule
    d = dual_stack(layout)
    without_rule6(d, "MASQUERADE")
    (finding,) = run_rule("docker-network-rules-missing", d.build())
    assert "fd00:18::/64" in finding.message and "ip6tables" in finding.message
    (step,) = finding.repair.steps
    assert step.command() == \
        "ip6tables -t nat -A POSTROUTING -s fd00:18::/64 '!' -o br-web -j MASQUERADE"
    d = dual_stack(layout)
    without_rule6(d, "DNAT")
    (finding,) = run_rule("docker-port-unpublished", d.build())
    assert finding.subject == "tcp/8080"
    assert "[::]:8080" in finding.message and "[fd00:18::2]:80" in finding.message
    assert "ip6tables nat table" in finding.message


def test_ipv6_is_not_judged_where_the_daemon_writes_no_ip6tables_rules():
    """20.10's default (and `"ip6tables": false`): an IPv6 network without any ip6tables rule
    from Docker is what the daemon meant."""
    assert [f for rule in RULES for f in run_rule(rule, dual_stack(ip6tables=False).build())] \
        == []


def test_a_routed_ipv6_network_needs_no_nat66():
    d = dual_stack()
    without_rule6(d, "")
    d.b.chain(d.host, "nat", "DOCKER", family=6)
    d.intent(networks=tuple(replace(n, options=n.options + (
        ("com.docker.network.bridge.gateway_mode_ipv6", "routed"),)) if n.name == "web" else n
        for n in d.b.docker[0].networks))
    assert [f for rule in RULES for f in run_rule(rule, d.build())] == []


def test_a_network_with_a_host_address_is_snatted_instead():
    """`-o com.docker.network.host_ipv4=ADDR`: Docker writes `-j SNAT --to-source ADDR` in
    place of the MASQUERADE; that is the network's source NAT, and its repair."""
    d = docker_host()
    without_rule(d, "nat", "-s 172.18.0.0/16 ! -o br-web -j MASQUERADE")
    d.intent(networks=tuple(replace(n, options=n.options + (
        ("com.docker.network.host_ipv4", "192.168.1.10"),)) if n.name == "web" else n
        for n in d.b.docker[0].networks))
    (finding,) = run_rule("docker-network-rules-missing", d.build())
    assert finding.repair.steps == (AddIptablesRule(
        d.host, "nat", "POSTROUTING", ("-s", "172.18.0.0/16", "!", "-o", "br-web", "-j",
                                       "SNAT", "--to-source", "192.168.1.10")),)
    d.b.iptables(d.host, "nat", "-A POSTROUTING -s 172.18.0.0/16 ! -o br-web -j SNAT "
                 "--to-source 192.168.1.10")
    assert run_rule("docker-network-rules-missing", d.build()) == []


def test_internal_networks_and_masquerade_off_need_no_masquerade():
    d = docker_host()
    without_rule(d, "nat", "MASQUERADE")
    engine = d.b.docker[0]
    d.intent(networks=tuple(replace(n, options=n.options + (
        ("com.docker.network.bridge.enable_ip_masquerade", "false"),)) for n in engine.networks))
    assert run_rule("docker-network-rules-missing", d.build()) == []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_routed_or_isolated_network_is_not_masqueraded_by_design(layout):
    """Docker 27+'s gateway_mode_ipv4=routed writes no MASQUERADE: restoring one (a "safe"
    repair) would undo the mode Docker was configured for. nat-unprotected still has one."""
    for mode, fires in (("routed", False), ("isolated", False), ("nat-unprotected", True),
                        ("nat", True)):
        d = host_of(layout)
        without_rule(d, "nat", "-s 172.18.0.0/16 ! -o br-web -j MASQUERADE")
        engine = d.b.docker[0]
        d.intent(networks=tuple(replace(n, options=n.options + (
            ("com.docker.network.bridge.gateway_mode_ipv4", mode),)) for n in engine.networks))
        found = run_rule("docker-network-rules-missing", d.build())
        assert [f.subject for f in found] == (["nat/POSTROUTING"] if fires else []), mode


@pytest.mark.parametrize("layout", LAYOUTS)
def test_icc_off_without_its_drop_rule(layout):
    d = host_of(layout)
    engine = d.b.docker[0]
    d.intent(networks=tuple(replace(n, options=n.options + (
        ("com.docker.network.bridge.enable_icc", "false"),)) if n.name == "web" else n
        for n in engine.networks))
    (finding,) = run_rule("docker-network-rules-missing", d.build())
    assert finding.subject == "filter/FORWARD" and finding.severity is Severity.WARNING
    chain = "DOCKER-FORWARD" if layout == "modern" else "FORWARD"  # where each writes it
    d.b.iptables(d.host, "filter", f"-A {chain} -i br-web -o br-web -j DROP")
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


# --- a real Docker 28 host's snapshot ----------------------------------------------------------

DOCKER28 = Path(__file__).parents[2] / "fixtures" / "docker28" / "healthy.json"


def without_firewall_rules(snapshot: Snapshot, ns_id: int, drop) -> Snapshot:
    """The snapshot with the iptables rules `drop` picks gone from one namespace."""
    state = snapshot.namespace(ns_id)
    firewall = replace(state.firewall, iptables_rules=tuple(
        r for r in state.firewall.iptables_rules if not drop(r)))
    return replace(snapshot, namespaces=tuple(replace(s, firewall=firewall) if s.ref.id == ns_id
                                              else s for s in snapshot.namespaces))


def test_faults_in_a_real_docker_28_hosts_snapshot():
    """tests/fixtures/docker28/README.md: quiet as recorded; each fault, cut out of the
    rules Docker 28.5.2 wrote, found."""
    healthy = load(DOCKER28)
    (docker,) = healthy.docker
    host = docker.namespace
    for rule in RULES:
        assert run_rule(rule, healthy) == [], rule
    web = next(n for n in docker.networks if n.name == "web")
    subnet = web.ipam[0].subnet

    def masquerade(rule):
        source = rule.match("source")
        return rule.target == "MASQUERADE" and source is not None and source.value == subnet

    assert any(masquerade(r) for r in healthy.namespace(host).firewall.iptables_rules)
    (finding,) = run_rule("docker-network-rules-missing",
                          without_firewall_rules(healthy, host, masquerade))
    assert finding.subject == "nat/POSTROUTING" and subnet in finding.message

    def web_dnat(rule):
        dport = rule.match("dport")
        return rule.target == "DNAT" and dport is not None and dport.value == "8080"

    (finding,) = run_rule("docker-port-unpublished", without_firewall_rules(healthy, host,
                                                                           web_dnat))
    assert finding.subject == "tcp/8080" and "no DNAT" in finding.message


def test_forwarding_faults_in_a_real_docker_28_hosts_snapshot():
    """The same snapshot for the rules that walk Docker 28's FORWARD chains: without the
    `DOCKER-FORWARD -i BRIDGE -j ACCEPT` of network web its traffic out falls to the DROP
    policy; without both of 28's drops into docker0 (DOCKER-ISOLATION-STAGE-2 and DOCKER),
    web reaches docker0."""
    healthy = load(DOCKER28)
    (docker,) = healthy.docker
    host = docker.namespace
    bridge = next(f"br-{n.id[:12]}" for n in docker.networks if n.name == "web")
    for rule in ("forward-policy-drop", "bridge-isolation-broken"):
        assert run_rule(rule, healthy) == [], rule

    def web_accept(rule):
        return rule.chain == "DOCKER-FORWARD" and rule.target == "ACCEPT" and \
            rule.text == f"-A DOCKER-FORWARD -i {bridge} -j ACCEPT"

    (finding,) = run_rule("forward-policy-drop", without_firewall_rules(healthy, host,
                                                                       web_accept))
    assert finding.subject == bridge and f"out of {bridge}" in finding.message

    def into_docker0(rule):
        return rule.target == "DROP" and rule.text in (
            "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
            "-A DOCKER ! -i docker0 -o docker0 -j DROP")

    open_host = without_firewall_rules(healthy, host, into_docker0)
    assert len(open_host.namespace(host).firewall.iptables_rules) == \
        len(healthy.namespace(host).firewall.iptables_rules) - 2
    found = run_rule("bridge-isolation-broken", open_host)
    assert f"{bridge}<->docker0" in [f.subject for f in found]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_icc_off_on_an_ipv6_network_wants_its_ip6tables_drop_too(layout):
    """Docker 28 writes the icc drop in ip6tables as well for an IPv6 network with
    inter-container communication off (seen on a real 28.5.2 engine: `-A DOCKER-FORWARD -i
    br-X -o br-X -j DROP` in both iptables-save and ip6tables-save); without it the
    containers reach each other over IPv6 while IPv4 keeps them apart."""
    d = dual_stack(layout)
    d.intent(networks=tuple(replace(n, options=n.options + (
        ("com.docker.network.bridge.enable_icc", "false"),)) if n.name == "web" else n
        for n in d.b.docker[0].networks))
    chain = "DOCKER-FORWARD" if layout == "modern" else "FORWARD"
    d.b.iptables(d.host, "filter", f"-A {chain} -i br-web -o br-web -j DROP")
    (finding,) = run_rule("docker-network-rules-missing", d.build())
    assert "ip6tables FORWARD" in finding.message and "over IPv6" in finding.message
    (step,) = finding.repair.steps
    assert step.command() == "ip6tables -t filter -I FORWARD 1 -i br-web -o br-web -j DROP"
    d.b.iptables(d.host, "filter", f"-A {chain} -i br-web -o br-web -j DROP", family=6)
    assert run_rule("docker-network-rules-missing", d.build()) == []
    assert run_rule("docker-network-rules-missing", dual_stack(layout, ip6tables=False)
                    .build()) == []
