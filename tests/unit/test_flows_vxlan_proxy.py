"""A VXLAN device in proxy mode (Docker's and the lab's overlay: `proxy`, learning off)
answers ARP and neighbour solicitations from its own neighbour entries and drops the rest: a
missing entry for a remote node is neighbour-unreachable at the device, naming it and the
address. A lab's overlay flow stopped there is expected-flow-blocked's to report (no other rule
of `check` reads a lab's overlay entries); a missing forwarding entry stays vxlan-fdb-stale's.
The real twin: tests/integration/test_lab_dualstack_drivers.py deletes an IPv6 entry."""

from dataclasses import replace

from netdiag.flows import expected
from netdiag.flows.packet import NEIGHBOUR_UNREACHABLE, Packet
from netdiag.flows.walk import Engine
from netdiag.model import FdbEntry, LabIntent, Neighbour, VxlanInfo
from netdiag.model.lab import LabApp, LabName
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.rules import run_rule

MACS = {1: "02:42:0a:0a:00:02", 2: "02:42:0a:0a:00:03"}  # c1 10.10.0.2, c2 10.10.0.3
TO_C2 = "c1 reaches c2's web on 10.10.0.3:80 (tcp)"


def _fdb(number: int) -> FdbEntry:
    return FdbEntry("vxlan0", MACS[number], dst=f"10.0.0.{number}", state="permanent",
                    flags=("self",))


def _neighbour(number: int) -> Neighbour:
    return Neighbour("vxlan0", 4, f"10.10.0.{number + 1}", MACS[number], ("permanent",))


def _lab(fdb: dict[int, tuple] | None = None, neighbours: dict[int, tuple] | None = None):
    """Lab lab1: host1 and host2 on an underlay veth (10.0.0.0/24), each with br0 and a
    vxlan0 in proxy mode (VNI 42) enslaved to it, and a node on the overlay (c1 on host1,
    c2 on host2, 10.10.0.0/24); c2 runs web on 80. Each host's entries are for the other's
    node, unless `fdb`/`neighbours` (host number → entries) say otherwise."""
    b = SnapshotBuilder()
    hosts = {n: b.namespace(f"lab1-host{n}", lab="lab1", node=f"host{n}") for n in (1, 2)}
    b.veth(hosts[1], "eth0", hosts[2], "eth0")
    nodes = {}
    for n, host in hosts.items():
        b.address(host, "eth0", f"10.0.0.{n}/24")
        b.bridge(host, "br0")
        b.vxlan(host, "vxlan0", 42, local=f"10.0.0.{n}", dev="eth0", master="br0")
        b.update_link(host, "vxlan0", vxlan=VxlanInfo(42, local=f"10.0.0.{n}", dev="eth0",
                                                      learning=False, proxy=True))
        nodes[n] = b.namespace(f"lab1-c{n}", lab="lab1", node=f"c{n}")
        b.veth(nodes[n], "eth0", host, f"veth{n}", peer_master="br0",
               address=f"10.10.0.{n + 1}/24")
        b.update_link(nodes[n], "eth0", mac=MACS[n])
    b.socket(nodes[2], "tcp", "0.0.0.0", 80, process="web", pid=20)
    snapshot = b.build()
    other = {1: 2, 2: 1}
    fdb = {n: (_fdb(other[n]),) for n in hosts} | (fdb or {})
    neighbours = {n: (_neighbour(other[n]),) for n in hosts} | (neighbours or {})
    by_id = {hosts[n]: n for n in hosts}
    snapshot = replace(snapshot, namespaces=tuple(
        replace(s, fdb=fdb[by_id[s.ref.id]], neighbours=neighbours[by_id[s.ref.id]])
        if s.ref.id in by_id else s for s in snapshot.namespaces), labs=(LabIntent(
            "lab1", attached=(("c1", ("ov",)), ("c2", ("ov",))),
            names=(LabName("ov", "c1", "10.10.0.2"), LabName("ov", "c2", "10.10.0.3")),
            apps=(LabApp("c2", "web", 80),)),))
    return snapshot, hosts, nodes


def test_a_healthy_lab_overlay_keeps_its_promise_quietly():
    snapshot, _, nodes = _lab()
    assert [e.what for e in expected.lab_expectations(snapshot)] == [TO_C2]
    assert Engine(snapshot).path(nodes[1], Packet("", "10.10.0.3", "tcp", 43210, 80)).delivered
    assert list(expected.judge(snapshot)) == []
    assert run_rule("expected-flow-blocked", snapshot) == []


def test_a_missing_neighbour_entry_on_the_proxy_device_stops_the_flow_there():
    snapshot, hosts, nodes = _lab(neighbours={1: ()})
    result = Engine(snapshot).path(nodes[1], Packet("", "10.10.0.3", "tcp", 43210, 80))
    drop = result.forward.drop
    assert result.disposition == NEIGHBOUR_UNREACHABLE
    assert (drop.namespace.id, drop.where) == (hosts[1], "vxlan0")
    assert drop.reason == ("vxlan0 answers ARP for its overlay from its neighbour entries "
                           "(proxy), and has none for 10.10.0.3")
    [finding] = run_rule("expected-flow-blocked", snapshot)
    assert finding.message.startswith(f"{TO_C2}: it is neighbour-unreachable in lab1-host1 "
                                      "at vxlan0: vxlan0 answers ARP")
    assert "`netdiag lab status` names the entry, with its repair" in \
        finding.repair.steps[0].text


def test_the_replys_missing_entry_on_the_far_side_is_named_too():
    snapshot, hosts, _ = _lab(neighbours={2: ()})
    [finding] = run_rule("expected-flow-blocked", snapshot)
    assert f"{TO_C2}: its reply is neighbour-unreachable in lab1-host2 at vxlan0" in \
        finding.message and "has none for 10.10.0.2" in finding.message


def test_without_proxy_the_device_floods_and_the_flow_goes_on():
    snapshot, hosts, nodes = _lab(neighbours={1: ()})
    snapshot = replace(snapshot, namespaces=tuple(
        replace(s, links=tuple(replace(k, vxlan=replace(k.vxlan, proxy=False))
                               if k.vxlan else k for k in s.links))
        for s in snapshot.namespaces))
    assert Engine(snapshot).path(nodes[1], Packet("", "10.10.0.3", "tcp", 43210, 80)).delivered


def test_a_missing_forwarding_entry_is_left_to_vxlan_fdb_stale():
    snapshot, _, _ = _lab(fdb={1: ()})
    assert run_rule("expected-flow-blocked", snapshot) == []
    assert [f.rule for f in run_rule("vxlan-fdb-stale", snapshot)] == ["vxlan-fdb-stale"]
