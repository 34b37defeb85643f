"""`netdiag capture` on the bundled broken labs, held against `path --probe`; its pcapng read back
by tcpdump; Ctrl-C leaves nothing behind; and `show conntrack` on a real DNAT. Traffic stays
between the test's namespaces."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import time

import pytest

from netdiag.topology import schema
from tests.conftest import sh
from tests.integration.test_lab import EXAMPLES, NETDIAG, lab  # noqa: F401 - the fixture
from tests.interrupts import interrupt_at

pytestmark = pytest.mark.integration


def netdiag_json(*args: str) -> tuple[int, dict]:
    done = subprocess.run([*NETDIAG, *args, "--format", "json"], capture_output=True,
                          text=True, timeout=180)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def pcapng_interfaces(path: str) -> list[str]:
    """The if_name of each interface description block, read block by block."""
    names = []
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset + 12 <= len(data):
        kind, length = struct.unpack_from("=II", data, offset)
        if kind == 1:  # interface description: link type, reserved, snaplen, then options
            at = offset + 16
            while at + 4 <= offset + length - 4:
                code, size = struct.unpack_from("=HH", data, at)
                if code == 0:
                    break
                if code == 2:
                    names.append(data[at + 4:at + 4 + size].decode())
                at += 4 + size + (-size % 4)
        offset += length
    return names


# (lab, source node, destination, flags, where the packet is last seen: node:ifname, the
# conntrack entries of the probe with their DNAT: node → where to)
FLOWS = [
    # the overlay's VIP, DNATed to db-1 in web itself and carried in VXLAN over the underlay
    ("broken-fdb", "web", "10.0.9.4:6379", [], "db-1:eth0",
     {"web": "10.0.9.3:6379", "db-1": None}),
    # 1450 bytes with DF: fit the overlay, not host2's 1400-byte underlay link; the frame
    # leaves the underlay bridge's port and dies at its peer
    ("broken-mtu", "web", "10.0.9.3", ["--size", "1450"], "ul:host2", {"web": None}),
    # the published port, DNATed by host1 to web's 5000 past the stale rule
    ("broken-ports", "ul", "10.99.0.1:8080", [], "web:eth0",
     {"host1": "172.28.0.3:5000", "web": None}),
]


@pytest.mark.parametrize("example, src, dst, flags, last, tracked", FLOWS)
def test_capture_agrees_with_path_probe_on_broken_labs(lab, tmp_path, example, src, dst,  # noqa: F811
                                                       flags, last, tracked):
    j = lab(schema.load(EXAMPLES / f"{example}.yaml"))
    source = j.nodes[src]
    code, path = netdiag_json("path", source, dst, *flags, "--probe")
    assert path["probe"]["sent"] and path["probe"]["agrees"], path["probe"]
    written = tmp_path / "flow.pcapng"
    code, found = netdiag_json("capture", source, dst, *flags, "-w", str(written))
    assert found["disposition"] == path["disposition"]
    assert found["probe"]["outcome"] == path["probe"]["outcome"]
    assert found["agrees"] is True and code == 0, found
    node, ifname = last.split(":")
    label = f"{j.name}/{node}"
    assert found["last_seen"] == f"{label}:{ifname}" == found["expected"]
    # the forward packet was seen on every point up to the last, and on none after
    seen = [p["forward"] > 0 for p in found["points"] if p["hop"]]
    assert seen == sorted(seen, reverse=True), found["points"]
    assert {entry["namespace"].removeprefix(f"{j.name}/"): (entry["dnat"] or {}).get("to")
            for entry in found["conntrack"]} == tracked
    delivered = path["disposition"] == "delivered"
    assert (sum(p["reply"] for p in found["points"]) > 0) == delivered
    # the file: tcpdump reads every frame; its interfaces are the hops
    read = subprocess.run(["tcpdump", "-r", str(written), "-n", "-#"], capture_output=True,
                          text=True)
    assert read.returncode == 0, read.stderr
    numbered = [line for line in read.stdout.splitlines() if re.match(r"\s*\d+\s", line)]
    assert len(numbered) == found["packets"] > 0  # a VXLAN frame's inner packet: its own line
    assert pcapng_interfaces(str(written)) == [p["name"] for p in found["points"]]


def test_capture_tells_where_the_kernel_departs_from_the_model(lab):  # noqa: F811
    """A drop the model cannot see (a queueing discipline, which it does not read, that holds
    no packet) on the source's way out: the packet is seen nowhere, and the capture says it
    disagrees (exit 1)."""
    j = lab(schema.load(EXAMPLES / "broken-ports.yaml"))
    ul = j.nodes["ul"]
    sh(f"tc -n {ul} qdisc add dev br0 root pfifo limit 0")
    code, found = netdiag_json("capture", ul, "10.99.0.1:8080")
    assert found["disposition"] == "delivered" and found["expected"].endswith("/web:eth0")
    assert found["last_seen"] is None and found["agrees"] is False and code == 1, found


def test_capture_waits_for_the_users_own_traffic(lab, tmp_path):  # noqa: F811
    """--wait sends nothing: the user's pings, sent until the capture has its --count frames,
    are what it sees, where the model expects them."""
    j = lab(schema.load(EXAMPLES / "broken-ports.yaml"))
    ul = j.nodes["ul"]
    out = tmp_path / "out.json"
    with open(out, "w") as written:
        waiting = subprocess.Popen([*NETDIAG, "capture", ul, "10.99.0.1", "--wait",
                                    "--timeout", "60", "--count", "4", "--format", "json"],
                                   stdout=written, stderr=subprocess.STDOUT)
    pings = 0
    try:
        while waiting.poll() is None:  # the user's traffic, until the capture has enough
            subprocess.run(["ip", "netns", "exec", ul, "ping", "-c1", "-W1", "10.99.0.1"],
                           capture_output=True)
            pings += 1
    finally:
        if waiting.poll() is None:
            waiting.kill()
        waiting.wait()
    found = json.loads(out.read_text())
    assert found["probe"] is None and found["truncated"] and 4 <= found["packets"] <= 8, found
    # the conntrack entries of the pings captured (each its own echo identifier), not those
    # of every ping sent while the capture was getting ready
    forward = sum(p["forward"] for p in found["points"])
    assert 1 <= len(found["conntrack"]) <= forward < pings, (found["conntrack"], pings)
    assert found["agrees"] and found["last_seen"] == f"{j.name}/host1:eth0", json.dumps(found)
    assert [p["name"] for p in found["points"]] == [f"{j.name}/ul:br0", f"{j.name}/host1:eth0"]


def _pids(namespaces: list[str]) -> set[str]:
    return {pid for ns in namespaces for pid in sh(f"ip netns pids {ns}").split()}


@pytest.mark.parametrize("flags", [["--wait", "--timeout", "60"], []])
def test_ctrl_c_leaves_no_capture_and_no_listener_behind(lab, flags):  # noqa: F811
    """Ctrl-C while the interfaces are watched (awaiting traffic, or as the probe goes out to
    a port where nothing listens, so a temporary listener is up): exit 130, no process of
    netdiag's left in the lab's namespaces, and none of its own."""
    j = lab(schema.load(EXAMPLES / "broken-ports.yaml"))
    before = _pids(j.namespaces)
    stopped = interrupt_at(["capture", j.nodes["ul"], "10.99.0.1:9999", *flags],
                           lambda line: line.startswith("capturing on"), timeout=120)
    assert stopped.returncode == 130, stopped.describe()
    assert "netdiag: interrupted" in stopped.shown, stopped.describe()
    # The probe's temporary listener, put up when nothing listens, ends by itself within
    # its wait (2 s): netdiag/probe/path.py does not end it when interrupted while it starts.
    deadline = time.monotonic() + 10
    while _pids(j.namespaces) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pids(j.namespaces) == before
    for ns in j.namespaces:  # no packet socket stays open (`ss -0`: AF_PACKET)
        assert sh(f"ip netns exec {ns} ss -0 -H -n").strip() == "", ns


# --- show conntrack --------------------------------------------------------------------------


def test_show_conntrack_shows_a_dnat_translation(netns_factory):
    """a → r:8080, which r DNATs to b:80: r tracks the connection with its translation, the
    filters keep it or leave it out; an address that is not an address is refused."""
    a, r, b = netns_factory("ca"), netns_factory("cr"), netns_factory("cb")
    sh(f"ip link add va netns {a} type veth peer name vr netns {r}")
    sh(f"ip link add vb netns {b} type veth peer name vr2 netns {r}")
    for ns, dev, address in ((a, "va", "10.73.1.1/24"), (r, "vr", "10.73.1.2/24"),
                             (r, "vr2", "10.73.2.1/24"), (b, "vb", "10.73.2.2/24")):
        sh(f"ip -n {ns} addr add {address} dev {dev} && ip -n {ns} link set {dev} up")
    sh(f"ip -n {a} route add default via 10.73.1.2")
    sh(f"ip -n {b} route add default via 10.73.2.1")
    sh(f"ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1")
    sh(f"ip netns exec {r} iptables -t nat -A PREROUTING -p tcp -d 10.73.1.2 --dport 8080 "
       "-j DNAT --to-destination 10.73.2.2:80")
    server = subprocess.Popen(
        ["ip", "netns", "exec", b, sys.executable, "-c",
         "import socket; s = socket.create_server(('0.0.0.0', 80)); print('ready', flush=True); "
         "c = s.accept()[0]; c.recv(1); c.close()"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        sh(f"ip netns exec {a} {sys.executable} -c \"import socket; "
           "socket.create_connection(('10.73.1.2', 8080), timeout=5)\"")
    finally:
        server.kill()
        server.wait()
    shown = subprocess.run([*NETDIAG, "show", "conntrack", "--ns", r, "--port", "8080",
                            "--json"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    [block] = json.loads(shown.stdout)
    [entry] = [c for c in block["connections"] if c["proto"] == "tcp"]
    assert entry["original"]["src"] == "10.73.1.1" and entry["original"]["dport"] == 8080
    assert entry["dnat"] == {"from": "10.73.1.2:8080", "to": "10.73.2.2:80"}
    assert entry["snat"] is None and entry["replied"] is True
    text = subprocess.run([*NETDIAG, "show", "conntrack", "--ns", r, "--addr", "10.73.2.2"],
                          capture_output=True, text=True).stdout
    assert "10.73.1.1:" in text and "10.73.2.2:80" in text, text
    other = subprocess.run([*NETDIAG, "show", "conntrack", "--ns", r, "--addr", "10.73.9.9"],
                           capture_output=True, text=True).stdout
    assert "(none)" in other and "10.73.1.1" not in other
    bad = subprocess.run([*NETDIAG, "show", "conntrack", "--ns", r, "--addr", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
