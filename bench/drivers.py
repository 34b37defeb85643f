"""Benchmark: 100 endpoints on one bridge network, beside a shell loop of `ip` commands.

Run as root: `.venv/bin/python bench/drivers.py [--endpoints 100] [--rounds 3]`.

Each round builds, in namespaces of its own (`ndb-drv-<pid>-...`), a host namespace with one
bridge network and N container namespaces joined to it, twice: with netdiag's controller
(store, IPAM, bridge driver; netlink from threads that entered the namespaces) and with the
shell loop a person would write (`ip netns add`, `ip link add ... veth`, `ip link set master`,
`ip link set netns`, rename, address, up, default route — one `ip` process per command). Both
include making the container namespaces; netdiag's figure without them is printed too. The
round is checked before it counts (the last container pings the first), and everything is
removed afterwards, also on failure or Ctrl-C.

It also times the two ways of opening a netlink socket inside a namespace that the bridge
driver chose between: entering it in the calling thread (netns.entered) and pyroute2's
IPRoute(netns=...), which forks a helper per socket.

Docker's figure (N containers on one network: `docker run -d --network NET IMAGE sleep` N times
on a user-defined bridge network of a real engine started in a namespace of its own, as in
bench/lab.py) comes through the EXTRA_ROWS hook below (`--no-docker` leaves it out), with the
same N `docker run`s on a network of netdiag's plugin (`netdiag plugin serve`) on that engine.
The etcd rows (the store's allocations, the control plane's convergence, a lab built by three
host processes) are bench/drivers_etcd.py's; the resolver figures are bench/drivers_dns.py's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyroute2 import IPRoute  # noqa: E402

from netdiag import netns  # noqa: E402
from netdiag.drivers.controller import Controller  # noqa: E402
from netdiag.store import SqliteStore  # noqa: E402

PREFIX = f"ndb-drv-{os.getpid()}-"
TARGET_S = 1.5
SUBNET, GATEWAY = "172.17.0.0/16", "172.17.0.1"

# Further rows (name, netdiag seconds, baseline name, baseline seconds, target) — for Docker
# creating N containers on a network, or resolver qps/p99 — are appended here by their
# benchmarks: a callable taking the endpoint count.
EXTRA_ROWS: list[Callable[[int], list[tuple[str, float, str, float, str]]]] = []
# This run's netdiag medians, for the hooks' rows: "endpoints" (incl. namespaces).
RESULTS: dict[str, float] = {}
DOCKER_ROUNDS = 2


def docker_rows(count: int) -> list[tuple[str, float, str, float, str]]:
    """Docker creating `count` containers on one bridge network (bench/lab.py's engine)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lab as lab_bench  # bench/lab.py

    try:
        docker = lab_bench.Docker()
    except RuntimeError as exc:
        print(f"Docker row skipped: {exc}", file=sys.stderr)
        return []
    from tests.docker_plugin import PluginProcess

    try:
        docker.start()
        ups = [docker.bridge_round(f"{os.getpid() % 100000}d{r}", count,
                                   subnet=f"172.{30 + r}.0.0/16")[0]
               for r in range(DOCKER_ROUNDS)]
        # The same engine, the same `docker run`s, on a network of netdiag's plugin.
        with tempfile.TemporaryDirectory() as folder:
            plugin = PluginProcess(docker.engine, f"{folder}/plugin.db", prefix="ndb-plug-")
            plugin.start()
            try:
                plugin_ups = [docker.bridge_round(f"{os.getpid() % 100000}p{r}", count,
                                                  driver=plugin.name,
                                                  subnet=f"172.{30 + r}.0.0/16")[0]
                              for r in range(DOCKER_ROUNDS)]
            finally:
                plugin.stop()
    finally:
        docker.stop()
    return [(f"{count} endpoints on one bridge (incl. netns)", RESULTS["endpoints"],
             f"Docker: {count} × docker run -d", statistics.median(ups), ""),
            (f"Docker: {count} × docker run, netdiag plugin", statistics.median(plugin_ups),
             "Docker: the same on its own bridge", statistics.median(ups), "")]


class Made:
    """Namespaces this run created, removed by name at the end (and only those)."""

    def __init__(self):
        self.names: list[str] = []

    def namespace(self, name: str) -> str:
        netns.create_named(name)
        self.names.append(name)
        return name

    def remove_all(self) -> None:
        for name in reversed(self.names):
            try:
                netns.delete_named(name)
            except Exception as exc:  # noqa: BLE001 - keep removing the others
                print(f"could not remove {name}: {exc}", file=sys.stderr)
        self.names.clear()


def pings(ns: str, ip: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W2", ip],
                          capture_output=True).returncode == 0


def round_netdiag(made: Made, tag: str, count: int) -> tuple[float, float]:
    """(seconds with namespace creation, seconds for the endpoints alone)."""
    host = made.namespace(f"{PREFIX}{tag}h")
    with tempfile.TemporaryDirectory() as folder, SqliteStore(Path(folder) / "s.db") as store:
        controller = Controller(store)
        controller.create_network("bench", host, subnet=SUBNET)
        began = time.perf_counter()
        sandboxes = [made.namespace(f"{PREFIX}{tag}{i}") for i in range(count)]
        made_ns = time.perf_counter()
        endpoints = [controller.connect("bench", ns) for ns in sandboxes]
        done = time.perf_counter()
    if not pings(sandboxes[-1], endpoints[0].ip):
        raise SystemExit("netdiag round: the last container cannot reach the first")
    return done - began, done - made_ns


def round_shell(made: Made, tag: str, count: int) -> float:
    host = made.namespace(f"{PREFIX}{tag}h")
    script = [f"ip -n {host} link add br0 type bridge",
              f"ip -n {host} addr add {GATEWAY}/16 dev br0",
              f"ip -n {host} link set br0 up"]
    subprocess.run(" && ".join(script), shell=True, check=True)
    names = [f"{PREFIX}{tag}{i}" for i in range(count)]
    loop = "\n".join(
        f"ip netns add {ns}\n"
        f"ip -n {host} link add vh{i} mtu 1500 type veth peer name vc{i} mtu 1500\n"
        f"ip -n {host} link set vh{i} master br0 up\n"
        f"ip -n {host} link set vc{i} netns {ns}\n"
        f"ip -n {ns} link set vc{i} name eth0\n"
        f"ip -n {ns} addr add 172.17.{(i + 2) // 256}.{(i + 2) % 256}/16 dev eth0\n"
        f"ip -n {ns} link set eth0 up\n"
        f"ip -n {ns} route add default via {GATEWAY}"
        for i, ns in enumerate(names))
    began = time.perf_counter()
    try:
        subprocess.run(["bash", "-e", "-c", loop], check=True)
    finally:
        # Record every namespace the loop may have made, so that they are removed.
        made.names.extend(n for n in names if Path(f"/run/netns/{n}").exists())
    elapsed = time.perf_counter() - began
    if not pings(names[-1], "172.17.0.2"):
        raise SystemExit("shell round: the last container cannot reach the first")
    return elapsed


def socket_costs(made: Made, samples: int = 20) -> tuple[float, float]:
    """Mean seconds to open a netlink socket in a namespace and list its links, both ways."""
    ns = made.namespace(f"{PREFIX}sock")
    began = time.perf_counter()
    for _ in range(samples):
        with netns.entered(f"/run/netns/{ns}"), IPRoute() as ipr:
            ipr.get_links()
    entered = (time.perf_counter() - began) / samples
    began = time.perf_counter()
    for _ in range(samples):
        with IPRoute(netns=ns, flags=0) as ipr:  # flags=0: never create the namespace
            ipr.get_links()
    forked = (time.perf_counter() - began) / samples
    return entered, forked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-docker", action="store_true", help="leave out Docker's rows")
    args = parser.parse_args()
    if not args.no_docker and docker_rows not in EXTRA_ROWS:
        EXTRA_ROWS.append(docker_rows)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import drivers_etcd  # bench/drivers_etcd.py

    for hook in (drivers_etcd.store_rows, drivers_etcd.control_plane_rows,
                 drivers_etcd.lab_rows):
        if hook not in EXTRA_ROWS:
            EXTRA_ROWS.append(hook)
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark builds namespaces")

    made = Made()
    ours, ours_alone, shell = [], [], []
    try:
        for r in range(args.rounds):
            total, alone = round_netdiag(made, f"n{r}-", args.endpoints)
            made.remove_all()
            ours.append(total)
            ours_alone.append(alone)
            shell.append(round_shell(made, f"s{r}-", args.endpoints))
            made.remove_all()
        entered, forked = socket_costs(made)
        RESULTS["endpoints"] = statistics.median(ours)
        extra = [row for hook in EXTRA_ROWS for row in hook(args.endpoints)]
    finally:
        made.remove_all()

    n = args.endpoints
    rows = [
        (f"{n} endpoints on one bridge (incl. netns)", statistics.median(ours),
         "shell loop of `ip` (incl. netns)", statistics.median(shell), f"≤ {TARGET_S:g} s"),
        (f"{n} endpoints, namespaces made beforehand", statistics.median(ours_alone),
         "", 0.0, ""),
        ("netlink socket in a namespace + dump", entered,
         "IPRoute(netns=...) + dump", forked, ""),
    ] + extra
    print(f"median of {args.rounds} rounds (Docker: {DOCKER_ROUNDS}); every figure beside its "
          f"baseline from this run; load average "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])} "
          "(2 cores)\n")
    print(f"{'figure':44} {'netdiag':>10}  {'baseline':34} {'baseline':>10}  target")
    for name, value, base_name, base, target in rows:
        base_text = f"{base * 1000:8.1f}ms" if base_name else ""
        print(f"{name:44} {value * 1000:8.1f}ms  {base_name:34} {base_text:>10}  {target}")
    per = statistics.median(ours) / n * 1000
    shell_per = statistics.median(shell) / n * 1000
    print(f"\nper endpoint: netdiag {per:.2f} ms, shell {shell_per:.2f} ms")
    return 0 if statistics.median(ours) <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
