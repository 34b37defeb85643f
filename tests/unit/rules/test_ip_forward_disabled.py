"""ip-forward-disabled (ND501) for IPv6, and IPv4's per-interface switch, on fixture snapshots
(IPv4's global switch: test_forwarding_rules.py)."""

from dataclasses import replace

import pytest

from netdiag.findings.repair import SetSysctl
from netdiag.model.docker import DockerIpam
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import DockerHost, docker_host

IPV6 = "net.ipv6.conf.all.forwarding"


def ipv6_docker_host(layout: str = "classic", container: bool = True,
                     gateway: str = "fd00:db8::1", nat66: bool = True) -> DockerHost:
    """The healthy Docker host, its network web dual-stack (fd00:db8::/64 on br-web, NAT66
    out of the host), an IPv6 uplink with a default route via the upstream router's
    link-local address, and IPv6 forwarding on — as Docker leaves it."""
    d = docker_host(layout)
    d.b.address(d.host, "eth0", "2001:db8:1::10/64")
    d.b.address(d.host, "eth0", "fe80::10/64")
    d.b.route(d.host, "default", gateway="fe80::1", dev="eth0", family=6)
    d.b.address(d.host, "br-web", "fd00:db8::1/64")
    d.b.address(d.host, "br-web", "fe80::1/64")
    d.b.sysctl(d.host, IPV6, 1)
    if nat66:
        d.b.iptables(d.host, "nat",
                     "-A POSTROUTING -s fd00:db8::/64 ! -o br-web -j MASQUERADE", family=6)
    if container:
        d.b.address(d.web, "eth0", "fd00:db8::2/64")
        d.b.route(d.web, "default", gateway=gateway, dev="eth0", family=6)
        d.b.sysctl(d.web, IPV6, 0)
    engine = d.b.docker[0]
    d.intent(networks=tuple(
        replace(n, ipv6=True, ipam=n.ipam + (DockerIpam("fd00:db8::/64", "fd00:db8::1"),))
        if n.name == "web" else n for n in engine.networks))
    return d


@pytest.mark.parametrize("layout", ["classic", "modern"])
def test_a_healthy_dual_stack_docker_host_passes(layout):
    assert run_rule("ip-forward-disabled", ipv6_docker_host(layout).build()) == []


def test_a_host_with_ipv6_but_no_ipv6_network_to_forward_passes():
    # IPv6 on the uplink (SLAAC, a default route), IPv6 forwarding off as the kernel starts
    # it, and containers on IPv4-only networks with their link-local addresses only.
    d = docker_host()
    d.b.address(d.host, "eth0", "2001:db8:1::10/64")
    d.b.route(d.host, "default", gateway="fe80::1", dev="eth0", family=6)
    d.b.address(d.host, "br-web", "fe80::1/64")
    d.b.address(d.web, "eth0", "fe80::42:acff:fe12:2/64")
    for ns in (d.host, d.web, d.db):
        d.b.sysctl(ns, IPV6, 0)
    assert run_rule("ip-forward-disabled", d.build()) == []


def test_ipv6_forwarding_off_on_a_host_that_routes_for_an_ipv6_container():
    d = ipv6_docker_host()
    d.b.sysctl(d.host, IPV6, 0)
    (finding,) = run_rule("ip-forward-disabled", d.build())
    assert finding.namespace.id == d.host and finding.subject == IPV6
    assert "gateway (fd00:db8::1 on br-web) of route default in web" in finding.message
    assert "NATs (MASQUERADE: -A POSTROUTING -s fd00:db8::/64" in finding.message
    assert "drops every IPv6 packet it should forward" in finding.message
    assert "IPv6 network web" not in finding.message  # its container said it already
    assert finding.related == (d.web,)
    assert finding.repair.steps == (SetSysctl(d.host, IPV6, "1"),)
    assert [e.key for e in finding.evidence][0] == IPV6


def test_a_link_local_gateway_counts():
    d = ipv6_docker_host(gateway="fe80::1")
    d.b.sysctl(d.host, IPV6, 0)
    (finding,) = run_rule("ip-forward-disabled", d.build())
    assert "gateway (fe80::1 on br-web) of route default in web" in finding.message


def test_ipv4_and_ipv6_are_switched_separately():
    d = ipv6_docker_host()
    d.b.sysctl(d.host, "net.ipv4.ip_forward", 0)
    (finding,) = run_rule("ip-forward-disabled", d.build())
    assert finding.subject == "net.ipv4.ip_forward"
    assert "fd00:db8" not in finding.message  # IPv4's reasons only
    d.b.sysctl(d.host, IPV6, 0)
    assert {f.subject for f in run_rule("ip-forward-disabled", d.build())} == {
        "net.ipv4.ip_forward", IPV6}


def test_an_ipv6_docker_network_without_containers_yet():
    d = ipv6_docker_host(container=False)
    d.b.sysctl(d.host, IPV6, 0)
    (finding,) = run_rule("ip-forward-disabled", d.build())
    assert "has the IPv6 network web of Docker (test) on br-web" in finding.message
    assert any(e.kind == "docker" and e.key == "web" for e in finding.evidence)


def test_internal_or_isolated_ipv6_networks_need_no_forwarding():
    for change in ({"internal": True},
                   {"options": (("com.docker.network.bridge.name", "br-web"),
                                ("com.docker.network.bridge.gateway_mode_ipv6", "isolated"))}):
        d = ipv6_docker_host(container=False, nat66=False)  # Docker makes none for them
        d.b.sysctl(d.host, IPV6, 0)
        assert len(run_rule("ip-forward-disabled", d.build())) == 1  # as a network that routes
        engine = d.b.docker[0]
        d.intent(networks=tuple(replace(n, **change) if n.name == "web" else n
                                for n in engine.networks))
        assert run_rule("ip-forward-disabled", d.build()) == []


def test_force_forwarding_on_the_gateway_interface_forwards_anyway():
    d = ipv6_docker_host()
    d.b.sysctl(d.host, IPV6, 0)
    d.b.sysctl(d.host, "net.ipv6.conf.br-web.force_forwarding", 1)
    assert run_rule("ip-forward-disabled", d.build()) == []


def test_ipv6_nat_alone_makes_a_router():
    b = SnapshotBuilder()
    router = b.namespace("nat6")
    b.sysctl(router, "net.ipv4.ip_forward", 0).sysctl(router, IPV6, 0)
    b.iptables(router, "nat", "-A POSTROUTING -s fd00:7::/64 -j MASQUERADE", family=6)
    (finding,) = run_rule("ip-forward-disabled", b.build())
    assert finding.subject == IPV6
    assert [e.key for e in finding.evidence] == [IPV6, "nat/POSTROUTING/1"]


def test_an_ipv6_stub_with_link_local_routes_only_is_no_router():
    # Every interface has its fe80::/64 route: that is no way on for forwarded packets.
    b = SnapshotBuilder()
    stub, client = b.namespace("stub"), b.namespace("client")
    b.veth(client, "eth0", stub, "eth0", address="fd00:5::2/64")
    b.address(stub, "eth0", "fd00:5::1/64")
    b.link(stub, "eth1", address="fe80::1/64")
    b.route(client, "default", gateway="fd00:5::1", dev="eth0", family=6)
    b.sysctl(stub, IPV6, 0)
    assert run_rule("ip-forward-disabled", b.build()) == []
    b.address(stub, "eth1", "2001:db8:9::1/64")  # now it has somewhere to forward to
    (finding,) = run_rule("ip-forward-disabled", b.build())
    assert finding.namespace.id == stub and finding.subject == IPV6


@pytest.mark.parametrize("ifname, comes_in", [("br-web", "packets from them come in"),
                                              ("eth0", "their replies come in")])
def test_ipv4_forwarding_off_on_one_interface(ifname, comes_in):
    d = docker_host()
    name = f"net.ipv4.conf.{ifname}.forwarding"
    for interface in ("eth0", "br-web", "br-int", "docker0"):
        d.b.sysctl(d.host, f"net.ipv4.conf.{interface}.forwarding", 1)
    d.b.sysctl(d.host, name, 0)
    (finding,) = run_rule("ip-forward-disabled", d.build())
    assert finding.namespace.id == d.host and finding.subject == name
    assert f"{comes_in} by {ifname}" in finding.message
    assert "gateway (172.18.0.1 on br-web) of route default in web" in finding.message
    assert {e.key for e in finding.evidence} >= {"net.ipv4.ip_forward", name}
    assert finding.repair.steps == (SetSysctl(d.host, name, "1"),)


def test_an_interface_nobody_routes_by_may_have_forwarding_off():
    d = docker_host()
    d.b.sysctl(d.host, "net.ipv4.conf.br-int.forwarding", 0)  # internal: nobody routes by it
    d.b.sysctl(d.host, "net.ipv4.conf.docker0.forwarding", 0)  # no containers
    assert run_rule("ip-forward-disabled", d.build()) == []
