"""Overlays are told apart by what connects them, not by VNI alone.

Two independent Swarms on one machine both start their VNIs at 4096, both take their first
overlay subnet from 10.0.0.0/8, and their nodes may even reuse underlay addresses when each
Swarm lives on its own switch. Treated as one overlay, every container address is a
"duplicate" and one Swarm's forwarding entries look stale to the other's.
"""

from netdiag.checks import engine
from netdiag.model import FdbEntry, Neighbour
from netdiag.model.index import index
from tests.fixtures.builder import SnapshotBuilder
from tests.unit.rules.part2_fixtures import amend

VNI = 4096


def mac_of(address: str) -> str:
    return "02:42:" + ":".join(f"{int(p):02x}" for p in address.split("."))


def two_swarms(same_underlay_addresses: bool = True):
    """Swarms a and b: two nodes each on a switch of their own, each node an overlay
    namespace (br0 10.0.1.1 + vxlan0 VNI 4096) with one container 10.0.1.(node+1)."""
    b = SnapshotBuilder()
    ids: dict[str, int] = {}
    for swarm_number, swarm in enumerate(("a", "b")):
        switch = b.namespace(f"sw-{swarm}")
        b.bridge(switch, "br0")
        for node in (1, 2):
            base = 1 if same_underlay_addresses else 1 + 10 * swarm_number
            underlay = f"10.99.0.{base + node - 1}"
            host = b.namespace(f"{swarm}{node}")
            b.veth(host, "eth0", switch, f"p{node}", peer_master="br0",
                   address=f"{underlay}/24")
            b.bridge(host, "br0", "10.0.1.1/24", mtu=1450)
            b.vxlan(host, "vxlan0", VNI, local=underlay, master="br0")
            task = b.namespace(f"{swarm}{node}-task")
            b.veth(task, "eth0", host, f"veth{node}", peer_master="br0",
                   address=f"10.0.1.{node + 1}/24", mtu=1450)
            b.update_link(task, "eth0", mac=mac_of(f"10.0.1.{node + 1}"))
            ids[f"{swarm}{node}"], ids[f"{swarm}{node}-task"] = host, task
            ids[f"{swarm}{node}-vtep"] = int(underlay.rsplit(".", 1)[1])
    snapshot = b.build()
    for swarm in ("a", "b"):
        for node, peer in ((1, 2), (2, 1)):
            peer_vtep = f"10.99.0.{ids[f'{swarm}{peer}-vtep']}"
            peer_task = f"10.0.1.{peer + 1}"
            snapshot = amend(snapshot, ids[f"{swarm}{node}"],
                             fdb=(FdbEntry("vxlan0", mac_of(peer_task), dst=peer_vtep,
                                           state="permanent", flags=("self",)),),
                             neighbours=(Neighbour("vxlan0", 4, peer_task, mac_of(peer_task),
                                                   ("permanent",)),))
    return snapshot, ids


def test_two_swarms_with_one_vni_are_two_overlays():
    for same in (True, False):
        snapshot, ids = two_swarms(same_underlay_addresses=same)
        topology = index(snapshot)
        overlay = {name: topology.overlay(ids[name], topology.link(ids[name], "vxlan0"))
                   for name in ("a1", "a2", "b1", "b2")}
        assert overlay["a1"] == overlay["a2"] and overlay["b1"] == overlay["b2"]
        assert overlay["a1"] != overlay["b1"]


def test_two_healthy_swarms_that_reuse_vni_subnet_and_addresses_are_quiet():
    for same in (True, False):
        snapshot, _ = two_swarms(same_underlay_addresses=same)
        report = engine.run(snapshot)
        assert [(f.rule, f.namespace.display, f.message) for f in report.findings
                if f.severity.rank >= 1] == []


def test_a_stale_entry_is_still_found_within_one_swarm():
    snapshot, ids = two_swarms(same_underlay_addresses=False)
    state = snapshot.namespace(ids["a1"])
    stale = FdbEntry("vxlan0", "02:42:0a:00:01:09", dst="10.99.0.12", state="permanent",
                     flags=("self",))  # b's node, not one of a's VTEPs
    snapshot = amend(snapshot, ids["a1"], fdb=state.fdb + (stale,))
    findings = [f for f in engine.run(snapshot).findings if f.rule == "vxlan-fdb-stale"]
    assert [(f.namespace.id, f.subject) for f in findings] == [(ids["a1"], "vxlan0")]
    assert "10.99.0.12 is none of the VTEPs" in findings[0].message


def test_a_safe_repair_never_removes_an_entry_a_live_endpoint_uses():
    """Whatever a rule says, the executor refuses to delete a forwarding entry whose MAC a
    live endpoint of the overlay holds behind that entry's VTEP."""
    from netdiag.findings.repair import DeleteFdbEntry, Repair, Safety
    from netdiag.repair.executor import Policy, refusal

    snapshot, ids = two_swarms(same_underlay_addresses=False)
    live = DeleteFdbEntry(ids["a1"], "vxlan0", mac_of("10.0.1.3"), "10.99.0.2")
    policy = Policy.for_namespaces(snapshot, {ids["a1"]})
    why = refusal(Repair("delete", Safety.SAFE, (live,)), snapshot, policy)
    assert "a live endpoint behind VTEP 10.99.0.2" in why and "a2-task" in why
    gone = DeleteFdbEntry(ids["a1"], "vxlan0", "02:42:0a:00:01:09", "10.99.0.2")
    assert refusal(Repair("delete", Safety.SAFE, (gone,)), snapshot, policy) == ""
