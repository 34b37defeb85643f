"""Benchmark: the fleet view through etcd, against gathering the nodes' snapshots one by one.

Run by hand as root: `.venv/bin/python bench/fleet.py` (`--nodes 50 --per-node 20`).

Builds N simulated machines (`ndb-f-<i>`, each a namespace on one switch, 198.19.x.y, with a
VXLAN overlay meshed to every other node and per-node-1 container namespaces on its bridge)
and a real etcd in a namespace of its own on the switch (tests/etcd_server.py). Then, in the
same run:

* publish: each node's snapshot read and published the way `netdiag agent` does it
  (netdiag/fleet/agent.py: read_machine, the checks for its finding counts, then
  Publisher's encode, compress and write), node after node; per node the whole latency and
  the etcd write alone;
* storage: the bytes each node keeps in etcd (its record, history and blob parts);
* `check --fleet`: the command end to end as a person runs it (a new process, from etcd's
  namespace): read every node from etcd, merge, run every rule;
* baseline: the way `sos collect` gathers a cluster: `netdiag snapshot` run for each node,
  one after the other, each reading that node's namespaces (a new process each time, as
  over ssh, without the ssh).

Everything made is removed afterwards, also on failure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netdiag import netns  # noqa: E402
from netdiag.fleet.agent import AgentConfig, Publisher, finding_counts, read_machine  # noqa: E402
from netdiag.fleet.store import FleetStore  # noqa: E402
from tests.etcd_server import EtcdServer  # noqa: E402

PREFIX = "ndb-f-"
SWITCH = f"{PREFIX}sw"


def run(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:5])}: {done.stderr.strip()}")


def underlay(i: int) -> str:
    return f"198.19.{i // 250}.{i % 250 + 1}"


def build(nodes: int, per_node: int) -> list[tuple[str, list[str]]]:
    """Every node's host namespace and its containers' namespaces."""
    made = []
    netns.create_named(SWITCH)
    run(["ip", "-n", SWITCH, "-batch", "-"], "link set lo up\nlink add br0 type bridge\n"
        "link set br0 up\naddr add 198.19.255.254/16 dev br0\n")
    for i in range(nodes):
        host = f"{PREFIX}{i}"
        netns.create_named(host)
        containers = [f"{PREFIX}{i}-c{j}" for j in range(per_node - 1)]
        for name in containers:
            netns.create_named(name)
        run(["ip", "-n", SWITCH, "-batch", "-"],
            f"link add p{i} type veth peer name eth0 netns {host}\n"
            f"link set p{i} master br0 up\n")
        lines = ["link set lo up", f"addr add {underlay(i)}/16 dev eth0", "link set eth0 up",
                 "route add default via 198.19.255.254", "link add br100 type bridge",
                 "link set br100 up",
                 f"link add vx100 type vxlan id 100 dstport 4789 local {underlay(i)} nolearning",
                 "link set vx100 master br100 mtu 1450 up"]
        for j, name in enumerate(containers):
            lines += [f"link add v{j} type veth peer name eth0 netns {name}",
                      f"link set v{j} master br100 mtu 1450 up"]
        run(["ip", "-n", host, "-batch", "-"], "\n".join(lines) + "\n")
        for j, name in enumerate(containers):
            address = f"10.{100 + i // 250}.{i % 250}.{j + 2}/16"  # one overlay subnet
            run(["ip", "-n", name, "-batch", "-"],
                f"link set lo up\nlink set eth0 mtu 1450 up\naddr add {address} dev eth0\n")
        entries = "".join(f"fdb append 00:00:00:00:00:00 dev vx100 dst {underlay(k)} self "
                          "permanent\n" for k in range(nodes) if k != i)
        run(["ip", "netns", "exec", host, "bridge", "-batch", "-"], entries)
        made.append((host, containers))
    return made


def remove() -> None:
    for path in sorted(Path("/run/netns").glob(f"{PREFIX}*")):
        subprocess.run(["ip", "netns", "del", path.name], capture_output=True)


def publish_all(etcd: EtcdServer, made) -> tuple[list[float], list[float], list[int]]:
    """Per node: seconds to read, judge and publish; seconds of the etcd write; bytes kept."""
    latencies, writes, stored = [], [], []
    with netns.entered(f"/run/netns/{etcd.netns}"):  # etcd is reached from its namespace
        store = FleetStore(etcd.url)
        for host, containers in made:
            node = host.removeprefix(PREFIX)
            config = AgentConfig(etcd=etcd.url, node=f"n{node}", interval=30, host_ns=host,
                                 also=tuple(containers))
            publisher = Publisher(store, config, log=lambda line: None)
            began = time.perf_counter()
            snapshot = read_machine(host, ("none",), tuple(containers))
            findings = finding_counts(snapshot)
            publisher.lease = store.grant(config.lease_ttl)
            wrote = time.perf_counter()
            publisher._publish(snapshot, "start", wrote - began, findings)
            done = time.perf_counter()
            latencies.append(done - began)
            writes.append(done - wrote)
            stored.append(store.usage(config.node))
            # No keepalive in the bench: a lease long enough for the whole run instead.
            if done - began > 1:
                print(f"  slow node {node}: {done - began:.2f} s", file=sys.stderr)
    return latencies, writes, stored


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - began, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--per-node", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    remove()
    etcd = None
    try:
        began = time.perf_counter()
        made = build(args.nodes, args.per_node)
        etcd = EtcdServer(SWITCH, "198.19.255.250", prefixlen=16).create()
        print(f"set-up: {args.nodes} nodes × {args.per_node} namespaces in "
              f"{time.perf_counter() - began:.0f} s", file=sys.stderr)

        latencies, writes, stored = publish_all(etcd, made)
        python = sys.executable
        fleet_runs = []
        for _ in range(args.runs):
            seconds, done = timed(["ip", "netns", "exec", etcd.netns, python, "-m", "netdiag",
                                   "check", "--fleet", etcd.url, "--exit-zero"])
            if done.returncode != 0:
                raise SystemExit(f"check --fleet failed: {done.stderr.strip()}")
            fleet_runs.append(seconds)
        summary = done.stdout.strip().splitlines()[-1]

        baseline = []
        for _ in range(max(1, args.runs // 3)):
            with tempfile.TemporaryDirectory(prefix="ndb-f-") as folder:
                began = time.perf_counter()
                for host, containers in made:
                    argv = [python, "-m", "netdiag", "snapshot", "--docker", "none",
                            "--ns", host, "-o", f"{folder}/{host}.json"]
                    for name in containers:
                        argv += ["--ns", name]
                    seconds, done = timed(argv)
                    if done.returncode != 0:
                        raise SystemExit(f"snapshot failed: {done.stderr.strip()}")
                baseline.append(time.perf_counter() - began)

        def ms(values):
            return f"median {statistics.median(values) * 1000:.0f} ms, max " \
                   f"{max(values) * 1000:.0f} ms"

        print(f"\n{args.nodes} nodes × {args.per_node} namespaces, etcd 3.4 in a namespace, "
              "one run\n")
        print("| row | netdiag | baseline (same run) |")
        print("|---|---|---|")
        print(f"| publish, per node (read + check + write) | {ms(latencies)} | — |")
        print(f"| of which the etcd write | {ms(writes)} | — |")
        print(f"| etcd storage per node | median {statistics.median(stored) / 1024:.1f} KiB, "
              f"max {max(stored) / 1024:.1f} KiB (latest + history) | — |")
        print(f"| `check --fleet` end to end | median {statistics.median(fleet_runs):.2f} s "
              f"(target < 5 s; {summary}) | `netdiag snapshot` per node, one after the "
              f"other: {statistics.median(baseline):.1f} s |")
    finally:
        if etcd is not None:
            etcd.close()
        remove()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
