"""`netdiag show connections` on real connections between two namespaces of this test.

A server in `b` holds a TCP connection and answers UDP; a client in `a` holds its TCP
connection, a connected UDP socket to `b` and a TCP connection over its own loopback. The
view must list each with its process and name the other end (namespace and process), agree
with `ss` in the same namespaces, and say the same in JSON and from a saved snapshot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from netdiag.model.serialize import load
from tests.conftest import sh

pytestmark = pytest.mark.integration

TCP_PORT = 7301

SERVER = textwrap.dedent(f"""
    import socket, sys
    tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", {TCP_PORT})); tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", {TCP_PORT + 1}))
    print("ready", flush=True)
    held, _ = tcp.accept()
    data, peer = udp.recvfrom(64); udp.sendto(data, peer)
    sys.stdin.read()
""")

CLIENT = textwrap.dedent(f"""
    import json, socket, sys
    tcp = socket.create_connection((sys.argv[1], {TCP_PORT}))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.connect((sys.argv[1], {TCP_PORT + 1}))
    udp.send(b"netdiag"); udp.settimeout(5); udp.recv(64)
    local = socket.socket(); local.bind(("127.0.0.1", 0)); local.listen()
    near = socket.create_connection(local.getsockname()); far, _ = local.accept()
    print(json.dumps({{"tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1],
                      "loop": near.getsockname()[1], "loop_server": local.getsockname()[1]}}),
          flush=True)
    sys.stdin.read()
""")


def netdiag(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netdiag", *args], capture_output=True,
                          text=True, timeout=120)


def start(namespace: str, script: str, *argv: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-c", script,
                             *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@pytest.fixture
def connected(netns_factory):
    """(a, b, the client's ports, client pid, server pid) with the connections held."""
    a, b = netns_factory("ca"), netns_factory("cb")
    sh(f"ip link add ndtc{a[-6:-3]} netns {a} type veth peer name eth0 netns {b}")
    sh(f"ip -n {a} link set ndtc{a[-6:-3]} up && ip -n {b} link set eth0 up")
    sh(f"ip -n {a} addr add 10.93.0.1/24 dev ndtc{a[-6:-3]}")
    sh(f"ip -n {b} addr add 10.93.0.2/24 dev eth0")
    server = start(b, SERVER)
    client = None
    try:
        assert server.stdout.readline().strip() == "ready"
        client = start(a, CLIENT, "10.93.0.2")
        ports = json.loads(client.stdout.readline())
        yield a, b, ports, client.pid, server.pid
    finally:
        for process in (client, server):
            if process is not None:
                process.stdin.close()
                process.kill()
                process.wait(timeout=10)


def test_both_ends_named_in_text_json_and_from_a_snapshot(connected, tmp_path):
    a, b, ports, client, server = connected
    shown = netdiag("show", "connections", "--ns", a, "--ns", b)
    assert shown.returncode == 0, shown.stderr
    blocks = {block.splitlines()[0]: block for block in shown.stdout.split("\n\n")}
    text_a = " ".join(blocks[f"== {a} (named) =="].split())
    text_b = " ".join(blocks[f"== {b} (named) =="].split())
    process_a, process_b = f"[{client}]", f"[{server}]"
    # the client's TCP connection, its other end the server's socket in b
    assert f"tcp 10.93.0.1:{ports['tcp']} 10.93.0.2:{TCP_PORT} established" in text_a, text_a
    row = next(line for line in text_a.split(" tcp ") if f":{ports['tcp']} " in line)
    assert process_a in row and f"{b} " in row and process_b in row, row
    # the same connection from b: the client in a at the other end
    row = next(line for line in text_b.split(" tcp ")
               if f"10.93.0.1:{ports['tcp']}" in line)
    assert "established" in row and process_b in row and a in row and process_a in row, row
    # a connected UDP socket: its other end is the server's unconnected socket in b
    row = next(line for line in text_a.split(" udp ") if f":{ports['udp']} " in line)
    assert f"10.93.0.1:{ports['udp']} 10.93.0.2:{TCP_PORT + 1} connected" in row, text_a
    assert f"{b} " in row and process_b in row, row
    # over loopback: both ends in a
    assert f"127.0.0.1:{ports['loop']} 127.0.0.1:{ports['loop_server']} established" in text_a
    assert text_a.count("this namespace") == 2, text_a

    # as ss sees the same namespaces
    for namespace, text in ((a, text_a), (b, text_b)):
        ss = sh(f"ip netns exec {namespace} ss -Htn state established").splitlines()
        assert text.count(" established ") == len(ss) >= 1, (ss, text)

    # JSON, live and from a saved snapshot alike
    as_json = netdiag("show", "connections", "--ns", a, "--json")
    assert as_json.returncode == 0, as_json.stderr
    (block,) = json.loads(as_json.stdout)
    tcp = next(c for c in block["connections"] if c["local"]["port"] == ports["tcp"])
    assert tcp["pid"] == client and tcp["state"] == "established"
    assert tcp["other_end"]["label"] == b and tcp["other_end"]["pid"] == server
    saved = tmp_path / "snap.json"
    assert netdiag("snapshot", "--ns", a, "--ns", b, "-o", str(saved)).returncode == 0
    assert any(c.port == ports["tcp"] for ns in load(saved).namespaces for c in ns.connections)
    offline = netdiag("show", "connections", "--from", str(saved), "--ns", a, "--json")
    (block,) = json.loads(offline.stdout)
    tcp = next(c for c in block["connections"] if c["local"]["port"] == ports["tcp"])
    assert tcp["other_end"]["label"] == b and tcp["other_end"]["pid"] == server
