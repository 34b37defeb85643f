from netdiag.checks.overlay import vxlan_fdb_stale as rule
from netdiag.findings.repair import DeleteFdbEntry, DeleteNeighbour, Safety
from netdiag.model import FdbEntry, Neighbour
from tests.fixtures.builder import SnapshotBuilder
from tests.unit.rules.part2_fixtures import amend, run

C1_MAC, C2_MAC = "02:42:0a:0a:00:02", "02:42:0a:0a:00:03"


def fdb(mac, dst):
    return FdbEntry(ifname="vxlan0", mac=mac, dst=dst, state="permanent", flags=("self",))


def neigh(address, mac):
    return Neighbour(ifname="vxlan0", family=4, address=address, mac=mac, state=("permanent",))


def overlay(hosts=("h1", "h2")):
    """Two lab hosts on 10.0.0.0/24, each with br0 + vxlan0 (VNI 42) and one container."""
    b = SnapshotBuilder()
    ids = {}
    for number, name in enumerate(hosts, start=1):
        host = b.namespace(name)
        b.link(host, "eth0", address=f"10.0.0.{number}/24")
        b.bridge(host, "br0")
        b.vxlan(host, "vxlan0", 42, local=f"10.0.0.{number}", dev="eth0", master="br0")
        container = b.namespace(f"c{number}")
        b.veth(container, "eth0", host, f"veth{number}", peer_master="br0",
               address=f"10.10.0.{number + 1}/24")
        ids[name], ids[f"c{number}"] = host, container
    return b.build(), ids


def healthy():
    snapshot, ids = overlay()
    snapshot = amend(snapshot, ids["h1"], fdb=(fdb(C2_MAC, "10.0.0.2"),),
                     neighbours=(neigh("10.10.0.3", C2_MAC),))
    snapshot = amend(snapshot, ids["h2"], fdb=(fdb(C1_MAC, "10.0.0.1"),),
                     neighbours=(neigh("10.10.0.2", C1_MAC),))
    return snapshot, ids


def test_healthy_two_host_overlay_passes():
    snapshot, _ = healthy()
    assert run(rule, snapshot) == []


def test_entry_for_a_vtep_no_peer_owns_fires():
    snapshot, ids = healthy()
    snapshot = amend(snapshot, ids["h1"], fdb=(fdb(C2_MAC, "10.0.0.2"),
                                               fdb("02:42:0a:0a:00:09", "10.0.0.9")),
                     neighbours=(neigh("10.10.0.3", C2_MAC),))
    (finding,) = run(rule, snapshot)
    assert finding.namespace.id == ids["h1"] and finding.subject == "vxlan0"
    assert "10.0.0.9 is none of the VTEPs of this VNI 42 overlay" in finding.message
    assert finding.evidence[0].kind == "fdb" and finding.evidence[0].key == \
        "vxlan0/02:42:0a:0a:00:09"
    assert finding.repair.safety is Safety.SAFE
    assert finding.repair.steps == (DeleteFdbEntry(ids["h1"], "vxlan0", "02:42:0a:0a:00:09",
                                                   "10.0.0.9"),)


def test_unroutable_vtep_fires_even_without_peers_in_the_snapshot():
    snapshot, ids = overlay(hosts=("h1",))
    snapshot = amend(snapshot, ids["h1"], fdb=(fdb(C2_MAC, "10.0.0.2"),
                                               fdb("02:42:0a:0a:00:09", "192.168.50.2")))
    (finding,) = run(rule, snapshot)
    assert "no route to VTEP 192.168.50.2" in finding.message
    assert any(e.kind == "route" and e.key == "192.168.50.2" for e in finding.evidence)


def test_neighbour_disagreeing_with_the_fdb_fires():
    snapshot, ids = healthy()
    snapshot = amend(snapshot, ids["h1"], fdb=(fdb(C2_MAC, "10.0.0.2"),),
                     neighbours=(neigh("10.10.0.3", "02:42:0a:0a:00:99"),))
    (finding,) = run(rule, snapshot)
    assert "says 02:42:0a:0a:00:99" in finding.message and C2_MAC in finding.message
    assert finding.evidence[0].kind == "neighbour" and finding.evidence[0].key == \
        "vxlan0/10.10.0.3"
    assert finding.repair.steps == (DeleteNeighbour(ids["h1"], "vxlan0", "10.10.0.3"),)


def test_permanent_neighbour_for_a_now_local_address_fires():
    snapshot, ids = healthy()
    # c1 (10.10.0.2) lives on h1, but h1 still sends it across the overlay to h2.
    snapshot = amend(snapshot, ids["h1"], fdb=(fdb(C2_MAC, "10.0.0.2"), fdb(C1_MAC, "10.0.0.2")),
                     neighbours=(neigh("10.10.0.3", C2_MAC), neigh("10.10.0.2", C1_MAC)))
    (finding,) = run(rule, snapshot)
    assert "10.10.0.2 is now local (eth0)" in finding.message
    assert any(e.kind == "address" and e.namespace == ids["c1"] for e in finding.evidence)
    assert finding.repair.steps == (DeleteNeighbour(ids["h1"], "vxlan0", "10.10.0.2"),
                                    DeleteFdbEntry(ids["h1"], "vxlan0", C1_MAC, "10.0.0.2"))


def test_multicast_flood_entry_is_not_a_vtep():
    snapshot, ids = healthy()
    snapshot = amend(snapshot, ids["h1"], fdb=(fdb(C2_MAC, "10.0.0.2"),
                                               fdb("00:00:00:00:00:00", "239.1.1.1")),
                     neighbours=(neigh("10.10.0.3", C2_MAC),))
    assert run(rule, snapshot) == []
