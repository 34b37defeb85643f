"""bench/drivers.py's rows for the drivers on etcd (a real etcd in a namespace of this run).

* the store: 300 address allocations by three processes at once (100 each), on the etcd store,
  beside the same on the SQLite store;
* the control plane: 100 endpoints announced across 3 hosts (each host's agent a process of
  its own, `netdiag net agent`), timed until every host's overlay namespace holds the VXLAN
  entries of every other host's endpoints, beside the embedded control plane programming the
  same 100 into the same namespaces from this process;
* a lab of 3 hosts and 300 containers on one overlay network built by three `netdiag lab up
  --etcd URL --host NAME` processes at once, beside the same lab built by one `netdiag lab up`
  (its own SQLite store, the embedded control plane).

Namespaces are `ndb-etcd-...`, removed at the end, also on failure; traffic stays in them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netdiag import netns  # noqa: E402
from tests.overlay_fabric import OverlayFabric  # noqa: E402

STORE_ALLOCATIONS = 300
PEERS = 100
TAKE = """
import sys
from netdiag.drivers.ipam import DefaultIpam
from netdiag.store import open_store
ipam = DefaultIpam(open_store(sys.argv[1]))
sys.stdin.readline()
for _ in range(int(sys.argv[3])):
    ipam.request_address(sys.argv[2])
"""

Row = tuple[str, float, str, float, str]


def store_rows(count: int) -> list[Row]:
    from netdiag.drivers.ipam import DefaultIpam
    from netdiag.store import open_store
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


def control_plane_rows(count: int) -> list[Row]:
    from netdiag.drivers import registry
    from netdiag.drivers.overlay import dataplane
    from netdiag.drivers.overlay.controlplane import EmbeddedControlPlane, Peer
    from netdiag.drivers.overlay.etcd_plane import EtcdControlPlane
    from netdiag.store.etcd import EtcdStore
    from tests.etcd_server import unavailable_reason

    if reason := unavailable_reason():
        print(f"control-plane row skipped: {reason}", file=sys.stderr)
        return []
    tag = f"ndb-etcd-{os.getpid() % 100000}"
    made: list[str] = []

    def namespace(role: str) -> str:  # ours, with the benchmarks' prefix
        netns.create_named(f"{tag}-{role}")
        made.append(f"{tag}-{role}")
        return made[-1]

    fabric = None
    try:
        fabric = OverlayFabric(namespace, "198.18.10")
        fabric.build(etcd_netns=f"{tag}-etcd")
        fabric.netdiag("create", "ov", "-d", "overlay", "--host-ns", fabric.hosts[0],
                       "--subnet", "10.92.0.0/16")
        for host in fabric.hosts:
            fabric.start_agent(host)
        for host, container in zip(fabric.hosts, fabric.containers):
            fabric.netdiag("connect", "ov", container, "--host-ns", host)
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

            # The embedded control plane, delivering each to the other hosts in-process.
            embedded_plane = EmbeddedControlPlane(store, registry.get("overlay", store).deliver)
            direct = peers(PEERS)
            began = time.perf_counter()
            for peer in direct:
                embedded_plane.announce(network, peer)
            embedded = time.perf_counter() - began
            for peer in announced:
                plane.withdraw(network, peer)
    finally:
        if fabric is not None:
            fabric.close()
        for name in reversed(made):
            netns.delete_named(name)
    return [(f"{PEERS} endpoints over 3 hosts' agents (etcd)", over_etcd,
             "the embedded control plane, in-process", embedded, "")]


LAB = "ndb-lab"
LAB_HOSTS = ("h1", "h2", "h3")
LAB_PER_HOST = 100
LAB_TOPOLOGY = f"""\
name: {LAB}
hosts: [{{name: h1}}, {{name: h2}}, {{name: h3}}]
underlay: {{subnet: 198.18.11.0/24, mtu: 1500}}
networks: [{{name: ovl, driver: overlay, subnet: 10.79.0.0/22, internal: true}}]
containers:
""" + "".join(f"  - {{name: {h}c{i}, host: {h}, networks: [ovl]}}\n"
              for h in LAB_HOSTS for i in range(LAB_PER_HOST))


def lab_rows(count: int) -> list[Row]:
    from tests.etcd_server import EtcdServer, unavailable_reason

    if reason := unavailable_reason():
        print(f"lab row skipped: {reason}", file=sys.stderr)
        return []
    etcd = EtcdServer()
    etcd.netns = f"ndb-etcd-{etcd.tag}"
    netdiag = [sys.executable, "-m", "netdiag", "lab"]
    in_etcd = ["nsenter", f"--net=/run/netns/{etcd.netns}", *netdiag]
    with tempfile.TemporaryDirectory() as folder:
        topology = Path(folder) / "lab.yaml"
        topology.write_text(LAB_TOPOLOGY)
        try:
            etcd.create()
            began = time.perf_counter()
            subprocess.run([*netdiag, "up", str(topology)], check=True, capture_output=True)
            one_process = time.perf_counter() - began
            subprocess.run([*netdiag, "down", LAB], check=True, capture_output=True)
            began = time.perf_counter()
            parts = [subprocess.Popen([*in_etcd, "up", str(topology), "--etcd", etcd.url,
                                       "--host", host], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True) for host in LAB_HOSTS]
            failed = [p.communicate()[1] for p in parts if p.wait(timeout=600)]
            three_processes = time.perf_counter() - began
            if failed:
                raise SystemExit(f"lab up --host failed: {failed[0].strip()}")
        finally:
            subprocess.run([*netdiag, "down", LAB], capture_output=True)
            for host in LAB_HOSTS:
                subprocess.run([*in_etcd, "down", LAB, "--host", host], capture_output=True)
            etcd.close()
    containers = len(LAB_HOSTS) * LAB_PER_HOST
    return [(f"lab, {containers} containers: 3 `lab up --host`", three_processes,
             "the same lab, one `lab up` (SQLite)", one_process, "")]


def _wait_programmed(fabric, network, peers, dataplane, timeout: float = 60) -> None:
    """Until each host's overlay namespace has the VXLAN entry of every other host's peer."""
    deadline = time.monotonic() + timeout
    for host in fabric.hosts:
        ns = dataplane.sandbox_name(f"/run/netns/{host}", network)
        wanted = {p.mac for p in peers if p.host != f"/run/netns/{host}"}
        while True:
            shown = subprocess.run(["bridge", "-n", ns, "fdb", "show"], capture_output=True,
                                   text=True, check=True).stdout
            if all(mac in shown for mac in wanted):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the control plane did not reach {host} in {timeout:g} s")
            time.sleep(0.02)
