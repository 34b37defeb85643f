"""docker-overlay-peers (ND402) on fixture snapshots: a Swarm node's overlay namespace whose
forwarding entries are judged against the network's peer list."""

from dataclasses import replace

from netdiag.checks.docker import docker_overlay_peers as rule
from netdiag.checks.overlay import vxlan_fdb_stale
from netdiag.findings.repair import DeleteFdbEntry, ReplaceNeighbour, Safety
from netdiag.model.docker import DockerEngine, DockerNetwork, DockerPeer, DockerSwarm, DockerVip
from tests.unit.rules.part2_fixtures import amend, run
from tests.unit.rules.test_vxlan_fdb_stale import C2_MAC, fdb, healthy

NETWORK_ID = "ov0123456789" + "a" * 52


def swarm_node(peers=("10.0.0.1", "10.0.0.2"), entries=None, state="active"):
    """Host h1 of the two-host overlay as Docker's overlay namespace of network `app`, with
    the intent of its engine (node 10.0.0.1)."""
    snapshot, ids = healthy()
    h1 = ids["h1"]
    path = f"/var/run/docker/netns/1-{NETWORK_ID[:10]}"
    states = tuple(replace(s, ref=replace(s.ref, path=path, name=path.rsplit("/", 1)[1]))
                   if s.ref.id == h1 else s for s in snapshot.namespaces)
    snapshot = replace(snapshot, namespaces=states)
    if entries is not None:
        snapshot = amend(snapshot, h1, fdb=tuple(entries))
    network = DockerNetwork(id=NETWORK_ID, name="app", driver="overlay", scope="swarm",
                            peers=tuple(DockerPeer(f"node{i}", a) for i, a in enumerate(peers)))
    engine = DockerEngine(url="unix:///var/run/docker.sock", exec_root="/var/run/docker",
                          swarm=DockerSwarm(state=state, node_addr="10.0.0.1", role="manager"),
                          networks=(network,))
    return replace(snapshot, docker=(engine,)), ids


def test_entries_that_match_the_peer_list_pass():
    snapshot, _ = swarm_node()
    assert run(rule, snapshot) == []


def test_entry_for_a_vtep_that_is_no_node_of_the_network():
    snapshot, ids = swarm_node(entries=[fdb(C2_MAC, "10.0.0.2"),
                                        fdb("02:42:0a:0a:00:09", "10.0.0.9")])
    (finding,) = run(rule, snapshot)
    assert finding.namespace.id == ids["h1"] and finding.subject == "vxlan0"
    assert "VTEP 10.0.0.9, which is no node of the network" in finding.message
    assert finding.repair.safety is Safety.SAFE
    assert finding.repair.steps == (DeleteFdbEntry(ids["h1"], "vxlan0", "02:42:0a:0a:00:09",
                                                   "10.0.0.9"),)
    # The same entry is not also vxlan-fdb-stale's: one finding per fault.
    assert run(vxlan_fdb_stale, snapshot) == []


def test_a_peer_without_permanent_entries():
    learned = replace(fdb(C2_MAC, "10.0.0.2"), state="")
    snapshot, _ = swarm_node(entries=[learned])
    (finding,) = run(rule, snapshot)
    assert "node 10.0.0.2 is a peer of the network" in finding.message


def test_a_vtep_in_the_peer_list_is_not_stale_for_vxlan_fdb_stale():
    """Without intent, an entry for a VTEP no namespace of the snapshot holds is suspicious;
    with Docker's peer list naming it, it is a node of the network."""
    snapshot, _ = swarm_node(peers=("10.0.0.1", "10.0.0.2", "10.0.0.3"),
                               entries=[fdb(C2_MAC, "10.0.0.2"),
                                        fdb("02:42:0a:0a:00:07", "10.0.0.3")])
    assert [f.subject for f in run(vxlan_fdb_stale, replace(snapshot, docker=()))] == ["vxlan0"]
    assert run(vxlan_fdb_stale, snapshot) == []
    assert run(rule, snapshot) == []  # every peer has its entries, and no entry is foreign


def test_outside_a_swarm_or_without_intent_nothing_is_said():
    for snapshot, _ in (swarm_node(state="inactive"),
                        swarm_node(entries=[fdb("02:42:0a:0a:00:09", "10.0.0.9")],
                                   peers=())):
        assert run(rule, snapshot) == []


def with_endpoint(snapshot, address="10.10.0.3", vtep="10.0.0.2"):
    """Docker's view adds a container at `address` on node `vtep` (verbose inspect's
    Services[""].Tasks, where plain containers of an attachable network are listed)."""
    engine = snapshot.docker[0]
    network = replace(engine.networks[0], vips=(DockerVip("", "", ((address, vtep),)),))
    return replace(snapshot, docker=(replace(engine, networks=(network,)),))


def test_endpoints_that_match_their_entries_pass():
    snapshot, _ = swarm_node()
    assert run(rule, with_endpoint(snapshot)) == []


def test_endpoint_without_its_neighbour_entry():
    snapshot, ids = swarm_node()
    snapshot = amend(with_endpoint(snapshot), ids["h1"], neighbours=())
    (finding,) = run(rule, snapshot)
    assert finding.subject == "vxlan0/10.10.0.3"
    assert "has no neighbour entry" in finding.message
    assert finding.repair.safety is Safety.SAFE  # its forwarding entry confirms the MAC
    assert finding.repair.steps == (ReplaceNeighbour(ids["h1"], "vxlan0", "10.10.0.3", C2_MAC),)


def test_endpoint_whose_entry_points_at_another_node():
    snapshot, ids = swarm_node(peers=("10.0.0.1", "10.0.0.2", "10.0.0.3"),
                               entries=[fdb(C2_MAC, "10.0.0.2"),
                                        fdb("02:42:0a:0a:00:07", "10.0.0.3")])
    found = run(rule, with_endpoint(snapshot, vtep="10.0.0.3"))
    moved = [f for f in found if f.subject == f"vxlan0/{C2_MAC}"]
    assert len(moved) == 1, found
    assert "points at node 10.0.0.2, but the endpoint runs on node 10.0.0.3" in moved[0].message
    assert moved[0].repair.safety is Safety.UNSAFE
    # Its neighbour entry is there: only the forwarding entry is wrong.
    assert all(f.subject != "vxlan0/10.10.0.3" for f in found)
