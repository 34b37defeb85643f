"""The shared topology index: address arithmetic, route lookup, peers, segments, underlays
(fixtures, no root)."""

import pytest

from netdiag.model import NsKind
from netdiag.model.index import InterfaceRef, format_network, index, ip_int, network_interval
from tests.fixtures.builder import SnapshotBuilder


@pytest.mark.parametrize("address, expected", [
    ("10.0.0.1", (4, 0x0A000001)),
    ("255.255.255.255", (4, 0xFFFFFFFF)),
    ("fe80::1", (6, (0xFE80 << 112) | 1)),
    ("fe80::1%eth0", (6, (0xFE80 << 112) | 1)),
])
def test_ip_int(address, expected):
    assert ip_int(address) == expected


@pytest.mark.parametrize("bad", ["1.2.3", "10.0.0.256", "", "eth0", "1.2.3.4.5"])
def test_ip_int_rejects_what_is_not_an_address(bad):
    with pytest.raises(ValueError):
        ip_int(bad)


def test_network_interval_and_format():
    assert network_interval("10.1.2.3/16") == (4, 0x0A010000, 0x0A01FFFF, 16)
    assert network_interval("default") == (4, 0, 2**32 - 1, 0)
    assert network_interval("10.0.0.7") == (4, 0x0A000007, 0x0A000007, 32)
    family, first, last, prefixlen = network_interval("fd00::/64")
    assert (family, prefixlen, last - first) == (6, 64, 2**64 - 1)
    assert format_network(family, first, prefixlen) == "fd00::/64"


def routed_host():
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="192.168.1.10/24")
    b.link(host, "tun0", kind="tun", address="10.99.0.2/24")
    b.route(host, "default", gateway="192.168.1.1", dev="eth0", metric=100)
    b.route(host, "default", gateway="10.99.0.1", dev="tun0", metric=50)
    b.route(host, "10.0.0.0/8", gateway="10.99.0.1", dev="tun0")
    b.route(host, "10.20.0.0/16", dev="eth0", type="blackhole")
    b.route(host, "172.16.0.0/12", gateway="10.99.0.1", dev="tun0", table=100)
    return b.build(), host


def test_longest_prefix_match_in_the_main_table():
    snapshot, host = routed_host()
    topo = index(snapshot)
    assert topo.lookup_route(host, "10.99.0.77").dst == "10.99.0.0/24"
    assert topo.lookup_route(host, "10.5.0.1").dst == "10.0.0.0/8"
    assert topo.lookup_route(host, "10.20.3.4").type == "blackhole"
    assert topo.lookup_route(host, "172.16.0.1").gateway == "10.99.0.1"  # via default, metric 50
    assert topo.lookup_route(host, "172.16.0.1", table=100).dst == "172.16.0.0/12"
    assert topo.lookup_route(host, "fd00::1") is None
    route, link = topo.egress(host, "8.8.8.8")
    assert (route.dev, link.name) == ("tun0", "tun0")
    assert topo.default_route(host).metric == 50


def test_index_is_shared_by_the_rules_of_one_run():
    snapshot, _ = routed_host()
    assert index(snapshot) is index(snapshot)


def test_peers_ports_segments_and_attached_containers():
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br0", "10.0.0.1/24")
    web, db = b.container("web"), b.container("db")
    b.veth(web, "eth0", host, "v1", peer_master="br0")
    b.veth(db, "eth0", host, "v2", peer_master="br0")
    lab = b.namespace("lab", kind=NsKind.LAB)
    b.veth(lab, "eth0", host, "v3")  # not on the bridge
    topo = index(b.build())
    peer_ns, peer = topo.peer(web, topo.link(web, "eth0"))
    assert (peer_ns, peer.name) == (host, "v1")
    assert [p.name for p in topo.bridge_ports(host, "br0")] == ["v1", "v2"]
    assert set(topo.segment(web, "eth0")) == {InterfaceRef(web, "eth0"), InterfaceRef(host, "v1"),
                                             InterfaceRef(host, "br0"), InterfaceRef(host, "v2"),
                                             InterfaceRef(db, "eth0")}
    assert topo.same_segment(InterfaceRef(web, "eth0"), InterfaceRef(db, "eth0"))
    assert not topo.same_segment(InterfaceRef(web, "eth0"), InterfaceRef(lab, "eth0"))
    assert [ref.display for ref in topo.attached(host, "br0")] == ["db", "web"]


def test_vxlan_underlay_namespace():
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="10.0.0.1/24")
    here = b.namespace("here")
    b.vxlan(here, "vx-local", vni=1, local="10.0.0.1")  # its local address is the host's
    b.vxlan(here, "vx-own", vni=2)  # never moved: routed where it is
    b.vxlan(here, "vx-moved", vni=3, moved=True)  # moved, netnsid unresolved: the host's
    topo = index(b.build())
    assert topo.underlay(here, topo.link(here, "vx-local")) == host
    assert topo.underlay(here, topo.link(here, "vx-own")) == here
    assert topo.underlay(here, topo.link(here, "vx-moved")) == host
