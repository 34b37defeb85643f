"""The macvlan driver through the controller, with packets: bridge-mode children of one parent
reach each other, private-mode children do not, an internal network (no parent) works on the
veth parent the driver makes, an 802.1q parent fails clearly on this kernel without 8021q, and
check() finds a wrong MTU and a missing child."""

from __future__ import annotations

from pathlib import Path

import pytest

from netdiag.drivers.controller import Controller
from netdiag.errors import KernelFeatureMissing
from netdiag.store import SqliteStore
from tests.conftest import pings, sh

pytestmark = pytest.mark.integration


@pytest.fixture
def host(netns_factory, tmp_path):
    """A host namespace whose eth1 (a veth to a 'switch' namespace) is the macvlan parent."""
    host, switch = netns_factory("host"), netns_factory("sw")
    sh(f"ip -n {host} link add eth1 type veth peer name port netns {switch}")
    sh(f"ip -n {host} link set eth1 up && ip -n {switch} link set port up")
    store = SqliteStore(tmp_path / "drivers.db")
    try:
        yield Controller(store), host, netns_factory
    finally:
        store.close()


def test_bridge_mode_children_reach_each_other(host):
    ctl, host_ns, make = host
    network = ctl.create_network("mv", host_ns, "macvlan", subnet="192.168.77.0/24",
                                 options={"parent": "eth1"})
    c1, c2 = make("c1"), make("c2")
    e1 = ctl.connect("mv", c1, host=host_ns)
    e2 = ctl.connect("mv", c2, host=host_ns)
    assert "macvlan mode bridge" in sh(f"ip -d -n {c1} link show eth0")
    assert e1.mac == "02:42:c0:a8:4d:02"
    assert pings(c1, e2.ip) and pings(c2, e1.ip)
    assert "default via 192.168.77.1" in sh(f"ip -n {c1} route")
    assert list(ctl.check("mv", host_ns)) == []
    ctl.disconnect("mv", e2.id, host=host_ns)
    assert "eth0" not in sh(f"ip -n {c2} link")
    assert network.driver == "macvlan"


def test_private_mode_children_are_isolated(host):
    ctl, host_ns, make = host
    ctl.create_network("mvp", host_ns, "macvlan", subnet="192.168.78.0/24",
                       options={"parent": "eth1", "macvlan_mode": "private"})
    c1, c2 = make("c1"), make("c2")
    ctl.connect("mvp", c1, host=host_ns)
    e2 = ctl.connect("mvp", c2, host=host_ns)
    assert "macvlan mode private" in sh(f"ip -d -n {c1} link show eth0")
    assert not pings(c1, e2.ip)


def test_internal_network_without_parent(host):
    ctl, host_ns, make = host
    network = ctl.create_network("mvi", host_ns, "macvlan", subnet="192.168.79.0/24")
    assert network.internal
    parent = network.option("parent")
    assert parent.startswith("dm-") and parent in sh(f"ip -n {host_ns} link")
    c1, c2 = make("c1"), make("c2")
    ctl.connect("mvi", c1, host=host_ns)
    e2 = ctl.connect("mvi", c2, host=host_ns)
    assert pings(c1, e2.ip)
    assert "default" not in sh(f"ip -n {c1} route")
    ctl.delete_network("mvi", host_ns, force=True)
    assert parent not in sh(f"ip -n {host_ns} link")


def test_vlan_parent_fails_clearly_without_8021q(host):
    ctl, host_ns, _ = host
    with pytest.raises(KernelFeatureMissing, match=r"eth1\.10.*lacks 802\.1q"):
        ctl.create_network("mvv", host_ns, "macvlan", subnet="192.168.80.0/24",
                           options={"parent": "eth1.10"})
    assert ctl.networks(host_ns) == []  # nothing left behind


def test_check_finds_wrong_mtu_and_missing_child(host):
    ctl, host_ns, make = host
    ctl.create_network("mv", host_ns, "macvlan", subnet="192.168.77.0/24",
                       options={"parent": "eth1"})
    c1, c2 = make("c1"), make("c2")
    ctl.connect("mv", c1, host=host_ns)
    ctl.connect("mv", c2, host=host_ns)
    sh(f"ip -n {c1} link set eth0 mtu 1400")
    sh(f"ip -n {c2} link del eth0")
    findings = ctl.check("mv", host_ns)
    assert sorted((f.rule, Path(f.namespace.path).name) for f in findings) == [
        ("driver-device-missing", c2), ("driver-mtu-differs", c1)]
    mtu = next(f for f in findings if f.rule == "driver-mtu-differs")
    assert mtu.repair.steps[0].command(c1) == f"ip netns exec {c1} ip link set dev eth0 mtu 1500"
