"""The repair executor changes exactly what a plan says, in the namespace it names, and
nothing outside the namespaces its policy allows; its policy is the one repair policy."""

import json
import os

import pytest

from netdiag.findings.repair import (
    AddIptablesRule,
    DeleteFdbEntry,
    DeleteRoute,
    ManualStep,
    Repair,
    Safety,
    SetChainPolicy,
    SetMtu,
    SetSysctl,
)
from netdiag.model import HostInfo, NamespaceRef, NamespaceState, NsKind, Snapshot
from netdiag.repair.executor import Policy, describe, execute
from tests.conftest import sh

pytestmark = pytest.mark.integration


def snapshot_of(*names: str) -> Snapshot:
    states = tuple(
        NamespaceState(ref=NamespaceRef(id=os.stat(f"/run/netns/{n}").st_ino, kind=NsKind.NAMED,
                                        path=f"/run/netns/{n}", name=n, label=n))
        for n in names)
    return Snapshot(created_at="", host=HostInfo(), namespaces=states)


def inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


def test_steps_change_the_named_namespace(netns_factory):
    a = netns_factory("a")
    sh(f"ip -n {a} link add v0 mtu 1400 type veth peer name v1 mtu 1500")
    sh(f"ip -n {a} link add vx0 type vxlan id 42 dstport 4789 local 10.9.0.1")
    sh(f"ip -n {a} link set v0 up && ip -n {a} addr add 10.9.0.1/24 dev v0")
    sh(f"ip -n {a} route add 10.77.0.0/16 dev v0")
    sh(f"bridge -n {a} fdb append 00:00:00:00:00:00 dev vx0 dst 10.9.0.2 self permanent")
    ns = inode(a)
    steps = [SetMtu(ns, "v0", 1500), DeleteRoute(ns, "10.77.0.0/16", dev="v0"),
             DeleteFdbEntry(ns, "vx0", "00:00:00:00:00:00", dst="10.9.0.2"),
             SetSysctl(ns, "net.ipv4.ip_forward", "1"),
             AddIptablesRule(ns, "filter", "FORWARD", ("-i", "v0", "-j", "ACCEPT")),
             SetChainPolicy(ns, "filter", "INPUT", "DROP")]
    results = execute(Repair("all kinds", Safety.SAFE, tuple(steps)), snapshot_of(a),
                      Policy(frozenset((ns,))))
    assert [r.applied for r in results] == [True] * len(steps), results

    link = json.loads(sh(f"ip -n {a} -j link show v0"))[0]
    assert link["mtu"] == 1500
    assert "10.77.0.0/16" not in sh(f"ip -n {a} route")
    assert "10.9.0.2" not in sh(f"bridge -n {a} fdb show dev vx0")
    assert sh(f"ip netns exec {a} sysctl -n net.ipv4.ip_forward").strip() == "1"
    rules = sh(f"ip netns exec {a} iptables-save")
    assert "-A FORWARD -i v0 -j ACCEPT" in rules and ":INPUT DROP" in rules


def test_route_link_fdb_and_neighbour_steps_over_netlink(netns_factory):
    """The steps written over netdiag's own netlink requests, each checked with ip(8)."""
    from netdiag.findings.repair import (
        AddFdbEntry,
        AddRoute,
        DeleteNeighbour,
        ReplaceNeighbour,
        SetLinkUp,
    )

    a = netns_factory("a")
    sh(f"ip -n {a} link add v0 type veth peer name v1")
    sh(f"ip -n {a} link add vx0 type vxlan id 42 dstport 4789 local 10.9.0.1")
    sh(f"ip -n {a} link set v1 up && ip -n {a} addr add 10.9.0.1/24 dev v0")
    sh(f"ip -n {a} neigh add 10.9.0.7 lladdr 02:00:00:00:00:07 dev v0 nud permanent")
    ns = inode(a)
    steps = (SetLinkUp(ns, "v0"),
             AddRoute(ns, "default", dev="v0", gateway="10.9.0.254"),
             AddRoute(ns, "10.88.0.0/16", dev="v0", table=1000, metric=7),
             AddFdbEntry(ns, "vx0", "02:42:0a:00:00:05", dst="10.9.0.2"),
             ReplaceNeighbour(ns, "v0", "10.9.0.5", "02:42:0a:00:00:05"),
             DeleteNeighbour(ns, "v0", "10.9.0.7"))
    results = execute(Repair("more kinds", Safety.SAFE, steps), snapshot_of(a),
                      Policy(frozenset((ns,))))
    assert [r.applied for r in results] == [True] * len(steps), results
    assert "UP" in json.loads(sh(f"ip -n {a} -j link show v0"))[0]["flags"]
    assert "default via 10.9.0.254 dev v0" in sh(f"ip -n {a} route")
    assert "10.88.0.0/16 dev v0 scope link metric 7" in sh(f"ip -n {a} route show table 1000")
    assert "02:42:0a:00:00:05 dst 10.9.0.2 self permanent" in sh(f"bridge -n {a} fdb show dev vx0")
    neighbours = sh(f"ip -n {a} neigh show dev v0")
    assert "10.9.0.5 lladdr 02:42:0a:00:00:05 PERMANENT" in neighbours
    assert "10.9.0.7" not in neighbours
    again = execute(Repair("twice", Safety.SAFE, steps[1:2]), snapshot_of(a),
                    Policy(frozenset((ns,))))
    assert not again[0].applied and "kernel refused: File exists" in again[0].message


def test_namespaces_outside_the_allowed_set_are_not_touched(netns_factory):
    a = netns_factory("a")
    sh(f"ip -n {a} link add v0 mtu 1400 type veth peer name v1")
    b = netns_factory("b")
    sh(f"ip -n {b} link add v0 mtu 1400 type veth peer name v1")
    both = Repair("both", Safety.SAFE, (SetMtu(inode(a), "v0", 1500), SetMtu(inode(b), "v0", 1500)))
    results = execute(both, snapshot_of(a, b), Policy(frozenset((inode(a),))))
    assert not any(r.applied for r in results)  # refused whole: never half a repair
    assert f"it would change {b}, outside" in results[0].message
    for name in (a, b):
        assert json.loads(sh(f"ip -n {name} -j link show v0"))[0]["mtu"] == 1400


def test_unsafe_and_manual_repairs_follow_the_policy(netns_factory):
    a = netns_factory("a")
    sh(f"ip -n {a} link add v0 mtu 1400 type veth peer name v1")
    unsafe = Repair("raise it", Safety.UNSAFE, (SetMtu(inode(a), "v0", 1500),))
    refused = execute(unsafe, snapshot_of(a), Policy(frozenset((inode(a),))))
    assert not refused[0].applied and "needs --unsafe" in refused[0].message
    assert json.loads(sh(f"ip -n {a} -j link show v0"))[0]["mtu"] == 1400
    applied = execute(unsafe, snapshot_of(a), Policy(frozenset((inode(a),)), unsafe=True))
    assert applied[0].applied
    assert json.loads(sh(f"ip -n {a} -j link show v0"))[0]["mtu"] == 1500


def test_a_failing_step_stops_the_plan_and_says_why(netns_factory):
    a = netns_factory("a")
    ns = inode(a)
    plan = Repair("two", Safety.SAFE, (SetMtu(ns, "nosuch0", 1500),
                                       SetSysctl(ns, "net.ipv4.ip_forward", "1")))
    results = execute(plan, snapshot_of(a), Policy(frozenset((ns,))))
    assert len(results) == 1 and not results[0].applied
    assert "no interface nosuch0" in results[0].message
    assert sh(f"ip netns exec {a} sysctl -n net.ipv4.ip_forward").strip() == "0"


def test_manual_steps_are_never_applied_and_commands_are_described(netns_factory):
    a = netns_factory("a")
    snap = snapshot_of(a)
    manual = Repair("by hand", Safety.MANUAL, (ManualStep("move the bridge subnet", inode(a)),))
    results = execute(manual, snap, Policy(frozenset((inode(a),)), unsafe=True))
    assert not results[0].applied and "manual" in results[0].message
    assert describe(SetMtu(inode(a), "v0", 1450), snap) == \
        f"ip netns exec {a} ip link set dev v0 mtu 1450"
