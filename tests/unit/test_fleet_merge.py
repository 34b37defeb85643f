"""The fleet snapshot without etcd: merging nodes' snapshots, and the fleet rules on it.

Each node is built as its own machine would read it: its own namespace has the same inode on
every node (4026531840), so the merge must renumber. The agents and etcd themselves are
tested for real in tests/integration/test_fleet.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from netdiag.checks.fleet import fleet_node_stale, fleet_overlay_mismatch
from netdiag.checks.overlay import vxlan_fdb_stale
from netdiag.collect import namespace_refs
from netdiag.fleet.merge import Published, merge
from netdiag.fleet.store import Meta
from netdiag.model import FdbEntry, NsKind
from netdiag.model.serialize import encode, loads
from tests.fixtures.builder import SnapshotBuilder
from tests.unit.rules.part2_fixtures import run

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def node_snapshot(number: int, subnet: str = "10.100.0", mtu: int = 1450):
    """A machine with eth0 on 198.19.0.N, a VXLAN (VNI 100) to the two others, and one
    container on its bridge."""
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address=f"198.19.0.{number}/24")
    b.bridge(host, "br100")
    b.vxlan(host, "vx100", 100, mtu=mtu, local=f"198.19.0.{number}", master="br100")
    container = b.namespace(f"c{number}")
    b.veth(container, "eth0", host, f"v{number}", peer_master="br100", mtu=1450,
           address=f"{subnet}.{number}/24")
    snapshot = b.build()
    entries = tuple(FdbEntry(ifname="vx100", mac="00:00:00:00:00:00", dst=f"198.19.0.{other}",
                             state="permanent", flags=("self",))
                    for other in (1, 2, 3) if other != number)
    states = tuple(replace(s, fdb=entries) if s.ref.id == host else s
                   for s in snapshot.namespaces)
    return replace(snapshot, namespaces=states)


def published(number: int, snapshot=None, age: float = 1.0, schema: int = 4,
              interval: float = 10.0) -> Published:
    snapshot = snapshot or node_snapshot(number)
    meta = Meta(node=f"m{number}", sequence=5, slot=1, parts=1, sha256="", size=0, stored=0,
                published_at=(NOW - timedelta(seconds=age)).isoformat(),
                created_at=snapshot.created_at, interval=interval, agent_version="0.1.0",
                schema_version=schema)
    return Published(meta, encode(snapshot))


def fleet(*items: Published):
    return merge(items or [published(n) for n in (1, 2, 3)], now=NOW)


def test_merge_renumbers_the_inodes_that_repeat_across_machines_and_names_the_nodes():
    merged = fleet()
    ids = [s.ref.id for s in merged.namespaces]
    assert len(ids) == len(set(ids)) == 6
    assert sorted(s.ref.label for s in merged.namespaces) == [
        "m1/c1", "m1/host", "m2/c2", "m2/host", "m3/c3", "m3/host"]
    for state in merged.namespaces:  # veth peers point at the renumbered namespace
        for link in state.links:
            if link.peer_namespace is not None:
                peer = merged.namespace(link.peer_namespace)
                assert peer is not None and peer.ref.machine == state.ref.machine
    for machine in merged.machines:
        host = merged.namespace(machine.host_namespace)
        assert host.ref.kind is NsKind.HOST and host.ref.machine == machine.name
    assert loads(encode(merged)) == merged  # a fleet snapshot is a file like any other


def test_a_node_with_a_snapshot_this_netdiag_cannot_read_is_left_out_and_says_why():
    merged = fleet(published(1), published(2), published(3, schema=99))
    assert [s.ref.machine for s in merged.namespaces].count("m3") == 0
    assert [(m.name, bool(m.problem)) for m in merged.machines] == [
        ("m1", False), ("m2", False), ("m3", True)]
    gap = next(g for g in merged.gaps if g.collector == "fleet")
    assert "node m3" in gap.message and "schema 99" in gap.message and \
        "at least as new as the agents'" in gap.message
    # m1 and m2 still send to m3, a live node this netdiag could not read: not stale.
    assert run(vxlan_fdb_stale, merged) == []
    assert run(fleet_node_stale, merged) == []


def test_machine_qualified_references_resolve_in_a_fleet_snapshot():
    merged = fleet()
    refs = [s.ref for s in merged.namespaces]
    assert namespace_refs.resolve("m2/host", refs).label == "m2/host"
    assert namespace_refs.resolve("m3/c3", refs).label == "m3/c3"


def test_a_healthy_fleet_has_nothing_for_the_fleet_rules():
    merged = fleet()
    assert run(fleet_node_stale, merged) == []
    assert run(fleet_overlay_mismatch, merged) == []


def test_a_node_whose_snapshot_is_older_than_its_interval_allows_is_stale():
    merged = fleet(published(1), published(2), published(3, age=40, interval=10))
    found = run(fleet_node_stale, merged)
    assert [f.namespace.label for f in found] == ["m3/host"]
    assert "40 s old" in found[0].message and "every 10 s" in found[0].message


def test_a_node_on_another_subnet_of_the_overlay_is_named_once():
    merged = fleet(published(1), published(2), published(3, node_snapshot(3, "10.101.0")))
    found = run(fleet_overlay_mismatch, merged)
    assert len(found) == 1, [f.message for f in found]
    assert "node m3 is on 10.101.0.0/24 but m1, m2 on 10.100.0.0/24" in found[0].message


def test_nodes_that_each_have_a_subnet_of_their_own_are_a_design_not_a_fault():
    merged = fleet(*(published(n, node_snapshot(n, f"10.10{n}.0")) for n in (1, 2, 3)))
    assert [f.message for f in run(fleet_overlay_mismatch, merged)] == []


def test_an_mtu_that_differs_names_the_odd_node_and_the_others():
    merged = fleet(published(1), published(2, node_snapshot(2, mtu=1400)), published(3))
    found = [f for f in run(fleet_overlay_mismatch, merged) if "MTU" in f.message]
    assert [f.namespace.label for f in found] == ["m2/host"]
    assert "MTU 1400 on m2 but 1450 on m1, m3" in found[0].message


def test_entries_for_a_node_that_left_are_stale_but_deleting_them_is_for_a_person():
    from netdiag.findings.repair import Safety

    merged = fleet(published(1), published(2))  # m3 is gone from the fleet
    found = run(vxlan_fdb_stale, merged)
    assert sorted(f.namespace.label for f in found) == ["m1/host", "m2/host"]
    assert all("VTEP 198.19.0.3 is no node's of the fleet" in f.message and
               f.repair.safety is Safety.UNSAFE for f in found), [f.message for f in found]
