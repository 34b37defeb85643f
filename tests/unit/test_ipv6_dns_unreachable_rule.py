"""dns-unreachable on IPv6 nameservers (issue 29: every rule that reasons about DNS does so
for both families): a pass/fail pair each for an IPv6 nameserver without an IPv6 route (an
IPv4 default route is no way to it), behind an `unreachable` IPv6 route, and a local `::1`
nameserver with nothing listening."""

from __future__ import annotations

from netdiag.checks.dns import dns_unreachable as rule
from tests.fixtures.builder import SnapshotBuilder
from tests.unit.rules.part2_fixtures import run
from tests.unit.rules.test_dns_unreachable import with_dns

SERVER6 = "fd00:53::53"


def dual_stack_container(ipv6_default_route: bool = True):
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br0", "172.18.0.1/16")
    b.address(host, "br0", "fd00:18::1/64")
    web = b.container("web")
    b.veth(web, "eth0", host, "veth1", master="", peer_master="br0", address="172.18.0.2/16")
    b.address(web, "eth0", "fd00:18::2/64")
    b.route(web, "default", gateway="172.18.0.1", dev="eth0")
    if ipv6_default_route:
        b.route(web, "default", gateway="fd00:18::1", dev="eth0", family=6)
    return b, web


def test_an_ipv6_nameserver_without_an_ipv6_route_fires():
    b, web = dual_stack_container(ipv6_default_route=False)
    (finding,) = run(rule, with_dns(b, web, SERVER6))
    assert finding.subject == SERVER6 and "no route" in finding.message


def test_an_ipv6_nameserver_behind_the_ipv6_default_route_passes():
    b, web = dual_stack_container()
    assert run(rule, with_dns(b, web, SERVER6, "fd00:18::1")) == []


def test_an_ipv6_nameserver_behind_an_unreachable_route_fires():
    b, web = dual_stack_container()
    b.route(web, "fd00:53::/64", type="unreachable", family=6)
    (finding,) = run(rule, with_dns(b, web, SERVER6))
    assert "unreachable" in finding.message
    assert finding.evidence[1].key == "fd00:53::/64"


def test_the_ipv6_loopback_nameserver_needs_a_listener():
    b, web = dual_stack_container()
    (finding,) = run(rule, with_dns(b, web, "::1"))
    assert finding.subject == "::1"
    b.socket(web, "udp", "::1", 53, process="unbound")
    assert run(rule, with_dns(b, web, "::1")) == []
