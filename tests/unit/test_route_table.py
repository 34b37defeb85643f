"""RouteTable's longest-prefix match: its inlined parsing of "a.b.c.d/len" must agree with
route_family_dst, the general parser, on every form a route's destination takes, whether the
table is split by the destinations' first part (as netlink writes them) or parsed at once."""

from __future__ import annotations

import ipaddress
import random

import pytest

from netdiag.model import HostInfo, NamespaceRef, NamespaceState, NsKind, Route, Snapshot
from netdiag.model.index import RouteTable, _split, index, ip_int, route_family_dst


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


def random_table(rng: random.Random, family: int, count: int, odd: bool) -> list[Route]:
    """Routes as netlink writes them ("a.b.c.d/len", the masked network), a few clustered so
    that prefixes nest and repeat with other metrics; with `odd`, also hand-written forms."""
    width = 32 if family == 4 else 128
    bases = [rng.getrandbits(width) for _ in range(4)]
    routes = []
    for _ in range(count):
        length = rng.choice([0, 1, 7, 8, 9, 15, 16, 17, 24, 31, width, *range(8, width + 1, 4)])
        value = rng.choice(bases) ^ rng.getrandbits(rng.choice([4, 12, 20, width]))
        value &= ((1 << width) - 1) ^ ((1 << (width - length)) - 1)
        text = str(ipaddress.ip_address(value) if family == 4 else ipaddress.IPv6Address(value))
        routes.append(Route(family=family, dst=f"{text}/{length}", metric=rng.choice([0, 5, 100]),
                            type=rng.choice(["unicast"] * 6 + ["blackhole", "throw"]),
                            dev=f"eth{len(routes)}"))
    routes.append(Route(family=family, dst="default", metric=rng.choice([0, 5]), dev="up0"))
    if odd:  # (with a host route written without its length: the form the split cannot place)
        routes += V4 if family == 4 else [*V6, Route(family=6, dst="2001:db8::7", dev="eth7")]
        rng.shuffle(routes)
    return routes


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("odd", [False, True])
def test_random_tables_agree_with_brute_force(family, odd):
    """The split-by-first-part table (canonical destinations) and the parsed-at-once one
    (any other form present) give the brute-force answer for addresses in and around them."""
    rng = random.Random(f"{family}{odd}")
    for _ in range(10):
        routes = random_table(rng, family, 80, odd)
        assert (_split(family, routes) is None) == odd  # each path is the one under test
        table = RouteTable(family, routes)
        width = 32 if family == 4 else 128
        probes = [ip_int(r.dst.partition("/")[0])[1] for r in routes if r.dst != "default"]
        probes = [p ^ rng.getrandbits(rng.choice([1, 8, 16, width])) for p in probes]
        for value in probes:
            address = str(ipaddress.ip_address(value) if family == 4
                          else ipaddress.IPv6Address(value))
            assert table.lookup(value) == reference(routes, family, address), address


@pytest.mark.parametrize("dst", ["db8:1::/32", "0db8:1::/32", "0DB8:1::/32", "DB8:1::/32"])
def test_a_first_group_written_another_way_is_found(dst):
    """Leading zeros and capitals are valid IPv6 text that the split would file apart from
    where lookup looks: such a table is parsed at once."""
    routes = [Route(family=6, dst="default", dev="up0"), Route(family=6, dst=dst, dev="eth1")]
    assert RouteTable(6, routes).lookup(ip_int("db8:1::5")[1]).dev == "eth1"


@pytest.mark.parametrize("odd", [False, True])
def test_default_route_is_the_lowest_metric_unicast_default_of_the_main_table(odd):
    rng = random.Random(f"defaults{odd}")
    for _ in range(10):
        routes = [*random_table(rng, 4, 40, odd), *random_table(rng, 6, 40, odd)]
        routes += [Route(family=rng.choice([4, 6]), dst=rng.choice(["default", "0.0.0.0/0",
                                                                    "::/0"]),
                         table=rng.choice([254, 254, 100]), metric=rng.choice([0, 5, 100]),
                         type=rng.choice(["unicast", "unicast", "blackhole"]),
                         dev=f"d{n}") for n in range(6)]
        rng.shuffle(routes)
        state = NamespaceState(ref=NamespaceRef(id=1, kind=NsKind.HOST, path="/proc/1/ns/net"),
                               routes=tuple(routes))
        topo = index(Snapshot(created_at="", host=HostInfo(hostname="h"), namespaces=(state,)))
        for family in (4, 6):
            candidates = [r for r in routes if r.family == family and r.table == 254
                          and r.type == "unicast" and (r.dst == "default" or r.dst.endswith("/0"))]
            assert topo.default_route(1, family) == min(candidates, key=lambda r: r.metric,
                                                        default=None)
