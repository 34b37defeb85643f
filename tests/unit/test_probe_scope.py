"""Probes stay inside: the plan holds no target that no namespace of the snapshot holds."""

from netdiag.model import NsKind, Probes
from netdiag.probe.plan import plan
from netdiag.probe.runner import summary
from tests.fixtures.builder import SnapshotBuilder

OUTSIDE_RESOLVER = "192.0.2.53"  # TEST-NET-1: stands for the host's upstream resolver


def _docker_host() -> tuple[SnapshotBuilder, int, int, int]:
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0").address(host, "eth0", "192.0.2.10/24")
    b.route(host, "default", gateway="192.0.2.1", dev="eth0")
    b.dns(host, OUTSIDE_RESOLVER)
    b.bridge(host, "docker0", "172.17.0.1/16")
    web = b.namespace("web", kind=NsKind.DOCKER)
    b.veth(web, "eth0", host, "veth1", peer_master="docker0", address="172.17.0.2/16")
    b.route(web, "default", gateway="172.17.0.1", dev="eth0")
    b.dns(web, OUTSIDE_RESOLVER, source="/var/lib/docker/containers/x/resolv.conf")
    db = b.namespace("db", kind=NsKind.DOCKER)
    b.veth(db, "eth0", host, "veth2", peer_master="docker0", address="172.17.0.3/16")
    b.dns(db, "127.0.0.11", source="/var/lib/docker/containers/y/resolv.conf")
    return b, host, web, db


def test_an_outside_resolver_is_never_a_target():
    b, host, web, _ = _docker_host()
    planned = plan(b.build())
    assert all(task.address != OUTSIDE_RESOLVER for task in planned.tasks)
    left = {(task.namespace, task.address) for task, _ in planned.left_out}
    assert {(host, OUTSIDE_RESOLVER), (web, OUTSIDE_RESOLVER)} <= left


def test_the_embedded_resolver_is_asked_the_containers_own_name():
    b, _, _, db = _docker_host()
    dns = [t for t in plan(b.build()).tasks if t.kind == "dns"]
    assert [(t.namespace, t.address, t.query) for t in dns] == [(db, "127.0.0.11", "db.")]


def test_an_address_repeated_beyond_the_default_route_is_outside():
    """172.17.0.3 is held by a container of the snapshot, but from `lone` it lies beyond a
    gateway no namespace holds: a probe would reach a real machine that shares the address."""
    b, *_ = _docker_host()
    lone = b.namespace("lone")
    b.link(lone, "eth0").address(lone, "eth0", "198.51.100.7/24")
    b.route(lone, "default", gateway="198.51.100.1", dev="eth0")
    b.dns(lone, "172.17.0.3", source="/etc/netns/lone/resolv.conf")
    planned = plan(b.build(), focus={lone})
    assert planned.tasks == ()
    assert any("198.51.100.1" in why for _, why in planned.left_out)


def test_probe_external_lets_outside_targets_through():
    b, host, web, _ = _docker_host()
    planned = plan(b.build(), external=True)
    assert {(host, OUTSIDE_RESOLVER), (web, OUTSIDE_RESOLVER)} <= \
        {(t.namespace, t.address) for t in planned.tasks if t.kind == "dns"}


def test_inside_targets_are_planned():
    b, host, web, db = _docker_host()
    sweeps = {(t.namespace, t.address) for t in plan(b.build()).tasks if t.kind == "path_mtu"}
    assert (host, "172.17.0.2") in sweeps and (web, "172.17.0.3") in sweeps


def test_summary_says_what_was_left_out():
    b, *_ = _docker_host()
    lines = summary(plan(b.build()), Probes())
    assert lines[0].startswith("probed: nothing")
    assert any(line.startswith("not probed: 2 targets outside") for line in lines)
    assert any(OUTSIDE_RESOLVER in line for line in lines)


def _routed() -> tuple[SnapshotBuilder, dict[str, int]]:
    """a ─ r ─ c, where r routes between 10.1.0.0/24 and 10.3.0.0/24 only; `far` (10.2.0.5)
    lies beyond r, which has no route onward; `twin` repeats c's address on a segment of its
    own (another engine's container). Made in this order, so the snapshot lists the far ones
    first."""
    b = SnapshotBuilder()
    ns = {name: b.namespace(name) for name in ("far", "twin", "c", "r", "a")}
    b.link(ns["far"], "eth0").address(ns["far"], "eth0", "10.2.0.5/24")
    b.link(ns["twin"], "eth0").address(ns["twin"], "eth0", "10.3.0.2/24")
    b.veth(ns["a"], "eth0", ns["r"], "eth0", address="10.1.0.2/24")
    b.address(ns["r"], "eth0", "10.1.0.1/24")
    b.veth(ns["c"], "eth0", ns["r"], "eth1", address="10.3.0.2/24")
    b.address(ns["r"], "eth1", "10.3.0.1/24")
    b.route(ns["a"], "default", gateway="10.1.0.1", dev="eth0")
    b.route(ns["c"], "default", gateway="10.3.0.1", dev="eth0")
    return b, ns


def test_sweeps_go_only_where_the_routes_on_the_way_lead():
    """Issue 31: `check --ns X --probe` swept toward addresses behind a router with no route
    onward and toward other engines' containers that repeat a neighbour's address."""
    b, ns = _routed()
    sweeps = [(t.namespace, t.address) for t in plan(b.build(), focus={ns["a"]}).tasks
              if t.kind == "path_mtu"]
    assert sweeps == [(ns["a"], "10.1.0.1"), (ns["a"], "10.3.0.2")]  # r, then c beyond it


def test_sweeps_start_with_the_nearest_namespaces():
    b, ns = _routed()
    sweeps = [(t.namespace, t.address) for t in plan(b.build(), focus={ns["a"]},
                                                     max_paths=1).tasks]
    assert sweeps == [(ns["a"], "10.1.0.1")]  # the router next door, not c behind it


def test_the_summary_names_the_nearest_targets_first():
    b, ns = _routed()
    for index in range(9):  # more namespaces beyond r than the summary names
        far = b.namespace(f"n{index}")
        b.veth(far, "eth0", ns["r"], f"to{index}", address=f"10.0.{index}.2/24")
        b.address(ns["r"], f"to{index}", f"10.0.{index}.1/24")
    planned = plan(b.build(), focus={ns["a"]})
    line = summary(planned, Probes())[0]
    assert "to 11 targets (10.1.0.1, 10.3.0.2, 10.0.0.2, " in line, line  # not sorted by text
    assert line.endswith(", …); 0 failed"), line
