"""The embedded resolver serving real sandboxes: queries from inside the namespace to
127.0.0.11:53 (through Docker's NAT rules), forwarding to a dnspython server in another namespace,
SERVFAIL when the upstream is dead, a clean teardown, and the store-driven daemon."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.reversename
import dns.rrset
import pytest

from netdiag import netns
from netdiag.drivers.dns import EmbeddedDnsServer, NamedEndpoint, NamedService, build_table
from netdiag.drivers.dns.forward import Upstream
from netdiag.store import SqliteStore
from netdiag.store.records import Endpoint, Network
from tests.conftest import sh

pytestmark = pytest.mark.integration
UPSTREAM_IP = "10.203.0.1"
SANDBOX_IP = "10.203.0.2"


class TinyUpstream:
    """A dnspython server in another namespace answering example.test with 192.0.2.7."""

    def __init__(self, namespace: str):
        with netns.entered(f"/run/netns/{namespace}"):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((UPSTREAM_IP, 53))
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            if query.question[0].name.to_text() == "example.test.":
                response.answer.append(dns.rrset.from_text("example.test.", 30, "IN", "A",
                                                           "192.0.2.7"))
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), addr)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def world(netns_factory):
    sandbox, upstream = netns_factory("sb"), netns_factory("up")
    sh(f"ip -n {sandbox} link add eth0 type veth peer name eth0 netns {upstream}")
    sh(f"ip -n {sandbox} addr add {SANDBOX_IP}/24 dev eth0 && ip -n {sandbox} link set eth0 up")
    sh(f"ip -n {upstream} addr add {UPSTREAM_IP}/24 dev eth0 && ip -n {upstream} link set eth0 up")
    server = TinyUpstream(upstream)
    try:
        yield sandbox, upstream
    finally:
        server.close()


TABLE = build_table(
    [NamedEndpoint("front", "web", "10.0.1.2", aliases=("www",)),
     NamedEndpoint("front", "db", "10.0.1.3")],
    [NamedService("front", "rr", tasks=("10.0.1.6", "10.0.1.7", "10.0.1.8"))])


def query_inside(sandbox: str, name: str, rdtype: str = "A", tcp: bool = False):
    """Ask 127.0.0.11:53 from a thread inside the sandbox, as a container would."""
    with netns.entered(f"/run/netns/{sandbox}"):
        message = dns.message.make_query(name, rdtype)
        ask = dns.query.tcp if tcp else dns.query.udp
        return ask(message, "127.0.0.11", port=53, timeout=10)


def addresses(response) -> list[str]:
    return [r.address for rrset in response.answer for r in rrset]


def test_local_names_aliases_ptr_and_round_robin(world):
    sandbox, _ = world
    path = f"/run/netns/{sandbox}"
    with EmbeddedDnsServer(lambda key: TABLE) as server:
        server.attach(path, [Upstream(UPSTREAM_IP)])
        assert addresses(query_inside(sandbox, "web")) == ["10.0.1.2"]
        assert addresses(query_inside(sandbox, "www", tcp=True)) == ["10.0.1.2"]
        ptr = query_inside(sandbox, dns.reversename.from_address("10.0.1.3").to_text(), "PTR")
        assert ptr.answer[0][0].target.to_text() == "db.front."
        orders = {tuple(addresses(query_inside(sandbox, "rr"))) for _ in range(12)}
        assert {tuple(sorted(o)) for o in orders} == {("10.0.1.6", "10.0.1.7", "10.0.1.8")}
        assert len(orders) > 1
        # The libc resolver of `ip netns exec` reads our resolv.conf and goes through the NAT.
        assert "10.0.1.2" in sh(f"ip netns exec {sandbox} getent ahostsv4 web")
        assert "DOCKER_OUTPUT" in sh(f"ip netns exec {sandbox} iptables-save -t nat")


def test_forwards_to_upstream_in_another_namespace(world):
    sandbox, _ = world
    with EmbeddedDnsServer(lambda key: TABLE) as server:
        server.attach(f"/run/netns/{sandbox}", [Upstream(UPSTREAM_IP)])
        assert addresses(query_inside(sandbox, "example.test")) == ["192.0.2.7"]
        # The tiny upstream has no TCP side: TCP forwarding fails over to SERVFAIL.
        assert query_inside(sandbox, "example.test", tcp=True).rcode() == dns.rcode.SERVFAIL
        assert query_inside(sandbox, "nope.test").rcode() == dns.rcode.NXDOMAIN


def test_servfail_when_upstreams_are_dead(world):
    sandbox, _ = world
    dead = [Upstream(UPSTREAM_IP, 5399), Upstream("10.203.0.99")]
    with EmbeddedDnsServer(lambda key: TABLE, upstream_timeout=0.3) as server:
        server.attach(f"/run/netns/{sandbox}", dead)
        assert query_inside(sandbox, "example.test").rcode() == dns.rcode.SERVFAIL
        assert addresses(query_inside(sandbox, "web")) == ["10.0.1.2"]  # local names still work


def test_sees_live_changes_and_cleans_up(world):
    sandbox, _ = world
    path = f"/run/netns/{sandbox}"
    names = {"current": build_table([])}
    with EmbeddedDnsServer(lambda key: names["current"]) as server:
        server.attach(path)
        assert query_inside(sandbox, "late").rcode() == dns.rcode.SERVFAIL  # no upstreams
        names["current"] = build_table([NamedEndpoint("front", "late", "10.0.1.9")])
        assert addresses(query_inside(sandbox, "late")) == ["10.0.1.9"]
        resolv = Path(f"/etc/netns/{sandbox}/resolv.conf")
        assert resolv.read_text() == "nameserver 127.0.0.11\noptions ndots:0\n"
        server.detach(path)
        assert not resolv.exists()
        assert "DOCKER_OUTPUT" not in sh(f"ip netns exec {sandbox} iptables-save -t nat")


def test_daemon_serves_the_store_sandboxes_and_cleans_up_on_sigterm(world, tmp_path):
    sandbox, _ = world
    path = f"/run/netns/{sandbox}"
    resolv = Path(f"/etc/netns/{sandbox}/resolv.conf")
    store_path = tmp_path / "drivers.db"
    with SqliteStore(store_path) as store:
        network = Network(id="c" * 64, name="front", driver="bridge", host=path,
                          subnet="10.0.1.0/24", gateway="10.0.1.1")
        with store.transaction() as tx:
            tx.add_network(network)
            tx.add_endpoint(Endpoint(id="e1", network_id=network.id, name="me", host=path,
                                     sandbox=path, address="10.0.1.2/24"))
        daemon = subprocess.Popen([sys.executable, "-m", "netdiag.drivers.dns",
                                   "--store", str(store_path)])
        try:
            for _ in range(200):  # until it has attached the sandbox (bounded)
                if resolv.exists():
                    break
                time.sleep(0.05)
            assert addresses(query_inside(sandbox, "me")) == ["10.0.1.2"]
            with store.transaction() as tx:  # a container joining later is seen at once
                tx.add_endpoint(Endpoint(id="e2", network_id=network.id, name="peer",
                                         host=path, address="10.0.1.3/24"))
            assert addresses(query_inside(sandbox, "peer")) == ["10.0.1.3"]
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
    assert not resolv.exists()
    assert "DOCKER_OUTPUT" not in sh(f"ip netns exec {sandbox} iptables-save -t nat")
