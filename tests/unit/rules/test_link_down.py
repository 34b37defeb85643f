"""link-down (ND901) on fixture snapshots."""

from netdiag.findings.repair import SetLinkUp
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import docker_host


def test_healthy_host_with_an_idle_docker0_passes():
    assert run_rule("link-down", docker_host().build()) == []


def test_veth_whose_peer_is_set_down():
    b = SnapshotBuilder()
    host = b.host()
    web = b.container("web")
    b.bridge(host, "br0", "10.0.0.1/24")
    b.veth(web, "eth0", host, "veth1", address="10.0.0.2/24", peer_master="br0", up=False)
    (finding,) = run_rule("link-down", b.build())
    assert finding.namespace.id == host and finding.subject == "veth1"
    assert "its peer eth0 in web is set down" in finding.message
    assert finding.repair.steps == (SetLinkUp(web, "eth0"),)


def test_interface_with_address_and_no_carrier():
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth1", address="10.5.0.1/24", oper_state="down")
    b.link(host, "eth2", up=False, address="10.6.0.1/24")  # set down on purpose: fine
    (finding,) = run_rule("link-down", b.build())
    assert finding.subject == "eth1" and finding.repair.safety.value == "manual"


def test_bridge_with_running_ports_but_no_carrier():
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br0", "10.0.0.1/24", oper_state="down")
    b.link(host, "tap0", kind="tun", master="br0")
    (finding,) = run_rule("link-down", b.build())
    assert finding.subject == "br0"


def test_a_container_endpoint_being_made_is_not_reported():
    """libnetwork and netavark create the pair in the host's namespace and attach one end to
    the bridge before the other end moves into the container: a snapshot taken in between
    sees a bridge port whose peer, beside it, is down and bare. Nothing uses it yet."""
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br0", "10.0.0.1/24")
    b.veth(host, "vetha1b2c3d", host, "veth1b2c3d4", peer_master="br0", up=False)
    assert run_rule("link-down", b.build()) == []


def test_a_pair_in_one_namespace_whose_down_end_has_an_address_is_reported():
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br0", "10.0.0.1/24")
    b.veth(host, "veth2", host, "veth1", address="10.9.0.1/24", peer_master="br0", up=False)
    (finding,) = run_rule("link-down", b.build())
    assert finding.subject == "veth1" and "its peer veth2 in host is set down" in finding.message


def test_a_veth_with_an_address_whose_bare_peer_beside_it_is_down_is_reported():
    """Not a bridge port: a link somebody uses (it has an address), its peer set down."""
    b = SnapshotBuilder()
    host = b.host()
    b.veth(host, "v1", host, "v0", peer_up=True, up=False)
    b.address(host, "v0", "10.77.31.1/24")
    (finding,) = run_rule("link-down", b.build())
    assert finding.subject == "v0" and "its peer v1 in host is set down" in finding.message


def test_a_veth_whose_peer_is_in_a_namespace_not_read_is_not_reported():
    """A veth dies with its peer: without carrier and with its peer in no namespace read, the
    peer is somewhere netdiag did not look (a namespace Docker made after the read began, as
    a Swarm's ingress sandbox in a clean-clone run): its state is unknown, not a fault."""
    from dataclasses import replace

    b = SnapshotBuilder()
    host = b.host()
    web = b.container("web")
    b.bridge(host, "br0", "10.0.0.1/24")
    b.veth(web, "eth0", host, "veth1", address="10.0.0.2/24", peer_master="br0", up=False)
    snapshot = b.build()
    unread = replace(snapshot, namespaces=tuple(s for s in snapshot.namespaces
                                                if s.ref.id != web))
    assert run_rule("link-down", snapshot) != [] and run_rule("link-down", unread) == []
