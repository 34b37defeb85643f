"""End to end: build each part-2 fault in real namespaces, run `netdiag check --ns ... --format
json`, and check that the rule fires on the right subject with the right evidence — and that
the healthy variant of the same topology gives no finding of that rule."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import sh

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def check(*namespaces: str, probe: bool = False) -> list[dict]:
    argv = [sys.executable, "-m", "netdiag", "check", "--format", "json", "--exit-zero"]
    argv += [arg for ns in namespaces for arg in ("--ns", ns)]
    argv += ["--probe"] if probe else []
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["findings"]


def of_rule(findings: list[dict], rule: str) -> list[dict]:
    return [f for f in findings if f["rule"] == rule]


def evidence_keys(finding: dict) -> set[tuple[str, str]]:
    return {(e["kind"], e["key"]) for e in finding["evidence"]}


def veth(ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
    sh(f"ip link add {name_a} netns {ns_a} type veth peer name {name_b} netns {ns_b}")
    sh(f"ip -n {ns_a} link set {name_a} up && ip -n {ns_b} link set {name_b} up")


def start(ns: str, program: str) -> None:
    subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", program],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- duplicate-address ---------------------------------------------------------------------------


@pytest.fixture
def bridged(netns_factory):
    """Two namespaces, c1 and c2, on bridge br0 in a third, h."""
    h, c1, c2 = netns_factory("h"), netns_factory("c1"), netns_factory("c2")
    sh(f"ip -n {h} link add br0 type bridge && ip -n {h} link set br0 up")
    sh(f"ip -n {h} addr add 10.72.0.1/24 dev br0")
    for c, port in ((c1, "p1"), (c2, "p2")):
        veth(c, "eth0", h, port)
        sh(f"ip -n {h} link set {port} master br0")
    return h, c1, c2


def test_duplicate_ip_on_one_bridge(bridged):
    h, c1, c2 = bridged
    for c in (c1, c2):
        sh(f"ip -n {c} addr add 10.72.0.5/24 dev eth0")
    (finding,) = of_rule(check(h, c1, c2), "duplicate-address")
    assert finding["subject"] == "10.72.0.5"
    assert {e["key"] for e in finding["evidence"] if e["kind"] == "address"} == {"10.72.0.5/24"}
    labels = {e["text"].rsplit(" in ", 1)[1] for e in finding["evidence"]
              if e["kind"] == "address"}
    assert labels == {c1, c2}
    assert ("link", "br0") in evidence_keys(finding)


def test_duplicate_mac_on_one_bridge(bridged):
    h, c1, c2 = bridged
    sh(f"ip -n {c1} addr add 10.72.0.5/24 dev eth0 && ip -n {c2} addr add 10.72.0.6/24 dev eth0")
    for c in (c1, c2):
        sh(f"ip -n {c} link set eth0 address 02:00:00:72:00:05")
    (finding,) = of_rule(check(h, c1, c2), "duplicate-address")
    assert finding["subject"] == "br0" and finding["namespace"]["label"] == h
    assert evidence_keys(finding) == {("link", "eth0")}
    assert "02:00:00:72:00:05" in finding["message"]


def test_distinct_addresses_pass(bridged):
    h, c1, c2 = bridged
    sh(f"ip -n {c1} addr add 10.72.0.5/24 dev eth0 && ip -n {c2} addr add 10.72.0.6/24 dev eth0")
    assert of_rule(check(h, c1, c2), "duplicate-address") == []


# --- vxlan-fdb-stale -------------------------------------------------------------------------


@pytest.fixture
def overlay(netns_factory):
    """Hosts h1 and h2 (underlay 10.73.0.0/24), each with br0 + vxlan0 (VNI 42); container c1
    (10.74.0.2) on h1's bridge. h1 knows c2 (10.74.0.3, on h2) through the FDB."""
    h1, h2, c1 = netns_factory("h1"), netns_factory("h2"), netns_factory("c1")
    veth(h1, "eth0", h2, "eth0")
    for number, h in ((1, h1), (2, h2)):
        sh(f"ip -n {h} addr add 10.73.0.{number}/24 dev eth0")
        sh(f"ip -n {h} link add br0 type bridge && ip -n {h} link set br0 up")
        sh(f"ip -n {h} link add vxlan0 type vxlan id 42 local 10.73.0.{number} dev eth0 "
           "dstport 4789 nolearning")
        sh(f"ip -n {h} link set vxlan0 master br0 && ip -n {h} link set vxlan0 up")
    veth(c1, "eth0", h1, "p1")
    sh(f"ip -n {h1} link set p1 master br0 && ip -n {c1} addr add 10.74.0.2/24 dev eth0")
    sh(f"bridge -n {h1} fdb append 02:42:0a:4a:00:03 dev vxlan0 dst 10.73.0.2 self permanent")
    sh(f"ip -n {h1} neigh add 10.74.0.3 lladdr 02:42:0a:4a:00:03 dev vxlan0 nud permanent")
    sh(f"bridge -n {h2} fdb append 02:42:0a:4a:00:02 dev vxlan0 dst 10.73.0.1 self permanent")
    return h1, h2, c1


def test_healthy_overlay_passes(overlay):
    assert of_rule(check(*overlay), "vxlan-fdb-stale") == []


def test_fdb_entry_for_an_unknown_vtep(overlay):
    h1, h2, c1 = overlay
    sh(f"bridge -n {h1} fdb append 02:42:0a:4a:00:09 dev vxlan0 dst 10.73.0.9 self permanent")
    (finding,) = of_rule(check(h1, h2, c1), "vxlan-fdb-stale")
    assert finding["namespace"]["label"] == h1 and finding["subject"] == "vxlan0"
    assert "10.73.0.9 is none of the VTEPs of this VNI 42 overlay" in finding["message"]
    assert ("fdb", "vxlan0/02:42:0a:4a:00:09") in evidence_keys(finding)
    assert finding["repair"]["safety"] == "safe"


def test_fdb_entry_for_an_unroutable_vtep(overlay):
    h1, h2, c1 = overlay
    sh(f"bridge -n {h1} fdb append 02:42:0a:4a:00:08 dev vxlan0 dst 192.168.77.7 self permanent")
    (finding,) = of_rule(check(h1, h2, c1), "vxlan-fdb-stale")
    assert "no route to VTEP 192.168.77.7" in finding["message"]
    assert ("route", "192.168.77.7") in evidence_keys(finding)


def test_permanent_neighbour_for_a_local_address(overlay):
    h1, h2, c1 = overlay
    sh(f"ip -n {h1} neigh add 10.74.0.2 lladdr 02:42:0a:4a:00:02 dev vxlan0 nud permanent")
    sh(f"bridge -n {h1} fdb append 02:42:0a:4a:00:02 dev vxlan0 dst 10.73.0.2 self permanent")
    (finding,) = of_rule(check(h1, h2, c1), "vxlan-fdb-stale")
    assert "10.74.0.2 is now local" in finding["message"]
    assert ("neighbour", "vxlan0/10.74.0.2") in evidence_keys(finding)
    assert ("address", "10.74.0.2") in evidence_keys(finding)


# --- dns-unreachable --------------------------------------------------------------------------


@pytest.fixture
def resolv_conf():
    """Writes /etc/netns/NS/resolv.conf (read by netdiag for named namespaces); removes it."""
    made: list[Path] = []

    def write(ns: str, *lines: str) -> None:
        folder = Path("/etc/netns") / ns
        folder.mkdir(parents=True, exist_ok=True)
        made.append(folder)
        (folder / "resolv.conf").write_text("".join(f"{line}\n" for line in lines))

    yield write
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.rmdir("/etc/netns")  # only when empty: other tests may be using it
    except OSError:
        pass


@pytest.fixture
def client_server(netns_factory):
    client, server = netns_factory("cl"), netns_factory("srv")
    veth(client, "eth0", server, "eth0")
    sh(f"ip -n {client} addr add 10.75.0.2/24 dev eth0")
    sh(f"ip -n {server} addr add 10.75.0.53/24 dev eth0")
    return client, server


def test_nameserver_without_route(client_server, resolv_conf):
    client, server = client_server
    resolv_conf(client, "nameserver 10.75.9.9", "nameserver 10.75.0.53")
    (finding,) = of_rule(check(client, server), "dns-unreachable")
    assert finding["subject"] == "10.75.9.9" and finding["namespace"]["label"] == client
    assert "no route" in finding["message"]
    assert ("dns", "nameserver 10.75.9.9") in evidence_keys(finding)


def test_reachable_nameserver_passes_and_probe_finds_it_silent(client_server, resolv_conf):
    client, server = client_server
    resolv_conf(client, "nameserver 10.75.0.53")
    assert of_rule(check(client, server), "dns-unreachable") == []
    # The route exists, but nothing answers on 10.75.0.53: only a real query shows it.
    (finding,) = of_rule(check(client, server, probe=True), "dns-unreachable")
    assert finding["subject"] == "10.75.0.53" and "did not answer" in finding["message"]
    assert any(e["kind"] == "probe" for e in finding["evidence"])


EMBEDDED_NAT = """*nat
:DOCKER_OUTPUT - [0:0]
:DOCKER_POSTROUTING - [0:0]
-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT
-A POSTROUTING -d 127.0.0.11/32 -j DOCKER_POSTROUTING
-A DOCKER_OUTPUT -d 127.0.0.11/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.11:40111
-A DOCKER_OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:40222
-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p tcp -m tcp --sport 40111 -j SNAT --to-source :53
-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p udp -m udp --sport 40222 -j SNAT --to-source :53
COMMIT
"""

EMBEDDED_LISTENER = """
import socket, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.11", 40222))
t = socket.socket(); t.bind(("127.0.0.11", 40111)); t.listen()
time.sleep(600)
"""


@pytest.mark.parametrize("rules, listener, fires", [
    (False, False, "NAT rules"),
    (True, False, "nothing listens on udp port 40222, tcp port 40111"),
    (True, True, None),
])
def test_embedded_dns(netns_factory, resolv_conf, rules, listener, fires):
    ns = netns_factory("emb")
    resolv_conf(ns, "nameserver 127.0.0.11", "options ndots:0")
    if rules:
        subprocess.run(["ip", "netns", "exec", ns, "iptables-restore"], input=EMBEDDED_NAT,
                       text=True, check=True)
    if listener:
        start(ns, EMBEDDED_LISTENER)
        for _ in range(40):
            if ":40111" in sh(f"ip netns exec {ns} ss -Hlnt"):
                break
            time.sleep(0.05)
    found = of_rule(check(ns), "dns-unreachable")
    if fires is None:
        assert found == []
    else:
        (finding,) = found
        assert finding["subject"] == "127.0.0.11" and fires in finding["message"]


# --- bridge-isolation-broken ---------------------------------------------------------------------

BRIDGES = {"br-a": "10.77.1.1/24", "br-b": "10.77.2.1/24", "br-c": "10.77.3.1/24"}


def classic_filter(unisolated: str = "") -> str:
    lines = ["*filter", ":FORWARD DROP [0:0]", ":DOCKER - [0:0]", ":DOCKER-USER - [0:0]",
             ":DOCKER-ISOLATION-STAGE-1 - [0:0]", ":DOCKER-ISOLATION-STAGE-2 - [0:0]",
             "-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1"]
    for br in BRIDGES:
        lines += [f"-A FORWARD -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                  f"-A FORWARD -o {br} -j DOCKER", f"-A FORWARD -i {br} ! -o {br} -j ACCEPT",
                  f"-A FORWARD -i {br} -o {br} -j ACCEPT",
                  f"-A DOCKER-ISOLATION-STAGE-1 -i {br} ! -o {br} -j DOCKER-ISOLATION-STAGE-2"]
        if br != unisolated:
            lines.append(f"-A DOCKER-ISOLATION-STAGE-2 -o {br} -j DROP")
    lines += ["-A DOCKER-ISOLATION-STAGE-1 -j RETURN", "-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
              "-A DOCKER-USER -j RETURN", "COMMIT", ""]
    return "\n".join(lines)


@pytest.mark.parametrize("unisolated", ["", "br-c"])
def test_bridge_isolation(netns_factory, unisolated):
    ns = netns_factory("iso")
    for name, address in BRIDGES.items():
        sh(f"ip -n {ns} link add {name} type bridge && ip -n {ns} addr add {address} dev {name}")
    sh(f"ip netns exec {ns} sysctl -qw net.ipv4.ip_forward=1")
    subprocess.run(["ip", "netns", "exec", ns, "iptables-restore"],
                   input=classic_filter(unisolated), text=True, check=True)
    found = of_rule(check(ns), "bridge-isolation-broken")
    if not unisolated:
        assert found == []
        return
    assert {f["subject"] for f in found} == {"br-a<->br-c", "br-b<->br-c"}
    finding = next(f for f in found if f["subject"] == "br-a<->br-c")
    assert finding["severity"] == "warning" and finding["namespace"]["label"] == ns
    accepted = [e for e in finding["evidence"] if "accepted by" in e["text"]]
    assert accepted and accepted[-1]["key"].startswith("filter/FORWARD/")
    assert "-i br-a ! -o br-a -j ACCEPT" in accepted[-1]["text"]
    assert any(e["key"].startswith("filter/DOCKER-ISOLATION-STAGE-2/")
               for e in finding["evidence"] if e["text"].startswith("while"))


# --- macvlan-host-isolation ------------------------------------------------------------------


@pytest.mark.parametrize("shim", [False, True])
def test_macvlan_children_of_a_used_parent(netns_factory, shim):
    h, wire, c1 = netns_factory("mvh"), netns_factory("mvw"), netns_factory("mvc")
    # No dummy driver here: the parent is a veth. Explicit indexes keep the parent's index
    # unique among the namespaces, which is what lets netdiag tie a child to its parent.
    sh(f"ip -n {h} link add lan0 index 71 type veth peer name lan1 index 72 netns {wire}")
    sh(f"ip -n {h} link set lan0 up && ip -n {wire} link set lan1 up")
    sh(f"ip -n {h} addr add 10.78.0.1/24 dev lan0")
    sh(f"ip -n {h} link add mv0 index 73 link lan0 type macvlan mode bridge")
    sh(f"ip -n {h} link set mv0 netns {c1}")
    sh(f"ip -n {c1} addr add 10.78.0.10/24 dev mv0 && ip -n {c1} link set mv0 up")
    if shim:
        sh(f"ip -n {h} link add mvshim link lan0 type macvlan mode bridge")
        sh(f"ip -n {h} addr add 10.78.0.254/32 dev mvshim && ip -n {h} link set mvshim up")
    found = of_rule(check(h, c1), "macvlan-host-isolation")
    if shim:
        assert found == []
        return
    (finding,) = found
    assert finding["severity"] == "info"
    assert finding["namespace"]["label"] == h and finding["subject"] == "lan0"
    assert ("address", "10.78.0.1/24") in evidence_keys(finding)
    assert ("link", "mv0") in evidence_keys(finding)


# --- the repairs work: apply a finding's steps, and the rule is quiet afterwards ------------


def findings_in_process(names: tuple[str, ...], rule_module):
    from netdiag.collect import collect_snapshot, discovery, namespace_refs
    from netdiag.findings.rule import CheckConfig

    found = discovery.discover()
    snapshot = collect_snapshot([namespace_refs.resolve(name, found) for name in names])
    return snapshot, list(rule_module.check(snapshot, CheckConfig()))


@pytest.mark.parametrize("fault", ["unknown-vtep", "local-neighbour"])
def test_vxlan_repair_removes_the_stale_entries(overlay, fault):
    from netdiag.checks.overlay import vxlan_fdb_stale
    from netdiag.repair.executor import Policy, execute

    h1, h2, c1 = overlay
    if fault == "unknown-vtep":
        sh(f"bridge -n {h1} fdb append 02:42:0a:4a:00:09 dev vxlan0 dst 10.73.0.9 self permanent")
    else:
        sh(f"ip -n {h1} neigh add 10.74.0.2 lladdr 02:42:0a:4a:00:02 dev vxlan0 nud permanent")
        sh(f"bridge -n {h1} fdb append 02:42:0a:4a:00:02 dev vxlan0 dst 10.73.0.2 self permanent")
    snapshot, (finding,) = findings_in_process(overlay, vxlan_fdb_stale)
    results = execute(finding.repair, snapshot,
                      Policy.for_namespaces(snapshot, [finding.namespace.id]))
    assert all(r.applied for r in results), results
    assert findings_in_process(overlay, vxlan_fdb_stale)[1] == []
    assert "02:42:0a:4a:00:03" in sh(f"bridge -n {h1} fdb show dev vxlan0")  # the good one stays


def test_isolation_repair_isolates_the_pair(netns_factory):
    from netdiag.checks.firewall import bridge_isolation_broken
    from netdiag.repair.executor import Policy, execute

    ns = netns_factory("isofix")
    for name, address in BRIDGES.items():
        sh(f"ip -n {ns} link add {name} type bridge && ip -n {ns} addr add {address} dev {name}")
    sh(f"ip netns exec {ns} sysctl -qw net.ipv4.ip_forward=1")
    subprocess.run(["ip", "netns", "exec", ns, "iptables-restore"],
                   input=classic_filter("br-c"), text=True, check=True)
    snapshot, findings = findings_in_process((ns,), bridge_isolation_broken)
    assert len(findings) == 2
    for finding in findings:
        results = execute(finding.repair, snapshot,
                          Policy(frozenset((ns_id(snapshot),)), unsafe=True))
        assert all(r.applied for r in results), results
    assert findings_in_process((ns,), bridge_isolation_broken)[1] == []


def ns_id(snapshot) -> int:
    (state,) = snapshot.namespaces
    return state.ref.id
