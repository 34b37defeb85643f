"""overlapping-subnets over IPv6, on the snapshot of a real dual-stack Docker 28 host
(tests/fixtures/docker28_ipv6/README.md), whose routes are the kernel's own: IPv6 prefix routes
have scope global (not link, as IPv4's), and every interface has fe80::/64 — neither is an
overlap. A route over the bridges' ULA prefixes (a VPN's fd00::/12) is."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netdiag.model import Address, Link, Route
from netdiag.model.serialize import load
from tests.fixtures.rules import run_rule

HEALTHY = Path(__file__).parents[2] / "fixtures" / "docker28_ipv6" / "healthy.json"
SIX, INT6 = "br-7b1dc4a285a6", "br-a3715bd006b1"  # fd00:29::/64 (web, app), fd00:30::/64 (db)


@pytest.fixture(scope="module")
def healthy():
    return load(HEALTHY)


def _host_changed(snapshot, **more):
    """The engine's namespace with these added: routes=(...), links=(...), addresses=(...)."""
    ns_id = snapshot.docker[0].namespace
    return replace(snapshot, namespaces=tuple(
        replace(s, **{k: getattr(s, k) + v for k, v in more.items()}) if s.ref.id == ns_id
        else s for s in snapshot.namespaces))


def test_kernel_prefix_routes_and_link_local_addresses_are_no_overlap(healthy):
    host = healthy.namespace(healthy.docker[0].namespace)
    kernel6 = [r for r in host.routes if r.family == 6 and r.protocol == "kernel"
               and r.table == 254]
    assert {r.scope for r in kernel6} == {"global"}  # as the kernel gives them
    assert sum(r.dst == "fe80::/64" for r in kernel6) >= 4  # one per interface
    assert run_rule("overlapping-subnets", healthy) == []


def test_a_route_over_the_ipv6_bridges_prefixes(healthy):
    vpn = Route(6, "fd00::/12", protocol="boot", dev="up0", gateway="fd00:19:29::1",
                metric=1024)
    found = {f.subject: f.message for f in run_rule("overlapping-subnets",
                                                     _host_changed(healthy, routes=(vpn,)))}
    assert set(found) == {SIX, INT6}
    assert found[SIX].startswith("fd00:29::/64 on br-7b1dc4a285a6 overlaps route fd00::/12 "
                                 "via fd00:19:29::1 dev up0: traffic to fd00:29::/64 takes "
                                 "br-7b1dc4a285a6, so fd00:29::/64 behind up0 is shadowed")
    assert found[SIX].endswith("serves app, web")


def test_two_interfaces_with_nested_ipv6_prefixes_are_one_finding(healthy):
    """A /48 on a second bridge holds the network's /64: one finding, not one more per kernel
    prefix route of each."""
    index = 99
    snapshot = _host_changed(
        healthy, links=(Link(index=index, name="br-other", kind="bridge", mtu=1500,
                             admin_up=True, oper_state="up", flags=("UP", "LOWER_UP")),),
        addresses=(Address(ifindex=index, ifname="br-other", family=6,
                           address="fd00:29:0:ff::1", prefixlen=48),),
        routes=(Route(6, "fd00:29::/48", protocol="kernel", scope="global", dev="br-other",
                      metric=256),))
    [finding] = run_rule("overlapping-subnets", snapshot)
    assert finding.message.startswith("fd00:29::/64 on br-7b1dc4a285a6 overlaps fd00:29::/48 "
                                      "on br-other: traffic to fd00:29::/64 takes "
                                      "br-7b1dc4a285a6")
