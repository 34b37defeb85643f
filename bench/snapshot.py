"""Benchmark: `netdiag snapshot` of N namespaces against a shell loop reading the same.

Run by hand as root: `.venv/bin/python bench/snapshot.py --n 100` (and `--n 1000`;
`--docker-containers 200` adds the Docker row: one engine with 200 containers, the snapshot's
cost with and without the engine's intent).

Builds N namespaces `ndb-<N>-<i>`, each with a veth into one shared bridge that lives in the
hub namespace `ndb-hub` (never the root namespace), 2 addresses, 3 routes and 5 iptables
rules. Then times, in the same run, the real CLI (`netdiag snapshot -o FILE --ns ...` naming
every one of them, in a subprocess) and the baseline: a shell loop that runs `ip -j addr`,
`ip -j route`, `ip -j neigh`, `bridge -j fdb` and `iptables-save` in each namespace with
`ip netns exec`, each side the best of three runs (`--rounds`). Prints one table row per N
with both wall times (and CPU times, which the
machine's other load disturbs less), the speed-up and netdiag's peak RSS; then, per N, where
netdiag's CPU time goes (breakdown(): discovery, each collector, helper programs started,
namespace entry, JSON encoding, process start). Everything it made
is removed afterwards, also on failure or Ctrl-C; leftovers of an earlier crashed run (only
names `ndb-<digits>-<digits>` and `ndb-hub`) are removed first.

netdiag runs as installed: with Python's bytecode cache (an installed package has its .pyc
files; PYTHONDONTWRITEBYTECODE, which development shells set, would make every run compile
netdiag's sources again, ~40 ms), warmed by one untimed `netdiag snapshot --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netdiag import netns  # noqa: E402

HUB = "ndb-hub"
OURS = re.compile(r"ndb-(\d+-\d+|hub)")
NETNS_DIR = Path("/run/netns")
VENV_NETDIAG = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "netdiag"

IPTABLES_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -s 10.0.0.0/8 -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 10.77.0.0/16 ! -o eth0 -j MASQUERADE
COMMIT
"""

SHELL_LOOP = """
for ns in "$@"; do
  ip netns exec "$ns" ip -j addr show
  ip netns exec "$ns" ip -j route show table all
  ip netns exec "$ns" ip -j neigh show
  ip netns exec "$ns" bridge -j fdb show
  ip netns exec "$ns" iptables-save
done > /dev/null
"""


def names(n: int) -> list[str]:
    return [f"ndb-{n}-{i}" for i in range(n)]


def run(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}...: {done.stderr.strip()}")


def ip_batch(lines: list[str], netns_name: str | None = None) -> None:
    """Many `ip` commands in one process (`ip [-n NS] -batch -`)."""
    argv = ["ip"] + (["-n", netns_name] if netns_name else []) + ["-batch", "-"]
    run(argv, "\n".join(lines) + "\n")


def remove_ours() -> None:
    """Delete this benchmark's namespaces (and with them their links), and only those."""
    if not NETNS_DIR.is_dir():
        return
    ours = sorted(p.name for p in NETNS_DIR.iterdir() if OURS.fullmatch(p.name))
    if ours:
        # Delete the hub first: that removes every veth pair in one go.
        ours.sort(key=lambda name: name != HUB)
        subprocess.run(["ip", "-batch", "-"], input="".join(f"netns del {n}\n" for n in ours),
                       capture_output=True, text=True)


def configure(index: int, name: str) -> None:
    """Addresses, routes and iptables rules of one namespace (runs in a worker thread)."""
    a, b = divmod(index, 250)
    ip_batch([
        "link set lo up",
        "link set eth0 up",
        f"addr add 10.77.{a}.{b + 2}/16 dev eth0",
        f"addr add 172.31.{a}.{b + 2}/16 dev eth0",
        "route add default via 10.77.255.254",
        f"route add 192.168.{index % 256}.0/24 via 10.77.255.253",
        "route add blackhole 10.99.0.0/16",
    ], name)
    with netns.entered(str(NETNS_DIR / name)):  # iptables-restore inherits the namespace
        run(["iptables-restore"], IPTABLES_RULES)


def build(n: int, workers: int) -> None:
    spaces = names(n)
    ip_batch([f"netns add {HUB}"] + [f"netns add {name}" for name in spaces])
    ip_batch(["link set lo up", "link add br0 type bridge", "link set br0 up"]
             + [line for i, name in enumerate(spaces) for line in (
                 f"link add h{i} type veth peer name eth0 netns {name}",
                 f"link set h{i} master br0",
                 f"link set h{i} up")], HUB)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(configure, range(n), spaces))


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, with its own children) and peak RSS in MB
    of one command, from wait4 so that nothing else this script ran is counted."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {child.stderr.read().decode().strip()}")
    child.stderr.close()
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def time_netdiag(n: int, output: str, rounds: int) -> tuple[float, float, float, int]:
    """`netdiag snapshot` of the N namespaces and the hub, best of `rounds`: measure() plus
    how many it read.

    They are named with --ns rather than read as "all namespaces", so that other work on a
    shared machine (other people's namespaces, containers) does not change what is timed.
    """
    selection = [arg for name in names(n) + [HUB] for arg in ("--ns", name)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([str(VENV_NETDIAG), "snapshot", "--help"], env=env, capture_output=True,
                   check=True)
    seconds, cpu, rss = min(measure([str(VENV_NETDIAG), "snapshot", "-o", output, "--docker",
                                     "none"] + selection, env) for _ in range(rounds))
    count = len(json.loads(Path(output).read_text())["namespaces"])
    return seconds, cpu, rss, count


def breakdown(n: int) -> dict[str, float]:
    """Where the CPU time of a snapshot of the N namespaces and the hub goes, measured in this
    process: the discovery (scope.select), each collector (thread CPU time summed over the
    namespaces; one process and one worker thread, so that nothing else is counted in), the
    helper programs started (helper.run: forks and execs) and their share, entering the
    namespaces, the cross-namespace resolution and the JSON encoding; plus the process start
    (`netdiag --version`: Python and netdiag's imports) from a subprocess.
    """
    from netdiag import helper
    from netdiag.collect import COLLECTORS, collect_snapshot, scope
    from netdiag.model import serialize

    spent: dict[str, float] = {}

    def timed(name: str, call):
        def wrapper(*args, **kwargs):
            began = time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.thread_time() - began
        return wrapper

    patched = [(module, "collect", module.collect) for module in COLLECTORS]
    patched += [(helper, "run", helper.run), (netns, "entered", netns.entered)]
    spawned = [0]
    real_run = helper.run

    def counting_run(*args, **kwargs):
        spawned[0] += 1
        return real_run(*args, **kwargs)

    try:
        for module in COLLECTORS:
            module.collect = timed(module.NAME, module.collect)
        helper.run = timed("  starting helper programs (caller's share, in the above)",
                           counting_run)
        entered = netns.entered

        @contextmanager
        def timed_entered(path):  # the way in (setns; the way out costs about the same)
            with ExitStack() as stack:
                timed("entering namespaces", stack.enter_context)(entered(path))
                yield
        netns.entered = timed_entered
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        start = measure([str(VENV_NETDIAG), "--version"], env)[1]
        began = time.process_time()
        chosen = scope.select(names(n) + [HUB], everything=False, engines=["none"])
        spent["discovery (scope.select)"] = time.process_time() - began
        began = time.process_time()
        snapshot = collect_snapshot(chosen.read, workers=1, intent=chosen.docker)
        total = time.process_time() - began
        began = time.process_time()
        serialize.encode(snapshot)
        spent["JSON encoding"] = time.process_time() - began
    finally:
        for module, name, value in patched:
            setattr(module, name, value)
    collectors = sum(v for k, v in spent.items() if k in {m.NAME for m in COLLECTORS})
    spent["rest of collect_snapshot (threads, peers, netnsids)"] = total - collectors
    spent["process start (netdiag --version, CPU)"] = start
    spent["helper programs started"] = spawned[0]
    return spent


def time_shell(n: int, rounds: int) -> tuple[float, float]:
    """The shell loop's best of `rounds` (wall, with its CPU)."""
    return min(measure(["sh", "-c", SHELL_LOOP, "loop"] + names(n) + [HUB])[:2]
               for _ in range(rounds))


def docker_row(containers: int, version: str) -> tuple[int, float, float, float]:
    """A real engine in a namespace of its own (tests/docker_engine.py, namespace
    `ndb-dk-<random>`) running `containers` busybox containers on one user network:
    (namespaces read, best of 3 `netdiag snapshot --docker none`, best of 3 with the engine's
    intent, engine start-up + container seconds)."""
    from tests.docker_engine import DockerEngine, build_busybox_image, unavailable_reason

    reason = unavailable_reason(version)
    if reason:
        raise SystemExit(f"--docker-containers: {reason}")
    engine = DockerEngine("bench", version=version)
    engine.netns = f"ndb-dk-{engine.tag}"
    began = time.perf_counter()
    try:
        engine.start()
        image = build_busybox_image(engine)
        engine.docker("network", "create", "--subnet", "10.123.0.0/16", "ndbnet")
        for i in range(containers):
            engine.docker("run", "-d", "--network", "ndbnet", "--name", f"ndb{i}", image,
                          "sleep", "3600")
        made = time.perf_counter() - began
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        with tempfile.TemporaryDirectory() as tmp:
            output = os.path.join(tmp, "snap.json")
            base = [str(VENV_NETDIAG), "snapshot", "-o", output]
            without = min(measure(base + ["--docker", "none"], env)[0] for _ in range(3))
            with_intent = min(measure(base + ["--docker", engine.host], env)[0]
                              for _ in range(3))
            count = len(json.loads(Path(output).read_text())["namespaces"])
        return count, without, with_intent, made
    finally:
        engine.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append",
                        help="number of namespaces (repeatable; default 100)")
    parser.add_argument("--workers", type=int, default=4, help="threads used to build")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each side, the best kept (default 3): the first run "
                             "after building a thousand namespaces meets the kernel still "
                             "busy with them, ~1.7x slower on this 2-core machine")
    parser.add_argument("--docker-containers", type=int, metavar="N", default=0,
                        help="also the Docker row: a snapshot of a host with one engine and N "
                             "containers, with and without the engine's intent (e.g. 200)")
    parser.add_argument("--docker-versions", default="20.10,28",
                        help="the engines of the Docker rows, one row each (default 20.10,28)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip the in-process breakdown of where the time goes")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/snapshot.py needs root (it creates namespaces)", file=sys.stderr)
        return 2
    rows = []
    breakdowns: dict[int, tuple[dict[str, float], float]] = {}
    for n in args.n or [100]:
        remove_ours()
        try:
            start = time.perf_counter()
            build(n, args.workers)
            built = time.perf_counter() - start
            load = os.getloadavg()[0]
            with tempfile.TemporaryDirectory() as tmp:
                seconds, cpu, rss, count = time_netdiag(n, os.path.join(tmp, "snap.json"),
                                                        args.rounds)
            shell, shell_cpu = time_shell(n, args.rounds)
            rows.append((n, count, seconds, cpu, shell, shell_cpu, rss, built, load))
            if args.breakdown:
                breakdowns[n] = (breakdown(n), os.getloadavg()[0])
        finally:
            remove_ours()
    print(f"{'N':>5} {'read':>5} {'netdiag s':>9} {'(cpu s)':>8} {'shell s':>8} {'(cpu s)':>8} "
          f"{'speed-up':>8} {'peak MB':>8} {'build s':>8} {'load':>5}")
    for n, count, seconds, cpu, shell, shell_cpu, rss, built, load in rows:
        print(f"{n:>5} {count:>5} {seconds:>9.2f} {cpu:>8.2f} {shell:>8.2f} {shell_cpu:>8.2f} "
              f"{shell / seconds:>7.1f}x {rss:>8.0f} {built:>8.1f} {load:>5.1f}")
    print("read: namespaces in the snapshot (the N and the hub); load: 1-minute load average "
          "before timing (other work on the machine slows both sides)")
    print("targets: N=100 speed-up >= 5x in wall and CPU time; N=1000 netdiag < 1.5 s; "
          "peak < 300 MB")
    for n, (spent, load) in breakdowns.items():
        print(f"\nwhere the CPU time goes, N={n} (in this process: one process, one thread; "
              f"load {load:.1f})")
        for what, value in spent.items():
            figure = f"{value:>8.0f}" if what == "helper programs started" else \
                f"{value:>8.3f} s" if what.startswith("process start") else \
                f"{value:>8.3f} s  {value / (n + 1) * 1000:6.3f} ms per namespace"
            print(f"  {what:55} {figure}")
    if args.docker_containers:
        print()
        print(f"{'docker':>7} {'containers':>10} {'read':>5} {'--docker none s':>15} "
              f"{'with intent s':>13} {'extra':>6} {'setup s':>8}")
    for version in args.docker_versions.split(",") if args.docker_containers else ():
        count, without, with_intent, made = docker_row(args.docker_containers, version)
        print(f"{version:>7} {args.docker_containers:>10} {count:>5} {without:>15.2f} "
              f"{with_intent:>13.2f} {(with_intent / without - 1) * 100:>5.0f}% {made:>8.1f}",
              flush=True)
    if args.docker_containers:
        print("the whole host read both times (best of 3); target: the docker section costs at "
              "most 20% more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
