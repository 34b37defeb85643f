"""ip-forward-disabled (ND501), forward-policy-drop (ND502), missing-default-route (ND503)
on fixture snapshots."""

from dataclasses import replace

import pytest

from netdiag.findings.repair import AddIptablesRule, AddRoute, SetSysctl
from netdiag.model import NftChain, NftRule, NftTable
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import docker_host


@pytest.mark.parametrize("rule", ["ip-forward-disabled", "forward-policy-drop",
                                  "missing-default-route"])
@pytest.mark.parametrize("layout", ["classic", "modern"])
def test_healthy_docker_host_passes(rule, layout):
    assert run_rule(rule, docker_host(layout).build()) == []


def test_ip_forward_off_on_a_host_that_routes_for_containers():
    d = docker_host()
    d.b.sysctl(d.host, "net.ipv4.ip_forward", 0)
    (finding,) = run_rule("ip-forward-disabled", d.build())
    assert finding.namespace.id == d.host and finding.subject == "net.ipv4.ip_forward"
    assert "gateway (172.18.0.1 on br-web) of route default in web" in finding.message
    assert finding.related == (d.web,)
    assert finding.repair.steps == (SetSysctl(d.host, "net.ipv4.ip_forward", "1"),)


def test_ip_forward_off_in_a_namespace_that_only_nats():
    d = docker_host()
    router = d.b.namespace("nat-router")
    d.b.sysctl(router, "net.ipv4.ip_forward", 0)
    d.b.iptables(router, "nat", "-A POSTROUTING -s 10.7.0.0/24 -j MASQUERADE")
    (finding,) = run_rule("ip-forward-disabled", d.build())
    assert finding.namespace.id == router
    assert [e.key for e in finding.evidence] == ["net.ipv4.ip_forward", "nat/POSTROUTING/1"]


def test_kvm_bridge_behind_docker_forward_drop():
    d = docker_host()
    d.b.bridge(d.host, "br0", "192.168.122.1/24")
    d.b.link(d.host, "vnet0", master="br0")
    d.b.link(d.host, "vnet1", master="br0")
    (finding,) = run_rule("forward-policy-drop", d.build())
    assert finding.subject == "br0"
    assert "out of br0 and into br0 and between br0's ports" in finding.message
    assert {s.args for s in finding.repair.steps if isinstance(s, AddIptablesRule)} == {
        ("-i", "br0", "-j", "ACCEPT"), ("-o", "br0", "-j", "ACCEPT")}
    assert all(s.chain == "DOCKER-USER" and s.position == 1 for s in finding.repair.steps)


def test_accept_rule_in_docker_user_is_an_accept_path():
    d = docker_host("modern")
    d.b.bridge(d.host, "br0", "192.168.122.1/24")
    d.b.link(d.host, "vnet0", master="br0")
    d.b.iptables(d.host, "filter", "-A DOCKER-USER -i br0 -j ACCEPT")
    d.b.iptables(d.host, "filter", "-A DOCKER-USER -o br0 -j ACCEPT")
    assert run_rule("forward-policy-drop", d.build()) == []


def test_container_without_default_route_next_to_a_router():
    d = docker_host()
    d.b.remove_route(d.web, "default")
    (finding,) = run_rule("missing-default-route", d.build())
    assert finding.namespace.id == d.web and finding.subject == "eth0"
    assert finding.repair.steps == (AddRoute(d.web, "default", dev="eth0",
                                             gateway="172.18.0.1"),)


def test_internal_network_or_no_router_needs_no_default_route():
    d = docker_host()
    # db sits on the internal network (its gateway drops traffic leaving the subnet); a lab
    # pair of namespaces with no router at all is fine too.
    lone_a, lone_b = d.b.namespace("a"), d.b.namespace("b")
    d.b.veth(lone_a, "eth0", lone_b, "eth0", address="10.9.0.1/24")
    assert run_rule("missing-default-route", d.build()) == []


def test_upstream_stub_of_a_host_is_neither_a_router_nor_missing_a_route():
    # The host's default route points at a namespace standing in for the upstream router;
    # that stub has nowhere to forward to, and the host (which forwards) is no way out for it.
    d = docker_host()
    gw = d.b.namespace("gw")
    d.b.remove_route(d.host, "default")
    d.b.veth(gw, "eth0", d.host, "up0", address="198.19.0.1/24")
    d.b.address(d.host, "up0", "198.19.0.2/24")
    d.b.route(d.host, "default", gateway="198.19.0.1", dev="up0")
    d.b.sysctl(gw, "net.ipv4.ip_forward", 0)
    snapshot = d.build()
    assert run_rule("ip-forward-disabled", snapshot) == []
    assert run_rule("missing-default-route", snapshot) == []
    # Given a way on, the same stub is a router that does not forward.
    d.b.link(gw, "wan0", address="203.0.113.2/24")
    d.b.route(gw, "default", gateway="203.0.113.1", dev="wan0")
    (finding,) = run_rule("ip-forward-disabled", d.build())
    assert finding.namespace.id == gw


def with_nft_forward_drop(snapshot, ns_id, rules=()):
    """The snapshot with a native nftables forward chain (policy drop) in `ns_id`."""
    states = []
    for state in snapshot.namespaces:
        if state.ref.id == ns_id:
            firewall = replace(state.firewall,
                               nft_tables=(NftTable("inet", "fw"),),
                               nft_chains=(NftChain("inet", "fw", "forward", type="filter",
                                                    hook="forward", policy="drop"),),
                               nft_rules=tuple(NftRule("inet", "fw", "forward", i + 1, text)
                                               for i, text in enumerate(rules)))
            state = replace(state, firewall=firewall)
        states.append(state)
    return replace(snapshot, namespaces=tuple(states))


def test_native_nftables_forward_drop_without_a_rule_for_the_bridge():
    b = SnapshotBuilder()
    host = b.host()
    for bridge, port in (("br0", "vnet0"), ("lxcbr0", "veth-lxc")):
        b.bridge(host, bridge, "").link(host, port, master=bridge)
    (finding,) = run_rule("forward-policy-drop", with_nft_forward_drop(
        b.build(), host, ['iifname "br0" accept', 'oifname "br0" ct state established accept']))
    assert finding.subject == "lxcbr0"
    assert [e.key for e in finding.evidence] == ["inet fw/forward", "inet fw/forward"]
    both = with_nft_forward_drop(b.build(), host, ['iifname { "br0", "lxcbr0" } accept'])
    assert run_rule("forward-policy-drop", both) == []
