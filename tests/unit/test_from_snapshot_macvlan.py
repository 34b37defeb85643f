"""`lab from-snapshot` rebuilds macvlan networks as it rebuilds bridge and overlay ones: the
macvlan children in containers grouped by their lower device on a host, with the parent, the
mode, the subnet and gateway (the children's default route), the IPv6 subnet of a dual-stack
one, and an internal one (the driver's own `dm-` parent, no route) without a parent. Held on
a saved snapshot of a real lab (tests/fixtures/lab_macvlan) and on a built one."""

from __future__ import annotations

from pathlib import Path

from netdiag.lab.from_snapshot import topology_from
from netdiag.model import MacvlanInfo
from netdiag.model.serialize import load
from netdiag.topology import schema
from tests.fixtures.builder import SnapshotBuilder

SAVED = Path(__file__).parents[1] / "fixtures" / "lab_macvlan" / "healthy.json"


def _child(b: SnapshotBuilder, name: str, host: int, parent: str, cidr: str, mode: str = "bridge",
           mtu: int = 1500, cidr6: str = "", gateway: str = "") -> int:
    ns = b.container(name)
    b.link(ns, "lo", kind="loopback")
    b.link(ns, "eth0", kind="macvlan", mtu=mtu, peer_namespace=host, peer_name=parent,
           macvlan=MacvlanInfo(mode), address=cidr)
    if cidr6:
        b.address(ns, "eth0", cidr6)
    if gateway:
        b.route(ns, "default", dev="eth0", gateway=gateway)
    return ns


def _snapshot():
    b = SnapshotBuilder()
    host = b.namespace("host1")
    b.link(host, "lo", kind="loopback")
    b.link(host, "eth0", address="10.99.0.1/24")
    b.veth(host, "dm-0123456789ab", host, "dp-0123456789ab")  # the driver's internal parent
    _child(b, "a", host, "eth0", "192.168.77.2/24", cidr6="fd00:77::2/64",
           gateway="192.168.77.1")
    _child(b, "c", host, "eth0", "192.168.77.3/24", cidr6="fd00:77::3/64",
           gateway="192.168.77.1")
    _child(b, "p", host, "dm-0123456789ab", "10.50.0.2/24", mode="private", mtu=1400)
    return b.build()


def test_macvlan_networks_are_rebuilt_with_their_parent_mode_and_subnets():
    topology = topology_from(_snapshot(), "again")
    assert topology["networks"] == [  # by lower device: dm-… before eth0
        {"name": "macvlan1", "driver": "macvlan", "subnet": "10.50.0.0/24", "hosts": ["host1"],
         "mode": "private", "mtu": 1400},
        {"name": "macvlan2", "driver": "macvlan", "subnet": "192.168.77.0/24",
         "gateway": "192.168.77.1", "hosts": ["host1"], "parent": "eth0",
         "subnet6": "fd00:77::/64"}]
    assert {c["name"]: c["networks"] for c in topology["containers"]} == {
        "a": [{"network": "macvlan2", "ip": "192.168.77.2"}],
        "c": [{"network": "macvlan2", "ip": "192.168.77.3"}],
        "p": [{"network": "macvlan1", "ip": "10.50.0.2"}]}
    assert {c["host"] for c in topology["containers"]} == {"host1"}
    schema.Topology.model_validate(topology)  # a lab can be built from it


def test_a_real_macvlan_lab_is_rebuilt_from_its_saved_snapshot():
    topology = topology_from(load(SAVED), "again")
    # host1 only: the underlay's switch (ul) is no host, and host1 no container of it
    assert topology["hosts"] == [{"name": "host1"}]
    assert topology["networks"] == [
        {"name": "macvlan1", "driver": "macvlan", "subnet": "10.50.0.0/24", "hosts": ["host1"],
         "mode": "private", "mtu": 1400},
        {"name": "macvlan2", "driver": "macvlan", "subnet": "192.168.77.0/24",
         "gateway": "192.168.77.1", "hosts": ["host1"], "parent": "eth0",
         "subnet6": "fd00:77::/64"}]
    assert {c["name"]: (c["host"], c["networks"]) for c in topology["containers"]} == {
        "a": ("host1", [{"network": "macvlan2", "ip": "192.168.77.2"}]),
        "c": ("host1", [{"network": "macvlan1", "ip": "10.50.0.2"},
                        {"network": "macvlan2", "ip": "192.168.77.3"}])}
    schema.Topology.model_validate(topology)
