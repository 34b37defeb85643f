"""Connections: the sock_diag reader's bound, naming the other end from a snapshot, and
`netdiag show connections` from hand-built snapshots and older files (no root needed)."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
from pathlib import Path

from netdiag.cli import main
from netdiag.collect.sockets import bounded, parse_connection
from netdiag.model import (
    Address,
    Connection,
    HostInfo,
    NamespaceRef,
    NamespaceState,
    NsKind,
    Snapshot,
    Socket,
)
from netdiag.model.connections import peer_finder
from netdiag.model.docker import DockerContainer, DockerEngine, DockerPort
from netdiag.model.serialize import dumps, load, loads, save

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def answer(state: int, src: str, sport: int, dst: str, dport: int, inode: int = 0) -> bytes:
    """An inet_diag_msg as the kernel sends it (include/uapi/linux/inet_diag.h)."""
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    raw = [ipaddress.ip_address(a).packed.ljust(16, b"\0") for a in (src, dst)]
    return (struct.pack("=BBBB", family, state, 0, 0) + struct.pack(">HH", sport, dport)
            + raw[0] + raw[1] + struct.pack("=IQ", 0, 0) + struct.pack("=IIIII", 0, 0, 0, 1000,
                                                                        inode))


def test_a_kernel_answer_becomes_a_connection():
    conn = parse_connection(answer(2, "10.0.0.1", 40000, "10.0.0.2", 80, 77), "tcp", 4)
    assert conn == Connection("tcp", 4, "10.0.0.1", 40000, "10.0.0.2", 80, "syn-sent", 77, 1000)
    six = parse_connection(answer(1, "fd00::1", 1234, "::ffff:10.0.0.9", 53), "udp", 6)
    assert (six.address, six.peer, six.peer_port, six.state) == ("fd00::1", "::ffff:10.0.0.9",
                                                                 53, "connected")


def test_the_bound_keeps_the_telling_states_first_and_counts_the_rest():
    talking = [("tcp", 4, answer(1, "10.0.0.1", 1000 + i, "10.0.0.2", 80)) for i in range(3)]
    talking += [("tcp", 4, answer(6, "10.0.0.1", 2000 + i, "10.0.0.2", 80)) for i in range(4)]
    talking += [("udp", 4, answer(1, "10.0.0.1", 3000, "10.0.0.2", 53)),
                ("tcp", 4, answer(2, "10.0.0.1", 4000, "10.0.0.3", 22))]
    kept, omitted = bounded(talking, limit=2)
    # the connection still opening first, then an established one; time-wait never kept
    assert [(c.state, c.port) for c in kept] == [("established", 1000), ("syn-sent", 4000)]
    assert omitted == (("connected", 1), ("established", 2), ("time-wait", 4))
    everything, none = bounded(talking[:3])
    assert len(everything) == 3 and none == ()


# --- naming the other end ---------------------------------------------------------------------

A = NamespaceRef(id=1, kind=NsKind.NAMED, path="/run/netns/a", label="client", name="client")
B = NamespaceRef(id=2, kind=NsKind.DOCKER, path="/run/docker/netns/b", label="web",
                 container="web")
C = NamespaceRef(id=3, kind=NsKind.NAMED, path="/run/netns/c", label="copy", name="copy")
H = NamespaceRef(id=4, kind=NsKind.HOST, path="/proc/1/ns/net", label="host")


def _address(ifname: str, address: str) -> Address:
    return Address(ifindex=2, ifname=ifname, family=4, address=address, prefixlen=24)


def host_snapshot() -> Snapshot:
    """client ↔ web on 10.0.0.0/24 (and `copy`, holding web's address too); an outside
    client through web's published port; client to the host's published port."""
    client = NamespaceState(ref=A, addresses=(_address("eth0", "10.0.0.1"),), connections=(
        Connection("tcp", 4, "10.0.0.1", 41000, "10.0.0.2", 80, pid=10, process="curl"),
        Connection("tcp", 4, "10.0.0.1", 41001, "10.0.0.254", 8080, pid=10, process="curl"),
        Connection("tcp", 4, "10.0.0.1", 41002, "198.51.100.7", 443, "syn-sent"),
        Connection("udp", 4, "10.0.0.1", 41003, "10.0.0.2", 53, "connected")),
        connections_omitted=(("established", 3000), ("time-wait", 57)))
    web = NamespaceState(ref=B, addresses=(_address("eth0", "10.0.0.2"),), sockets=(
        Socket("tcp", 4, "0.0.0.0", 80, pid=20, process="nginx"),
        Socket("udp", 4, "0.0.0.0", 53, "unconn", pid=21, process="dnsmasq")), connections=(
        Connection("tcp", 4, "10.0.0.2", 80, "10.0.0.1", 41000, pid=20, process="nginx"),
        Connection("tcp", 4, "10.0.0.2", 80, "203.0.113.9", 5555, pid=20, process="nginx")))
    copy = NamespaceState(ref=C, addresses=(_address("eth0", "10.0.0.2"),))
    host = NamespaceState(ref=H, addresses=(_address("docker0", "10.0.0.254"),))
    engine = DockerEngine(url="unix:///var/run/docker.sock", namespace=4, containers=(
        DockerContainer(id="w" * 64, name="web", state="running", netns=2,
                        ports=(DockerPort(80, host_port=8080),)),))
    return Snapshot(created_at="2026-01-01T00:00:00+00:00", host=HostInfo(hostname="h"),
                    namespaces=(client, web, copy, host), docker=(engine,))


def test_the_other_end_is_named_by_its_socket_its_listener_or_its_published_port():
    snapshot = host_snapshot()
    finder = peer_finder(snapshot)
    client, web = snapshot.namespaces[0], snapshot.namespaces[1]
    ends = [finder.peer_end(client, c).text for c in client.connections]
    # web, not copy (both hold 10.0.0.2): web holds the other end's socket
    assert ends == ["web nginx[20]", "host, published → web:80", "outside",
                    "web dnsmasq[21]"]
    assert [finder.peer_end(web, c).text for c in web.connections] == [
        "client curl[10]", "outside, published :8080"]


def test_show_connections_from_a_file_in_text_and_json(tmp_path, capsys):
    path = tmp_path / "snap.json"
    save(host_snapshot(), path)
    assert main(["show", "connections", "--from", str(path)]) == 0
    out = capsys.readouterr().out
    assert "== client (named) ==" in out and "== web (docker) ==" in out
    assert "== copy" not in out and "== host" not in out  # nothing to show there
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "tcp 10.0.0.1:41000 10.0.0.2:80 established curl[10] web nginx[20]" in lines
    assert "… and 3000 more (established 3000) not kept; 57 in time-wait" in lines
    assert main(["show", "connections", "--from", str(path), "--ns", "web", "--json"]) == 0
    (block,) = json.loads(capsys.readouterr().out)
    assert block["namespace"]["label"] == "web" and block["omitted"] == {}
    first = block["connections"][0]
    assert first["peer"] == {"address": "10.0.0.1", "port": 41000}
    assert first["other_end"] == {"label": "client", "namespace": 1, "pid": 10,
                                  "process": "curl", "via": None}
    assert main(["show", "connections", "--from", str(path), "--ns", "copy"]) == 0
    assert "(none)" in capsys.readouterr().out


def test_connections_round_trip_and_older_files_load_without_them(capsys):
    snapshot = host_snapshot()
    assert loads(dumps(snapshot)) == snapshot
    for name in ("tui_host.json", "docker28/healthy.json"):  # schema 1 and schema 8
        old = load(FIXTURES / name)
        assert old.namespaces and all(ns.connections == () and ns.connections_omitted == ()
                                      for ns in old.namespaces)
    assert main(["show", "connections", "--from", str(FIXTURES / "tui_host.json")]) == 0
    assert capsys.readouterr().out == "no connections\n"


def test_conntrack_filters_are_refused_for_connections(capsys):
    assert main(["show", "connections", "--port", "80"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
