"""Benchmark: the embedded resolver's queries per second and latency, beside Docker's.

Run as root: `.venv/bin/python bench/drivers_dns.py [--queries N] [--rounds R] [--no-docker]`.

A load generator process inside the sandbox namespace asks 127.0.0.11:53 for a local container
name — through the sandbox's DNAT rules, as a container's libc would — first one query at a
time (latency: p50/p99) and then with a window of queries in flight (throughput). It measures
netdiag's resolver with a fixed table and with the SQLite-store-backed table the drivers use,
and, in the same run and the same way, Docker's embedded resolver: a real engine started in a
namespace of its own (tests/docker_engine.py) with a user network and two containers. Rounds
alternate between the resolvers and the best round of each is shown, because the machine is
shared. Every namespace carries the `ndt-` prefix and is removed at the end; traffic stays on
loopback.

Every answer is checked, for every resolver alike: its ID must be one of a query in flight, its
return code NOERROR, and it must carry an A record with the name's address (known beforehand,
not learnt from the first answer). An answer failing any of these counts as wrong (a late
answer to a query already counted lost too) and not as answered: qps counts right answers only.
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
from contextlib import ExitStack, contextmanager
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


def _skip_name(message: bytes, offset: int) -> int:
    """The offset just past the (maybe compressed) domain name at `offset`."""
    while True:
        length = message[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:  # a pointer ends the name
            return offset + 2
        offset += 1 + length


def check_answer(message: bytes, qids: set[int], address: bytes) -> int | None:
    """The ID of a right answer (taken out of `qids`): a response to a query in flight,
    NOERROR, with an A record of `address`. None for anything else (a wrong answer)."""
    try:
        qid = int.from_bytes(message[0:2], "big")
        if qid not in qids or not message[2] & 0x80 or message[3] & 0x0F:  # ID, QR, rcode
            return None
        questions = int.from_bytes(message[4:6], "big")
        answers = int.from_bytes(message[6:8], "big")
        offset = 12
        for _ in range(questions):
            offset = _skip_name(message, offset) + 4  # QTYPE, QCLASS
        for _ in range(answers):
            offset = _skip_name(message, offset)
            rtype = int.from_bytes(message[offset:offset + 2], "big")
            length = int.from_bytes(message[offset + 8:offset + 10], "big")
            data = message[offset + 10:offset + 10 + length]
            offset += 10 + length
            if rtype == 1 and data == address:
                qids.discard(qid)
                return qid
    except IndexError:  # truncated: wrong
        pass
    return None


def client(name: str, expected: str, queries: int) -> dict:
    address = socket.inet_aton(expected)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.11", 53))
    sock.settimeout(RECV_TIMEOUT)
    sock.send(_query(name, 0))
    if check_answer(sock.recv(4096), {0}, address) is None:
        return {"error": f"{name} does not resolve to {expected}"}
    latencies, lost, wrong = [], 0, 0
    for qid in range(1, queries + 1):  # one at a time: latency
        began = time.perf_counter()
        sock.send(_query(name, qid & 0xFFFF))
        try:
            while check_answer(sock.recv(4096), {qid & 0xFFFF}, address) is None:
                wrong += 1  # (and wait on for the right one)
        except TimeoutError:
            lost += 1
            continue
        latencies.append(time.perf_counter() - began)
    # The window's IDs follow on from the latency run's, so that a late answer to one of
    # those cannot pass for one of these (with up to 32767 queries).
    first = queries + 1
    in_flight: set[int] = set()
    sent = answered = 0
    began = time.perf_counter()
    while sent < min(WINDOW, queries):  # a window in flight: throughput
        in_flight.add((first + sent) & 0xFFFF)
        sock.send(_query(name, (first + sent) & 0xFFFF))
        sent += 1
    while in_flight:
        try:
            message = sock.recv(4096)
        except TimeoutError:
            lost += len(in_flight)
            break
        if check_answer(message, in_flight, address) is None:
            wrong += 1
            continue
        answered += 1
        if sent < queries:
            in_flight.add((first + sent) & 0xFFFF)
            sock.send(_query(name, (first + sent) & 0xFFFF))
            sent += 1
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {"p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
            "qps": answered / elapsed, "lost": lost, "wrong": wrong}


def measure(netns_path: str, name: str, expected: str, queries: int) -> dict:
    done = subprocess.run(["nsenter", f"--net={netns_path}", sys.executable, __file__,
                           "--client", name, "--expect", expected, "--queries", str(queries)],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout)


# --- the resolvers under test: each yields (label, sandbox path, a local name, its address) ---


@contextmanager
def netdiag_sandbox():
    from netdiag import netns

    name = f"ndt-{secrets.token_hex(3)}-dnsbench"
    path = netns.create_named(name)
    try:
        yield path
    finally:
        netns.delete_named(name)


@contextmanager
def netdiag_fixed_table():
    from netdiag.drivers.dns import EmbeddedDnsServer, NamedEndpoint, build_table

    table = build_table([NamedEndpoint("net", f"c{i}", f"10.1.{i // 250}.{i % 250 + 2}")
                         for i in range(100)])
    with netdiag_sandbox() as path, EmbeddedDnsServer(lambda key: table) as server:
        server.attach(path)
        yield "netdiag, fixed table", path, "c42", "10.1.0.44"


@contextmanager
def netdiag_store():
    from netdiag.drivers.dns import EmbeddedDnsServer
    from netdiag.drivers.dns.store_names import StoreNames
    from netdiag.store import SqliteStore
    from netdiag.store.records import Endpoint, Network

    with netdiag_sandbox() as path, tempfile.TemporaryDirectory() as folder, \
            SqliteStore(Path(folder) / "d.db") as store:
        network = Network(id="a" * 64, name="net", driver="bridge", host=path,
                          subnet="10.1.0.0/16", gateway="10.1.0.1")
        with store.transaction() as tx:
            tx.add_network(network)
            for i in range(100):
                tx.add_endpoint(Endpoint(id=f"{i:064x}", network_id=network.id, name=f"c{i}",
                                         host=path, sandbox=path if i == 0 else "",
                                         address=f"10.1.{i // 250}.{i % 250 + 2}/16"))
        names = StoreNames(store)
        try:
            with EmbeddedDnsServer(names) as server:
                server.attach(path)
                yield "netdiag, SQLite store", path, "c42", "10.1.0.44"
        finally:
            names.close()


@contextmanager
def docker_engine():
    from tests.docker_engine import IMAGE, running_engine

    with running_engine("dnsb") as engine:
        engine.docker("network", "create", "benchnet")
        for container in ("c1", "c42"):
            engine.docker("run", "-d", "--name", container, "--network", "benchnet", IMAGE,
                          "sleep", "3600")
        version = engine.docker("version", "--format", "{{.Server.Version}}").strip()
        address = engine.docker("inspect", "--format", "{{range .NetworkSettings.Networks}}"
                                "{{.IPAddress}}{{end}}", "c42").strip()
        yield f"docker {version} embedded DNS", engine.sandbox_key("c1"), "c42", address


def docker_unavailable() -> str | None:
    from tests.docker_engine import unavailable_reason

    return unavailable_reason()


def best(runs: list[dict]) -> dict:
    """The best of the rounds: this machine is shared, so the quietest round is the fairest."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[-1]
    return {"qps": max(r["qps"] for r in good), "p50_ms": min(r["p50_ms"] for r in good),
            "p99_ms": min(r["p99_ms"] for r in good), "lost": sum(r["lost"] for r in good),
            "wrong": sum(r["wrong"] for r in good)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--expect", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client(args.client, args.expect, args.queries)))
        return
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark creates network namespaces")
    factories = [netdiag_fixed_table, netdiag_store]
    skipped = "--no-docker" if args.no_docker else docker_unavailable()
    if not skipped:
        factories.append(docker_engine)
    with ExitStack() as stack:
        targets = [stack.enter_context(factory()) for factory in factories]
        runs: dict[str, list[dict]] = {label: [] for label, _, _, _ in targets}
        for _ in range(args.rounds):  # alternate, so load from others hits every target alike
            for label, path, name, address in targets:
                runs[label].append(measure(path, name, address, args.queries))
    print(f"{args.queries} queries per round, best of {args.rounds} alternating rounds; one at a "
          f"time for latency, {WINDOW} in flight for throughput;")
    print("an A record of a local container name via 127.0.0.11:53 (through the DNAT rules);")
    print("every answer checked (ID in flight, NOERROR, the name's address): qps counts right "
          "answers, wrong the others (lost/wrong summed over the rounds)")
    print(f"{'resolver':34} {'qps':>8} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5} {'wrong':>5}")
    for label, results in runs.items():
        r = best(results)
        if "error" in r:
            print(f"{label:34} error: {r['error']}")
            continue
        print(f"{label:34} {r['qps']:8.0f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} "
              f"{r['lost']:5d} {r['wrong']:5d}")
    if skipped:
        print(f"docker embedded DNS: not measured ({skipped})")


if __name__ == "__main__":
    main()
