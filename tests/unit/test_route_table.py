"""RouteTable's longest-prefix match: its inlined parsing of "a.b.c.d/len" must agree with
route_family_dst, the general parser, on every form a route's destination takes."""

from __future__ import annotations

import pytest

from netdiag.model import Route
from netdiag.model.index import RouteTable, ip_int, route_family_dst


def reference(routes: list[Route], family: int, address: str) -> Route | None:
    """The most specific usable route to `address`, lowest metric first: by brute force."""
    _, value = ip_int(address)
    best = None
    for route in routes:
        if route.type not in ("unicast", "blackhole", "unreachable", "prohibit", "local"):
            continue
        _, first, last, prefixlen = route_family_dst(route)
        if not first <= value <= last:
            continue
        if best is None or prefixlen > best[0] or (prefixlen == best[0]
                                                   and route.metric < best[1].metric):
            best = (prefixlen, route)
    return best[1] if best else None


V4 = [
    Route(family=4, dst="default", gateway="192.0.2.1", dev="eth0"),
    Route(family=4, dst="10.0.0.0/8", dev="eth1", metric=100),
    Route(family=4, dst="10.0.0.0/8", dev="eth2", metric=50),  # lower metric wins
    Route(family=4, dst="10.1.2.3/16", dev="eth3"),  # host bits set: the network 10.1.0.0/16
    Route(family=4, dst="10.1.2.3", dev="eth4"),  # no length: a host route
    Route(family=4, dst="10.1.2.0/24", type="throw", dev="eth5"),  # not usable: skipped
    Route(family=4, dst="10.9.0.0/16", type="blackhole"),
    Route(family=4, dst="0.0.0.0/0", dev="eth6", metric=10),
]
V6 = [
    Route(family=6, dst="default", gateway="fe80::1", dev="eth0"),
    Route(family=6, dst="2001:db8::/32", dev="eth1"),
    Route(family=6, dst="2001:0db8:0001::/48", dev="eth2"),  # not in canonical form
    Route(family=6, dst="2001:db8:1:2::5/64", dev="eth3"),  # host bits set
]


@pytest.mark.parametrize("address", ["10.1.2.3", "10.1.2.4", "10.1.9.9", "10.200.0.1",
                                     "10.9.1.1", "192.0.2.7", "198.51.100.8"])
def test_ipv4_lookup_agrees_with_the_general_parser(address):
    _, value = ip_int(address)
    assert RouteTable(4, V4).lookup(value) == reference(V4, 4, address)


@pytest.mark.parametrize("address", ["2001:db8::1", "2001:db8:1::1", "2001:db8:1:2::99",
                                     "2001:db8:1:3::1", "2a00::1"])
def test_ipv6_lookup_agrees_with_the_general_parser(address):
    _, value = ip_int(address)
    assert RouteTable(6, V6).lookup(value) == reference(V6, 6, address)


def test_the_expected_routes_are_chosen():
    table = RouteTable(4, V4)
    assert table.lookup(ip_int("10.1.2.3")[1]).dev == "eth4"
    assert table.lookup(ip_int("10.1.77.1")[1]).dev == "eth3"
    assert table.lookup(ip_int("10.7.0.1")[1]).dev == "eth2"
    assert table.lookup(ip_int("10.1.2.9")[1]).dev == "eth3"  # the throw route is skipped
