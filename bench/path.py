"""Benchmark: the flow engine's answers against asking the kernel with real packets.

Run by hand as root: `.venv/bin/python bench/path.py --n 1000` (`--docker-containers 200`
adds the Docker row: one engine, that many containers on 20 networks).

Row 1 — `path` queries: builds bench/snapshot.py's N namespaces (`ndb-<N>-<i>`, each with a
veth into one bridge in `ndb-hub`), saves their snapshot and loads it back, then times random
`path` queries (ICMP and TCP between the namespaces) after load; the baseline in the same
run is one real probe per query for a sample of them (`ping -c 1 -W 1` or a TCP connect with
a 1 s timeout, from the source namespace).

Row 2 — expected flows: a real engine (tests/docker_engine.py) runs the containers on 20
user networks, one publishing a port per network; times every expected flow of the host
(netdiag/flows/expected.py: gateways, peers, DNS, published ports) from one snapshot, and the
baseline: the same flows tested with real packets, one probe each (1 s timeout), one after
the other. Everything made is removed afterwards, also on failure.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import snapshot as namespaces_bench  # noqa: E402

from netdiag.collect import collect_snapshot, discovery, docker, namespace_refs  # noqa: E402
from netdiag.flows import expected  # noqa: E402
from netdiag.flows.packet import Packet  # noqa: E402
from netdiag.flows.walk import Engine  # noqa: E402
from netdiag.model.serialize import load, save  # noqa: E402

QUERIES = 200
SAMPLE = 20
PROBE = ("import socket,sys\ns=socket.socket();s.settimeout(1)\n"
         "try:\n s.connect((sys.argv[1],int(sys.argv[2])));print('ok')\n"
         "except OSError as e:print(type(e).__name__)")


def real_probe(netns_path: str, packet: Packet) -> float:
    """Seconds one real probe takes from the namespace (ping, or a TCP connect)."""
    began = time.perf_counter()
    if packet.proto == "icmp":
        argv = ["nsenter", f"--net={netns_path}", "ping", "-n", "-c", "1", "-W", "1",
                packet.dst]
    else:
        argv = ["nsenter", f"--net={netns_path}", sys.executable, "-c", PROBE, packet.dst,
                str(packet.dport)]
    subprocess.run(argv, capture_output=True, check=False)
    return time.perf_counter() - began


def path_row(n: int) -> None:
    namespaces_bench.remove_ours()
    try:
        began = time.perf_counter()
        namespaces_bench.build(n, 4)
        names = namespaces_bench.names(n)
        refs = namespace_refs.resolve_all([namespaces_bench.HUB, *names])
        with tempfile.TemporaryDirectory() as tmp:
            saved = Path(tmp) / "snap.json"
            save(collect_snapshot(refs, intent=docker.Intent()), saved)
            snapshot = load(saved)
        gc.freeze()  # as `netdiag path` does: the snapshot lives until exit
        made = time.perf_counter() - began
        engine = Engine(snapshot)
        ids = {ref.path: ref.id for ref in refs}
        rng = random.Random(7)
        queries = []
        for _ in range(QUERIES):
            a, b = rng.sample(range(n), 2)
            hi, lo = divmod(b, 250)
            proto = rng.choice(("icmp", "tcp"))
            queries.append((a, Packet("", f"10.77.{hi}.{lo + 2}", proto,
                                      43210 if proto == "tcp" else 0,
                                      22 if proto == "tcp" else 0)))
        first = time.perf_counter()
        engine.path(ids[f"/run/netns/{names[queries[0][0]]}"], queries[0][1])
        first = time.perf_counter() - first
        times, outcomes = [], {}
        for a, packet in queries:
            start = time.perf_counter()
            result = engine.path(ids[f"/run/netns/{names[a]}"], packet)
            times.append(time.perf_counter() - start)
            outcomes[result.disposition] = outcomes.get(result.disposition, 0) + 1
        probes = [real_probe(f"/run/netns/{names[a]}", packet) for a, packet in
                  queries[:SAMPLE]]
        print(f"path queries, {n} namespaces (set-up {made:.0f} s): first {first * 1e3:.1f} ms"
              f" (indexes built), then median {statistics.median(times) * 1e3:.2f} ms, p95 "
              f"{sorted(times)[int(0.95 * len(times))] * 1e3:.2f} ms, max "
              f"{max(times) * 1e3:.2f} ms over {len(times)} ({outcomes}); real probe: median "
              f"{statistics.median(probes) * 1e3:.1f} ms over {len(probes)}")
    finally:
        namespaces_bench.remove_ours()


def docker_row(containers: int, version: str, networks: int = 20) -> None:
    from tests.docker_engine import DockerEngine, build_busybox_image, unavailable_reason

    reason = unavailable_reason(version)
    if reason:
        raise SystemExit(f"--docker-containers: {reason}")
    engine = DockerEngine("bpath", version=version)
    engine.netns = f"ndb-dk-{engine.tag}"
    began = time.perf_counter()
    try:
        engine.start()
        image = build_busybox_image(engine)
        subprocess.run(["ip", "-n", engine.netns, "link", "add", "up0", "type", "veth", "peer",
                        "name", "up1"], check=True)
        for command in ("addr add 198.19.9.2/24 dev up0", "link set up0 up",
                        "link set up1 up", "route add default via 198.19.9.1"):
            subprocess.run(["ip", "-n", engine.netns, *command.split()], check=True)
        for i in range(networks):
            engine.docker("network", "create", "--subnet", f"10.124.{i}.0/24", f"ndbn{i}")
        for i in range(containers):
            publish = ["-p", f"{9000 + i}:80"] if i < networks else []
            engine.docker("run", "-d", "--network", f"ndbn{i % networks}", "--name",
                          f"ndb{i}", *publish, image, "httpd", "-f", "-p", "80", "-h", "/")
        made = time.perf_counter() - began
        intent = docker.read([engine.host])
        refs = discovery.discover(engines=intent.engines)
        ours = [ref for ref in refs if ref.path == engine.netns_path
                or any(c.netns == ref.id for e in intent.engines for c in e.containers)]
        snapshot = collect_snapshot(ours, intent=intent)
        start = time.perf_counter()
        model = Engine(snapshot)
        flows = list(expected.expectations(snapshot))
        failed = list(expected.judge(snapshot, engine=model))
        simulated = time.perf_counter() - start
        paths = {ref.id: ref.path for ref in ours}
        start = time.perf_counter()
        for expectation in flows:
            if not expectation.arrive_on:  # from beyond the host: nothing of ours to send from
                real_probe(paths[expectation.source], expectation.packet)
        probed = time.perf_counter() - start
        print(f"Docker {engine.server_version}: expected flows, {containers} containers on "
              f"{networks} networks (set-up "
              f"{made:.0f} s): {len(flows)} flows simulated in {simulated:.2f} s "
              f"({len(failed)} failing); the same with real packets, one probe each: "
              f"{probed:.1f} s ({probed / simulated:.0f}x)", flush=True)
    finally:
        # Many containers take the daemon longer to remove than engine.stop() waits for:
        # remove them first, a hundred at a time.
        ids = engine.docker("ps", "-aq", check=False, timeout=120).split()
        for first in range(0, len(ids), 100):
            engine.docker("rm", "-f", *ids[first:first + 100], check=False, timeout=600)
        engine.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="namespaces for the path row")
    parser.add_argument("--docker-containers", type=int, metavar="N", default=0,
                        help="also the expected-flows row: N containers on 20 networks")
    parser.add_argument("--docker-versions", default="20.10,28",
                        help="the engines of the Docker rows, one row each (default 20.10,28)")
    args = parser.parse_args()
    if args.n:
        path_row(args.n)
    for version in args.docker_versions.split(",") if args.docker_containers else ():
        docker_row(args.docker_containers, version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
