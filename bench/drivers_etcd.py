"""bench/drivers.py's rows for the drivers on etcd (a real etcd in a namespace of this run).

* the store: 300 address allocations by three processes at once (100 each), on the etcd store,
  beside the same on the SQLite store;
* the control plane: 100 endpoints announced across 3 hosts (each host's agent a process of
  its own, `netdiag net agent`), timed until every host's overlay namespace holds the VXLAN
  entries of every other host's endpoints, beside the embedded control plane programming the
  same 100 into the same namespaces from this process.

Namespaces are `ndb-etcd-...`, removed at the end, also on failure; traffic stays in them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netdiag import netns  # noqa: E402

STORE_ALLOCATIONS = 300
PEERS = 100
TAKE = """
import sys
from netdiag.drivers.ipam import DefaultIpam
from netdiag.drivers.store import open_store
ipam = DefaultIpam(open_store(sys.argv[1]))
sys.stdin.readline()
for _ in range(int(sys.argv[3])):
    ipam.request_address(sys.argv[2])
"""

Row = tuple[str, float, str, float, str]


def store_rows(count: int) -> list[Row]:
    from netdiag.drivers.ipam import DefaultIpam
    from netdiag.drivers.store import open_store
    from tests.etcd_server import EtcdServer, unavailable_reason

    if reason := unavailable_reason():
        print(f"etcd store row skipped: {reason}", file=sys.stderr)
        return []
    etcd = EtcdServer()
    etcd.netns = f"ndb-etcd-{etcd.tag}"  # our prefix, not the tests' one
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        try:
            etcd.create()
            for kind, where in (("etcd", etcd.url.replace("http://", "etcd://")),
                                ("sqlite", f"{folder}/s.db")):
                space = "local:/run/netns/ndb-store"
                with netns.entered(f"/run/netns/{etcd.netns}"):
                    pool = DefaultIpam(open_store(where)).request_pool(space, "10.78.0.0/22")
                workers = [subprocess.Popen(
                    ["ip", "netns", "exec", etcd.netns, sys.executable, "-c", TAKE, where,
                     pool.id, str(STORE_ALLOCATIONS // 3)], stdin=subprocess.PIPE, text=True)
                    for _ in range(3)]
                began = time.perf_counter()
                for worker in workers:
                    worker.stdin.write("go\n")
                    worker.stdin.flush()
                if any(worker.wait(timeout=300) for worker in workers):
                    raise SystemExit(f"{kind} store round failed")
                figures[kind] = time.perf_counter() - began
        finally:
            etcd.close()
    rate = STORE_ALLOCATIONS / figures["etcd"]
    return [(f"{STORE_ALLOCATIONS} allocations, 3 processes, etcd ({rate:.0f}/s)",
             figures["etcd"], "the same on the SQLite store", figures["sqlite"], "")]


def _sh(command: str) -> str:
    return subprocess.run(command, shell=True, check=True, capture_output=True,
                          text=True).stdout


class _Fabric:
    """A switch, three hosts and a container on each, etcd on the switch, one overlay."""

    def __init__(self):
        from tests.etcd_server import EtcdServer

        self.tag = f"ndb-etcd-{os.getpid() % 100000}"
        self.names: list[str] = []
        self.agents: list[subprocess.Popen] = []
        self.switch = self._ns("sw")
        self.hosts = [self._ns(f"h{i}") for i in (1, 2, 3)]
        self.containers = [self._ns(f"c{i}") for i in (1, 2, 3)]
        self.etcd = EtcdServer(self.switch, "198.18.10.250")
        self.etcd.netns = f"{self.tag}-etcd"
        self.store = self.etcd.url.replace("http://", "etcd://")

    def _ns(self, role: str) -> str:
        name = f"{self.tag}-{role}"
        netns.create_named(name)
        self.names.append(name)
        return name

    def netdiag(self, *args: str) -> subprocess.CompletedProcess:
        # nsenter --net only: the overlay namespaces the drivers bind-mount must outlive it.
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.switch}", sys.executable,
                               "-m", "netdiag", "net", "--store", self.store, *args],
                              check=True, capture_output=True, text=True, timeout=120)

    def build(self) -> None:
        sw = self.switch
        _sh(f"ip -n {sw} link add br0 type bridge && ip -n {sw} link set br0 up && "
            f"ip -n {sw} addr add 198.18.10.254/24 dev br0")
        for i, host in enumerate(self.hosts, 1):
            _sh(f"ip -n {sw} link add p{i} type veth peer name eth0 netns {host} && "
                f"ip -n {sw} link set p{i} master br0 up && "
                f"ip -n {host} addr add 198.18.10.{i}/24 dev eth0 && "
                f"ip -n {host} link set eth0 up")
        self.etcd.create()
        self.netdiag("create", "ov", "-d", "overlay", "--host-ns", self.hosts[0],
                     "--subnet", "10.92.0.0/16")
        for host in self.hosts:
            agent = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{sw}", sys.executable, "-m", "netdiag", "net",
                 "--store", self.store, "agent", "--host-ns", host],
                stderr=subprocess.PIPE, text=True)
            self.agents.append(agent)
            if "serving" not in agent.stderr.readline():
                raise SystemExit("a control-plane agent did not start")
        for host, container in zip(self.hosts, self.containers):
            self.netdiag("connect", "ov", container, "--host-ns", host)

    def close(self) -> None:
        for agent in self.agents:  # ours, by pid
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                agent.wait(timeout=20)
        try:
            self.netdiag("rm", "-f", "ov")
        except subprocess.SubprocessError as exc:
            print(f"could not remove the overlay: {exc}", file=sys.stderr)
        self.etcd.close()
        for name in reversed(self.names):
            netns.delete_named(name)


def control_plane_rows(count: int) -> list[Row]:
    from netdiag.drivers.overlay import dataplane
    from netdiag.drivers.overlay.controlplane import Peer
    from netdiag.drivers.overlay.etcd_plane import EtcdControlPlane
    from netdiag.drivers.store.etcd import EtcdStore
    from tests.etcd_server import unavailable_reason

    if reason := unavailable_reason():
        print(f"control-plane row skipped: {reason}", file=sys.stderr)
        return []
    fabric = _Fabric()
    try:
        fabric.build()
        hosts = [f"/run/netns/{h}" for h in fabric.hosts]
        with netns.entered(f"/run/netns/{fabric.switch}"):
            store = EtcdStore(fabric.etcd.url)
            network = store.network("ov")
            plane = EtcdControlPlane(store.etcd)

            def peers(first: int) -> list[Peer]:
                return [Peer(f"bench{first + i:04d}", hosts[i % 3], f"198.18.10.{i % 3 + 1}",
                             f"10.92.{(first + i) // 250 + 10}.{(first + i) % 250 + 1}",
                             f"02:42:0b:{(first + i) >> 8:02x}:{(first + i) & 255:02x}:01")
                        for i in range(PEERS)]

            announced = peers(0)
            began = time.perf_counter()
            for peer in announced:
                plane.announce(network, peer)
            _wait_programmed(fabric, network, announced, dataplane)
            over_etcd = time.perf_counter() - began

            direct = peers(PEERS)
            began = time.perf_counter()
            for peer in direct:  # what the embedded control plane does: deliver to the others
                for host in hosts:
                    if host != peer.host:
                        dataplane.add_peer(dataplane.sandbox_path(host, network), peer)
            embedded = time.perf_counter() - began
            for peer in announced:
                plane.withdraw(network, peer)
    finally:
        fabric.close()
    return [(f"{PEERS} endpoints over 3 hosts' agents (etcd)", over_etcd,
             "the embedded control plane, in-process", embedded, "")]


def _wait_programmed(fabric: _Fabric, network, peers, dataplane, timeout: float = 60) -> None:
    """Until each host's overlay namespace has the VXLAN entry of every other host's peer."""
    deadline = time.monotonic() + timeout
    for host in fabric.hosts:
        ns = dataplane.sandbox_name(f"/run/netns/{host}", network)
        wanted = {p.mac for p in peers if p.host != f"/run/netns/{host}"}
        while True:
            shown = _sh(f"bridge -n {ns} fdb show")
            if all(mac in shown for mac in wanted):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the control plane did not reach {host} in {timeout:g} s")
            time.sleep(0.02)
