"""Service VIP load balancing with packets: 300 connections spread over 3 backends, a drained
backend gets no new connections while its established one carries on, a VIP without backends
refuses, a published port answers through every host (routing mesh), and services recorded in
the store are programmed and drained the same way."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter

import pytest

from netdiag import netns
from netdiag.drivers.lb import Backend, ServiceVip, program
from netdiag.drivers.lb.balancer import backend_for
from netdiag.drivers.lb.store_services import drain, put_service, sync
from netdiag.store import SqliteStore
from netdiag.store.records import Endpoint, Network, PortBinding, Service
from tests.conftest import sh

pytestmark = pytest.mark.integration

# A backend: says its name on connect, then echoes lines until the client closes.
SERVER = r"""
import socket, sys, threading
name, host = sys.argv[1], sys.argv[2]
srv = socket.create_server((host, 8080), backlog=256)
def serve(conn):
    with conn, conn.makefile("rwb", buffering=0) as f:
        f.write(name.encode() + b"\n")
        for line in f:
            f.write(line)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""
BACKENDS = {"b1": "10.204.0.11", "b2": "10.204.0.12", "b3": "10.204.0.13"}
VIP = "10.204.0.100"  # from the network's subnet, as Docker allocates VIPs


@pytest.fixture
def lab(netns_factory):
    """h1 holds a bridge to three backends; h2 and a client share an underlay with h1."""
    h1, h2, client = netns_factory("h1"), netns_factory("h2"), netns_factory("cl")
    sh(f"ip -n {h1} link add br0 type bridge && ip -n {h1} addr add 10.204.0.1/24 dev br0 "
       f"&& ip -n {h1} link set br0 up")
    servers = []
    try:
        for name, address in BACKENDS.items():
            ns = netns_factory(name)
            sh(f"ip -n {ns} link add eth0 type veth peer name v{name} netns {h1}")
            sh(f"ip -n {h1} link set v{name} master br0 up")
            sh(f"ip -n {ns} addr add {address}/24 dev eth0 && ip -n {ns} link set eth0 up "
               f"&& ip -n {ns} route add default via 10.204.0.1")
            servers.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                                             SERVER, name, address]))
        sh(f"ip -n {client} link add ubr type bridge && ip -n {client} link set ubr up "
           f"&& ip -n {client} addr add 10.205.0.254/24 dev ubr")
        for i, host in enumerate((h1, h2), start=1):
            sh(f"ip -n {host} link add uplink type veth peer name u{i} netns {client}")
            sh(f"ip -n {client} link set u{i} master ubr up")
            sh(f"ip -n {host} addr add 10.205.0.{i}/24 dev uplink && "
               f"ip -n {host} link set uplink up")
        sh(f"ip -n {h2} route add 10.204.0.0/24 via 10.205.0.1")
        sh(f"ip netns exec {h1} sysctl -qw net.ipv4.ip_forward=1")
        for address in BACKENDS.values():
            wait_listening(h1, address)
        yield h1, h2, client
    finally:
        for server in servers:
            server.kill()
            server.wait()


def wait_listening(ns: str, address: str) -> None:
    for _ in range(100):
        try:
            connect(ns, address, 8080).close()
            return
        except OSError:
            subprocess.run(["sleep", "0.05"])
    raise AssertionError(f"backend {address} never listened")


def connect(ns: str, address: str, port: int) -> socket.socket:
    with netns.entered(f"/run/netns/{ns}"):
        return socket.create_connection((address, port), timeout=5)


def who_answers(ns: str, address: str, port: int) -> str:
    with connect(ns, address, port) as conn:
        return conn.makefile("rb").readline().decode().strip()


def service(*backends: Backend, **kw) -> ServiceVip:
    return ServiceVip("web", VIP, 80, backends, **kw)


ALL = tuple(Backend(address, 8080) for address in BACKENDS.values())


def test_vip_spreads_300_connections_fairly(lab):
    h1, _, _ = lab
    assert backend_for(f"/run/netns/{h1}") == "nftables"  # this kernel has no IPVS
    program(f"/run/netns/{h1}", [service(*ALL)])
    counts = Counter(who_answers(h1, VIP, 80) for _ in range(300))
    assert set(counts) == set(BACKENDS)
    assert all(60 <= n <= 140 for n in counts.values()), counts


def test_drained_backend_gets_no_new_connections_but_keeps_established(lab):
    h1, _, _ = lab
    path = f"/run/netns/{h1}"
    program(path, [service(*ALL)])
    held = []
    for _ in range(12):  # hold an established connection to b3
        conn = connect(h1, VIP, 80)
        reader = conn.makefile("rb")
        held.append(conn)
        if reader.readline().strip() == b"b3":
            break
    else:
        pytest.fail("no connection reached b3")
    program(path, [service(*ALL).drained(BACKENDS["b3"])])
    counts = Counter(who_answers(h1, VIP, 80) for _ in range(60))
    assert counts["b3"] == 0 and counts["b1"] > 0 and counts["b2"] > 0
    conn.sendall(b"still there\n")
    assert reader.readline() == b"still there\n"
    for c in held:
        c.close()


def test_vip_without_backends_refuses(lab):
    h1, _, _ = lab
    program(f"/run/netns/{h1}", [service()])
    with pytest.raises(ConnectionRefusedError):
        connect(h1, VIP, 80)


def test_published_port_answers_through_every_host(lab):
    h1, h2, client = lab
    svc = service(*ALL, published_port=8080)
    for host in (h1, h2):
        program(f"/run/netns/{host}", [svc])
    for host_address in ("10.205.0.1", "10.205.0.2"):
        answers = {who_answers(client, host_address, 8080) for _ in range(6)}
        assert answers == set(BACKENDS), host_address
    program(f"/run/netns/{h2}", [])
    assert "netdiag_lb" not in sh(f"ip netns exec {h2} nft list tables")


def test_services_from_the_store_spread_and_drain(lab, tmp_path):
    h1, _, _ = lab
    path = f"/run/netns/{h1}"
    with SqliteStore(tmp_path / "drivers.db") as store:
        network = Network(id="b" * 64, name="front", driver="bridge", host=path,
                          subnet="10.204.0.0/24", gateway="10.204.0.1")
        with store.transaction() as tx:
            tx.add_network(network)
            for name, address in BACKENDS.items():
                tx.add_endpoint(Endpoint(id=name, network_id=network.id, name=name, host=path,
                                         address=f"{address}/24"))
        service = put_service(store, Service(id="s1", name="web", network_id=network.id,
                                             vip=f"{VIP}/24", ports=(PortBinding(8080),),
                                             backends=tuple(BACKENDS)))
        assert dict(service.data)["mark"] == "256"
        assert [v.mark for v in sync(store, path)] == [256]
        assert Counter(who_answers(h1, VIP, 8080) for _ in range(30)) == {
            "b1": 10, "b2": 10, "b3": 10}
        drain(store, "s1", "b2")
        sync(store, path)
        assert set(who_answers(h1, VIP, 8080) for _ in range(20)) == {"b1", "b3"}
