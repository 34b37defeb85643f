"""Benchmark: the embedded resolver's queries per second and latency, beside Docker's.

Run as root: `.venv/bin/python bench/drivers_dns.py [--queries N] [--no-docker]`.

A load generator process inside the sandbox namespace asks 127.0.0.11:53 for a local container
name — through the sandbox's DNAT rules, as a container's libc would — first one query at a
time (latency: p50/p99) and then with a window of queries in flight (throughput). It measures
netdiag's resolver with a fixed table and with the SQLite-store-backed table the drivers use,
and, in the same run and the same way, Docker's embedded resolver: a real engine started in a
namespace of its own (tests/docker_engine.py) with a user network and two containers. Every
namespace carries the `ndt-` prefix and is removed at the end; traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WINDOW = 32
RECV_TIMEOUT = 1.0


# --- the load generator (runs inside the sandbox) ---------------------------------------------


def _query(name: str, qid: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + \
        b"\x00\x01\x00\x01"


def client(name: str, queries: int) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.11", 53))
    sock.settimeout(RECV_TIMEOUT)
    sock.send(_query(name, 0))
    answer = sock.recv(4096)
    if answer[3] & 0x0F or answer[7] == 0:  # rcode, ANCOUNT
        return {"error": f"{name} does not resolve (rcode {answer[3] & 0x0F})"}
    latencies, lost = [], 0
    for qid in range(1, queries + 1):  # one at a time: latency
        began = time.perf_counter()
        sock.send(_query(name, qid & 0xFFFF))
        try:
            sock.recv(4096)
        except TimeoutError:
            lost += 1
            continue
        latencies.append(time.perf_counter() - began)
    sent = answered = 0
    began = time.perf_counter()
    while sent < WINDOW:  # a window in flight: throughput
        sock.send(_query(name, sent & 0xFFFF))
        sent += 1
    while answered < sent:
        try:
            sock.recv(4096)
        except TimeoutError:
            lost += sent - answered
            break
        answered += 1
        if sent < queries:
            sock.send(_query(name, sent & 0xFFFF))
            sent += 1
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {"p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
            "qps": answered / elapsed, "lost": lost}


def measure(netns_path: str, name: str, queries: int) -> dict:
    done = subprocess.run(["nsenter", f"--net={netns_path}", sys.executable, __file__,
                           "--client", name, "--queries", str(queries)],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout)


# --- netdiag's resolver ---------------------------------------------------------------------


def bench_netdiag(queries: int) -> dict[str, dict]:
    from netdiag import netns
    from netdiag.drivers.api import Endpoint, Network
    from netdiag.drivers.dns import EmbeddedDns, NamedEndpoint, build_table
    from netdiag.drivers.dns.store_names import StoreNames
    from netdiag.drivers.store import Store

    name = f"ndt-{secrets.token_hex(3)}-dnsbench"
    path = netns.create_named(name)
    results = {}
    try:
        table = build_table([NamedEndpoint("net", f"c{i}", f"10.1.{i // 250}.{i % 250 + 2}")
                             for i in range(100)])
        with EmbeddedDns(lambda key: table) as server:
            server.attach(path)
            results["netdiag, fixed table"] = measure(path, "c42", queries)
        with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "d.db") as store:
            network = Network(id="a" * 64, name="net", driver="bridge", host=path,
                              subnet="10.1.0.0/16", gateway="10.1.0.1")
            with store.transaction() as tx:
                tx.add_network(network)
                for i in range(100):
                    tx.add_endpoint(Endpoint(id=f"{i:064x}", network_id=network.id,
                                             name=f"c{i}", host=path,
                                             sandbox=path if i == 0 else "",
                                             address=f"10.1.{i // 250}.{i % 250 + 2}/16"))
            with EmbeddedDns(StoreNames(store)) as server:
                server.attach(path)
                results["netdiag, SQLite store"] = measure(path, "c42", queries)
    finally:
        netns.delete_named(name)
    return results


# --- Docker's resolver ------------------------------------------------------------------------


def bench_docker(queries: int) -> dict[str, dict]:
    from tests.docker_engine import IMAGE, running_engine, unavailable_reason

    reason = unavailable_reason()
    if reason:
        return {"docker embedded DNS": {"error": reason}}
    with running_engine("dnsb") as engine:
        engine.docker("network", "create", "benchnet")
        for container in ("c1", "c42"):
            engine.docker("run", "-d", "--name", container, "--network", "benchnet", IMAGE,
                          "sleep", "3600")
        version = engine.docker("version", "--format", "{{.Server.Version}}").strip()
        return {f"docker {version} embedded DNS": measure(engine.sandbox_key("c1"), "c42",
                                                          queries)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client(args.client, args.queries)))
        return
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates network namespaces")
    results = bench_netdiag(args.queries)
    if not args.no_docker:
        results.update(bench_docker(args.queries))
    print(f"{args.queries} queries each, sequential for latency, {WINDOW} in flight for "
          "throughput; A record of a local container name via 127.0.0.11:53 (DNAT)")
    print(f"{'resolver':34} {'qps':>8} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5}")
    for label, r in results.items():
        if "error" in r:
            print(f"{label:34} error: {r['error']}")
            continue
        print(f"{label:34} {r['qps']:8.0f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} "
              f"{r['lost']:5d}")


if __name__ == "__main__":
    main()
