"""Active probes against real namespaces: a three-namespace path whose far link is smaller,
published ports through a DNAT rule, and a DNS server. Traffic stays between test namespaces."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netdiag import netns
from netdiag.collect import collect_snapshot, discovery, namespace_refs
from netdiag.model.facts import primary_address
from netdiag.probe import pmtu
from netdiag.probe.plan import Task, plan
from netdiag.probe.runner import measure
from tests.conftest import sh
from tests.fixtures.builder import SnapshotBuilder

SMALL_MTU = 1300

# A DNS server that answers every query with NXDOMAIN (no dependencies: bytes only).
DNS_SERVER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    data, peer = s.recvfrom(512)
    s.sendto(data[:2] + b"\\x81\\x83" + data[4:], peer)
"""

TCP_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen()
while True:
    s.accept()[0].close()
"""


def ref_of(name):
    return namespace_refs.resolve(name, discovery.discover())


@pytest.fixture
def path(netns_factory):
    """a —(1500)— r —(1300)— b, with r routing and a DNAT of r:8080 to b:80."""
    a, r, b = netns_factory("a"), netns_factory("r"), netns_factory("b")
    sh(f"ip link add va netns {a} type veth peer name vr netns {r}")
    sh(f"ip link add vb netns {b} type veth peer name vr2 netns {r}")
    sh(f"ip -n {a} addr add 10.71.1.1/24 dev va && ip -n {a} link set va up")
    sh(f"ip -n {r} addr add 10.71.1.2/24 dev vr && ip -n {r} link set vr up")
    sh(f"ip -n {r} link set vr2 mtu {SMALL_MTU} && ip -n {b} link set vb mtu {SMALL_MTU}")
    sh(f"ip -n {r} addr add 10.71.2.1/24 dev vr2 && ip -n {r} link set vr2 up")
    sh(f"ip -n {b} addr add 10.71.2.2/24 dev vb && ip -n {b} link set vb up")
    sh(f"ip -n {a} route add default via 10.71.1.2")
    sh(f"ip -n {b} route add default via 10.71.2.1")
    sh(f"ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1")
    return a, r, b


def start(ns, program, *args):
    subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", program, *args],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_listening(ns, proto, port):
    flag = "-lnt" if proto == "tcp" else "-lnu"
    for _ in range(50):
        if f":{port} " in sh(f"ip netns exec {ns} ss -H {flag}"):
            return
        subprocess.run(["sleep", "0.05"])
    raise AssertionError(f"nothing listens on {proto}/{port} in {ns}")


@pytest.mark.integration
def test_df_sweep_finds_the_smaller_far_link(path):
    a, r, b = path
    with netns.entered(f"/run/netns/{a}"):
        result = pmtu.sweep(1, "10.71.2.2", timeout=1.0)
    assert result.answered and result.mtu == SMALL_MTU
    assert result.limited_by == "10.71.1.2"  # r said "fragmentation needed, mtu 1300"
    assert (1500, f"frag-needed mtu {SMALL_MTU} from 10.71.1.2") in result.attempts


@pytest.mark.integration
def test_df_sweep_through_an_icmp_black_hole(path):
    a, r, b = path
    # r no longer tells a about the small link: the sweep has to search by itself.
    sh(f"ip netns exec {r} iptables -A OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP")
    with netns.entered(f"/run/netns/{a}"):
        result = pmtu.sweep(1, "10.71.2.2", timeout=0.2)
    assert result.answered and result.mtu == SMALL_MTU and result.limited_by == ""
    assert any(outcome == "timeout" for _, outcome in result.attempts)


@pytest.mark.integration
def test_df_sweep_to_a_silent_address_reports_no_answer(path):
    a, _, _ = path
    with netns.entered(f"/run/netns/{a}"):
        result = pmtu.sweep(1, "10.71.2.99", timeout=0.3)
    assert not result.answered and result.mtu == 0 and len(result.attempts) == 1


@pytest.mark.integration
def test_with_probes_measures_path_ports_and_dns(path):
    a, r, b = path
    sh(f"ip netns exec {r} iptables -t nat -N DOCKER")
    sh(f"ip netns exec {r} iptables -t nat -A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER")
    for host_port, port in ((8080, 80), (8081, 81)):
        sh(f"ip netns exec {r} iptables -t nat -A DOCKER -p tcp -m tcp --dport {host_port} "
           f"-j DNAT --to-destination 10.71.2.2:{port}")
    start(b, TCP_SERVER, "80")
    start(b, DNS_SERVER)
    wait_listening(b, "tcp", 80)
    wait_listening(b, "udp", 53)
    refs = [ref_of(n) for n in (a, r, b)]
    snapshot = collect_snapshot(refs)
    ids = {n: ref.id for n, ref in zip((a, r, b), refs)}

    tasks = plan(snapshot, focus={ids[a], ids[r]}).tasks
    assert Task("path_mtu", ids[a], "10.71.2.2") in tasks
    assert Task("port", ids[r], "10.71.2.2", 80, "target") in tasks
    r_address = primary_address(snapshot.namespace(ids[r]))
    assert r_address in ("10.71.1.2", "10.71.2.1")
    assert Task("port", ids[r], r_address, 8080, "published") in tasks
    tasks += (Task("dns", ids[a], "10.71.2.2"), Task("dns", ids[a], "10.71.2.77"))
    probes = measure(snapshot, tasks, timeout=0.5)

    mtus = {(p.namespace, p.destination): p.mtu for p in probes.path_mtu}
    assert mtus[(ids[a], "10.71.2.2")] == SMALL_MTU
    assert mtus[(ids[r], "10.71.2.2")] == SMALL_MTU
    ports = {(p.address, p.port): p for p in probes.ports}
    assert ports[(r_address, 8080)].open and ports[("10.71.2.2", 80)].open
    assert ports[(r_address, 8081)].error == "refused"
    assert ports[("10.71.2.2", 81)].error == "refused"
    dns = {p.server: p for p in probes.dns}
    assert dns["10.71.2.2"].answered and dns["10.71.2.2"].rcode == "NXDOMAIN"
    assert not dns["10.71.2.77"].answered and dns["10.71.2.77"].error == "timeout"


def test_plan_pairs_namespaces_once_and_only_routable_ones():
    b = SnapshotBuilder()
    one, two, three = b.namespace("one"), b.namespace("two"), b.namespace("three")
    b.veth(one, "eth0", two, "eth0", address="10.0.0.1/24")
    b.address(two, "eth0", "10.0.0.2/24")
    b.link(three, "eth0", address="192.168.9.3/24")  # no route from one or two
    tasks = plan(b.build()).tasks
    assert [t for t in tasks if t.kind == "path_mtu"] == [Task("path_mtu", one, "10.0.0.2")]
    assert plan(b.build(), focus={three}).tasks == ()


def test_evidence_cites_only_the_asked_namespace_and_object():
    from dataclasses import replace as replaced

    from netdiag.findings import probes as evidence
    from netdiag.model import PathMtuProbe, PortProbe, Probes

    snapshot = SnapshotBuilder().build()
    assert evidence.path_mtu(snapshot, 1) == ()  # not probed: nothing to cite
    snapshot = replaced(snapshot, probes=Probes(
        path_mtu=(PathMtuProbe(1, "10.0.0.2", 1300, True, "10.0.0.254", ((1500, "x"),)),
                  PathMtuProbe(2, "10.0.0.2", 1500, True)),
        ports=(PortProbe(1, "10.0.0.1", 8080, open=False, error="refused",
                         purpose="published"),)))
    (sweep,) = evidence.path_mtu(snapshot, 1, "10.0.0.2")
    assert sweep.kind == "probe" and sweep.key == "path-mtu 10.0.0.2"
    assert "1300 bytes" in sweep.text and "10.0.0.254" in sweep.text
    (connect,) = evidence.port(snapshot, 1, "10.0.0.1", 8080)
    assert connect.text.endswith("(published): refused")
    assert evidence.port(snapshot, 2, "10.0.0.1", 8080) == ()


def tx_packets(ns: str, link: str) -> int:
    import json

    (info,) = json.loads(sh(f"ip -n {ns} -s -j link show {link}"))
    return info["stats64"]["tx"]["packets"]


@pytest.mark.integration
def test_check_sends_nothing_without_probe(netns_factory):
    from pathlib import Path

    a, b = netns_factory("qa"), netns_factory("qb")
    for ns in (a, b):  # no IPv6 chatter (DAD, router solicitations) to blur the counters
        sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
           "net.ipv6.conf.default.disable_ipv6=1")
    sh(f"ip link add qa0 netns {a} type veth peer name qb0 netns {b}")
    sh(f"ip -n {a} addr add 10.81.0.1/24 dev qa0 && ip -n {b} addr add 10.81.0.2/24 dev qb0")
    sh(f"ip -n {a} link set qa0 up && ip -n {b} link set qb0 up")
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "netdiag", "check", "--ns", a, "--ns", b, "--exit-zero"]
    before = tx_packets(a, "qa0") + tx_packets(b, "qb0")
    subprocess.run(argv, cwd=root, check=True, capture_output=True)
    assert tx_packets(a, "qa0") + tx_packets(b, "qb0") == before
    subprocess.run(argv + ["--probe"], cwd=root, check=True, capture_output=True)
    assert tx_packets(a, "qa0") + tx_packets(b, "qb0") > before


def test_probe_results_survive_a_snapshot_file():
    from dataclasses import replace as replaced

    from netdiag.model import DnsProbe, PathMtuProbe, PortProbe, Probes
    from netdiag.model.serialize import dumps, loads

    probes = Probes(path_mtu=(PathMtuProbe(1, "10.0.0.2", 1300, True, "10.0.0.254",
                                           ((68, "answered"), (1500, "frag-needed"))),),
                    ports=(PortProbe(1, "10.0.0.1", 8080, error="refused"),),
                    dns=(DnsProbe(1, "10.0.0.53", ".", True, "NXDOMAIN"),))
    snapshot = replaced(SnapshotBuilder().build(), probes=probes)
    assert loads(dumps(snapshot)) == snapshot
    assert loads(dumps(SnapshotBuilder().build())).probes is None


def test_probe_refuses_a_saved_snapshot(tmp_path):
    from pathlib import Path

    from netdiag.model.serialize import save

    path = tmp_path / "snap.json"
    save(SnapshotBuilder().build(), path)
    done = subprocess.run([sys.executable, "-m", "netdiag", "check", "--from", str(path),
                           "--probe"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2 and "cannot be used with --from" in done.stderr
    assert "Traceback" not in done.stderr
