"""mtu-mismatch (ND201) on fixture snapshots."""

from dataclasses import replace

from netdiag.findings.finding import Severity
from netdiag.findings.repair import SetMtu
from netdiag.model import Address, FdbEntry
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import docker_host


def steps(finding):
    return {(s.namespace, s.link, s.mtu) for s in finding.repair.steps if isinstance(s, SetMtu)}


def test_healthy_docker_host_passes():
    assert run_rule("mtu-mismatch", docker_host().build()) == []


def test_veth_ends_that_disagree_are_reported_on_the_larger_end():
    d = docker_host()
    d.b.update_link(d.web, "eth0", mtu=9000)
    (finding,) = run_rule("mtu-mismatch", d.build())
    assert finding.namespace.id == d.web and finding.subject == "eth0"
    assert finding.severity is Severity.ERROR
    assert "peer veth1a2b3c4" in finding.message and "1500" in finding.message
    assert steps(finding) == {(d.web, "eth0", 1500)}
    assert [e.key for e in finding.evidence] == ["eth0", "veth1a2b3c4"]


def test_bridge_ports_that_disagree():
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br0", mtu=1500)
    c1, c2 = b.namespace("c1"), b.namespace("c2")
    b.veth(c1, "eth0", host, "v1", mtu=1500, peer_master="br0")
    b.veth(c2, "eth0", host, "v2", mtu=1400, peer_master="br0")
    (finding,) = run_rule("mtu-mismatch", b.build())
    assert finding.subject == "br0" and finding.severity is Severity.WARNING
    assert "v1 above 1400" in finding.message
    # Both ends of the larger veth and the bridge itself are lowered together.
    assert steps(finding) == {(host, "br0", 1400), (host, "v1", 1400), (c1, "eth0", 1400)}


def two_host_vxlan(vxlan_mtu: int, underlay_mtu: int):
    b = SnapshotBuilder()
    h1, h2 = b.namespace("h1"), b.namespace("h2")
    b.link(h1, "eth0", mtu=underlay_mtu, address="10.0.0.1/24")
    b.link(h2, "eth0", mtu=underlay_mtu, address="10.0.0.2/24")
    for host in (h1, h2):
        b.bridge(host, "br0", mtu=vxlan_mtu)
        b.vxlan(host, "vxlan42", vni=42, mtu=vxlan_mtu, master="br0")
    snapshot = b.build()
    states = []
    for state, remote in zip(snapshot.namespaces, ("10.0.0.2", "10.0.0.1")):
        states.append(replace(state, fdb=(FdbEntry(ifname="vxlan42", mac="00:00:00:00:00:00",
                                                   dst=remote, state="permanent"),)))
    return replace(snapshot, namespaces=tuple(states)), h1, h2


def test_vxlan_with_room_for_its_overhead_passes():
    snapshot, _, _ = two_host_vxlan(1450, 1500)
    assert run_rule("mtu-mismatch", snapshot) == []


def test_vxlan_mtu_plus_overhead_above_the_underlay():
    snapshot, h1, h2 = two_host_vxlan(1500, 1500)
    findings = {f.namespace.id: f for f in run_rule("mtu-mismatch", snapshot)}
    finding = findings[h1]
    assert finding.subject == "vxlan42"
    assert "1500 + 50 VXLAN overhead = 1550 exceeds eth0's MTU 1500" in finding.message
    assert finding.message.endswith("the overlay carries h2")  # its VNI reaches h2
    texts = [e.text for e in finding.evidence]
    assert "+50 bytes VXLAN over IPv4 = 1550" in texts[0]
    assert "towards VTEP 10.0.0.2" in texts[1] and "eth0 mtu 1500" in texts[1]
    assert (h1, "vxlan42", 1450) in steps(finding) and (h1, "br0", 1450) in steps(finding)


def test_container_above_its_path_to_the_uplink():
    d = docker_host()
    d.b.update_link(d.host, "eth0", mtu=1460)  # a cloud network
    (finding,) = run_rule("mtu-mismatch", d.build())
    assert finding.namespace.id == d.web and finding.subject == "eth0"
    assert finding.severity is Severity.WARNING
    assert "path out allows 1460 (eth0 in host)" in finding.message
    hops = [(e.namespace, e.key) for e in finding.evidence]
    assert hops == [(d.web, "eth0"), (d.host, "veth1a2b3c4"), (d.host, "br-web"),
                    (d.host, "eth0")]
    assert steps(finding) == {(d.web, "eth0", 1460), (d.host, "veth1a2b3c4", 1460)}


def test_probe_results_from_the_namespace_become_evidence():
    from netdiag.model import PathMtuProbe, Probes

    d = docker_host()
    d.b.update_link(d.web, "eth0", mtu=9000)
    sweep = PathMtuProbe(namespace=d.web, destination="172.17.0.1", mtu=1500, answered=True)
    snapshot = replace(d.build(), probes=Probes(path_mtu=(sweep,)))
    (finding,) = run_rule("mtu-mismatch", snapshot)
    assert finding.evidence[-1].kind == "probe"
    assert "largest DF packet answered by 172.17.0.1: 1500 bytes" in finding.evidence[-1].text


# --- IPv6's minimum MTU -----------------------------------------------------------------------


def dual_stack_docker_host():
    """docker_host() with br-web dual-stack: fd00:db8::1/64 on the bridge."""
    d = docker_host()
    d.b.address(d.host, "br-web", "fd00:db8::1/64")
    d.b.address(d.host, "br-web", "fe80::1/64")
    return d


def test_a_healthy_dual_stack_host_passes():
    assert run_rule("mtu-mismatch", dual_stack_docker_host().build()) == []


def test_a_container_link_below_1280_on_an_ipv6_segment():
    # Both ends of web's veth at 1200 (the kernel deleted web's fd00:db8::2 when it was set):
    # one finding, raise both to 1280 — never "lower the bridge to 1200", which would take
    # the gateway's IPv6 address away too.
    d = dual_stack_docker_host()
    d.b.update_link(d.web, "eth0", mtu=1200).update_link(d.host, "veth1a2b3c4", mtu=1200)
    (finding,) = run_rule("mtu-mismatch", d.build())
    assert finding.namespace.id == d.web and finding.subject == "eth0"
    assert finding.message.startswith("eth0, veth1a2b3c4 in host have MTU 1200, below IPv6's "
                                      "minimum of 1280, on a segment that carries IPv6")
    assert steps(finding) == {(d.web, "eth0", 1280), (d.host, "veth1a2b3c4", 1280)}
    assert finding.repair.safety.value == "unsafe"
    assert any(type(s).__name__ == "ManualStep" for s in finding.repair.steps)
    assert finding.evidence[-1].key == "fd00:db8::1/64" and finding.related == (d.host,)


def test_the_same_link_without_ipv6_is_an_ordinary_mismatch():
    d = docker_host()  # IPv4 only: 1200 is merely smaller than the bridge's other ports
    d.b.update_link(d.web, "eth0", mtu=1200).update_link(d.host, "veth1a2b3c4", mtu=1200)
    (finding,) = run_rule("mtu-mismatch", d.build())
    assert finding.subject == "br-web" and "IPv6" not in finding.message
    assert finding.repair.safety.value == "safe"


def test_a_docker_ipv6_network_whose_whole_segment_is_below_1280():
    # Nothing on it holds an IPv6 address any more: only the engine's word says it is IPv6.
    from netdiag.model.docker import DockerIpam

    d = docker_host()
    d.b.update_link(d.host, "br-web", mtu=1200).update_link(d.web, "eth0", mtu=1200)
    d.b.update_link(d.host, "veth1a2b3c4", mtu=1200)
    assert run_rule("mtu-mismatch", d.build()) == []  # no mismatch, no IPv6: fine
    d.intent(networks=tuple(
        replace(n, ipv6=True, ipam=n.ipam + (DockerIpam("fd00:db8::/64", "fd00:db8::1"),))
        if n.name == "web" else n for n in d.b.docker[0].networks))
    (finding,) = run_rule("mtu-mismatch", d.build())
    assert finding.namespace.id == d.host and finding.subject == "br-web"
    assert finding.evidence[-1].kind == "docker" and finding.evidence[-1].key == "web"
    assert steps(finding) == {(d.host, "br-web", 1280), (d.host, "veth1a2b3c4", 1280),
                              (d.web, "eth0", 1280)}


def test_lowering_an_ipv6_overlay_below_1280_is_not_a_safe_repair():
    snapshot, h1, _ = two_host_vxlan(1500, 1300)  # room for 1250 only
    states = tuple(replace(s, addresses=s.addresses + (Address(
        ifindex=0, ifname="br0", family=6, address="fd00:42::1", prefixlen=64),))
        if s.ref.id == h1 else s for s in snapshot.namespaces)
    findings = {f.namespace.id: f for f in run_rule(
        "mtu-mismatch", replace(snapshot, namespaces=states))}
    repair = findings[h1].repair
    assert (h1, "vxlan42", 1250) in steps(findings[h1])
    assert repair.safety.value == "unsafe" and "IPv6 stops working" in repair.title
