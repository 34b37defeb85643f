"""Benchmark: the whole host — `netdiag check --all` of a Docker engine with 1000 containers,
beside what a person would run to look at the same, and the agent's idle CPU on that host.

Run by hand as root: `.venv/bin/python bench/host.py --containers 1000` (try `--containers
200` first: the set-up of 1000 takes minutes and two cores; `--agent-window 0` skips the
agent row).

Starts one real engine (tests/docker_engine.py's DockerEngine, Docker 20.10 unless
`--version 28`) in a namespace of its own, `ndb-dk-<random>` (never the root namespace), and
in it `--networks` user networks (10.200.<i>.0/24, `ndbnet<i>`) and `--containers` busybox
containers (`sleep`, spread round-robin over the networks), started `--workers` at a time.
The set-up's seconds are printed. Then, in the same run:

* `netdiag check --all --docker <the engine>` end to end (a subprocess, as a user runs it:
  discovery, the engine's intent, collection, the rules, the expected flows), best of
  `--repeat`, wall and CPU time (with its helper processes) and the namespaces it read. --all
  reads the whole machine: other work's namespaces on a shared machine are read too (their
  count is printed, `read`).
* the baseline, what a person would run to look at the same: `docker network inspect` of every
  network, `iptables-save` in the engine's namespace, one `docker inspect` for the containers'
  namespaces, and `ip -j addr` and `ip -j route` in every container's namespace (nsenter),
  as one shell script.
* with `--agent-window S` (default 120), `netdiag agent` for that machine (`--host-ns` the
  engine's namespace, `--docker` the engine; a real etcd, tests/etcd_server.py, in a
  namespace of its own) once it has published its first snapshot, and `etcdctl watch` as the
  baseline: their CPU per minute over S seconds in which nothing changes (the method of
  bench/agent_idle.py, whose helpers this uses).

With `--profile FILE`, one more `check --all` runs in this process under cProfile and its
statistics go to FILE (`python -m pstats FILE`); the top of it is printed. With `--hold FILE`,
the engine stays up after the figures until FILE (into which DOCKER_HOST and the namespace are
written) is removed, for more measurements by hand.
Everything made is removed afterwards, also on failure or Ctrl-C.

Targets (issue 33): check --all under 3 s on 1000 containers; the agent idles under 1% of
one core. The agent's figure is only fair over a window longer than its interval of the moment
(without --interval it stretches to 100 × a read's CPU time, minutes on this host: use
`--agent-window 600` or more; a shorter window shows only the time between reads).

Measured 2026-12-07 on the 2-core machine shared with other sessions (load in brackets), one
engine of 1000 containers on 20 networks (set-up 641 s, 12 at a time, load 49; the 200
of a first try 83 s): before that day's changes, check --all 24.3 s wall / 9.5 s CPU (49;
1048 namespaces read), the baseline 24.1 s / 5.8 s (30), the agent 6.7 s CPU a minute, 11% of
a core (38); after them, on the same engine, check --all 12.4 s / 5.5 s (13; 1020 read), the
baseline 22.3 s / 7.2 s (15), the agent 0.44 s a minute, 0.73% of a core over 660 s with one
interval read in it (17). Removing the engine took minutes (a SIGTERM'd run left its
containers: this script now turns SIGTERM into an exit through `finally`).

Measured 2026-12-08, the machine otherwise idle (set-up 231-244 s, 8 at a time; 1002
namespaces read; the host itself keeps the machine about 20-24% busy: its shims, and this
sandbox's pid 1 scanning /proc). Before that day's changes: check --all 3.83-3.99 s wall,
4.1-4.2 s CPU. After them, alternated in five pairs with the code before: 3.16-3.42 s against
3.68-4.16 s; in a calmer hour, 2.74-3.05 s. The baseline 5.8-8.2 s. The agent 0.41 s CPU a
minute, 0.69% of a core over 600 s with one interval read in it. The machine's speed varies
by a quarter from one hour to the next: compare figures from one run only.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import agent_idle  # noqa: E402  (bench/agent_idle.py: cpu_seconds, wait_for_line, stop)
from snapshot import VENV_NETDIAG  # noqa: E402

from tests.docker_engine import DockerEngine, build_busybox_image, unavailable_reason  # noqa: E402

BASELINE = """
for net in $NETWORKS; do "$DOCKER" network inspect "$net"; done
nsenter --net="$ENGINE_NS" iptables-save
for key in $("$DOCKER" inspect -f '{{.NetworkSettings.SandboxKey}}' $("$DOCKER" ps -q)); do
  nsenter --net="$key" ip -j addr show
  nsenter --net="$key" ip -j route show
done
"""


def build(engine: DockerEngine, containers: int, networks: int, workers: int) -> None:
    image = build_busybox_image(engine)
    for i in range(networks):
        engine.docker("network", "create", "--subnet", f"10.200.{i}.0/24", f"ndbnet{i}")

    def start(i: int) -> None:
        engine.docker("run", "-d", "--network", f"ndbnet{i % networks}", "--name", f"ndb{i}",
                      image, "sleep", "36000", timeout=300)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(start, range(containers)))


def busy_share(seconds: float = 5.0) -> float:
    """How busy the machine's CPUs were over `seconds` (0 to 1), from /proc/stat."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait
    total, idle = sample()
    time.sleep(seconds)
    total2, idle2 = sample()
    return 1 - (idle2 - idle) / max(1, total2 - total)


def settle(below: float = 0.3, most: float = 180.0) -> tuple[float, float]:
    """Wait (at most `most` seconds) until the machine is less than `below` busy: a thousand
    containers just started keep dockerd, containerd and their shims at work for a while, and
    a figure taken then is theirs as much as ours. (The shims' own idle cost stays: that is
    the host.)"""
    began = time.monotonic()
    while True:
        busy = busy_share()
        if busy < below or time.monotonic() - began >= most:
            return time.monotonic() - began, busy


def measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Wall and CPU seconds (user + system of it and its children: wait4), exit code and the
    end of its stderr, of one command whose stdout is thrown away."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    child.stderr.close()
    return seconds, usage.ru_utime + usage.ru_stime, child.returncode, \
        err.decode(errors="replace").strip()[-400:]


def check_argv(engine: DockerEngine) -> list[str]:
    return [str(VENV_NETDIAG), "check", "--all", "--docker", engine.host, "--exit-zero",
            "--format", "json"]


def time_check(engine: DockerEngine, repeat: int, env: dict[str, str]
               ) -> tuple[float, float, int]:
    """Best of `repeat` `check --all` runs (wall, its CPU) and how many namespaces it read."""
    best = None
    for _ in range(repeat):
        seconds, cpu, code, err = measured(check_argv(engine), env)
        if code != 0:
            raise SystemExit(f"netdiag check --all failed ({code}): {err}")
        if best is None or seconds < best[0]:
            best = (seconds, cpu)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([str(VENV_NETDIAG), "snapshot", "--docker", engine.host, "-o",
                               os.path.join(tmp, "snap.json")], capture_output=True, text=True,
                              env=env)
    read = int(done.stderr.split()[0]) if done.returncode == 0 else -1
    return best[0], best[1], read


def time_baseline(engine: DockerEngine, networks: int) -> tuple[float, float]:
    env = {**os.environ, "DOCKER": engine.cli, "DOCKER_HOST": engine.host,
           "ENGINE_NS": engine.netns_path,
           "NETWORKS": " ".join(f"ndbnet{i}" for i in range(networks))}
    seconds, cpu, code, err = measured(["sh", "-c", BASELINE], env)
    if code != 0:
        raise SystemExit(f"the baseline failed ({code}): {err}")
    return seconds, cpu


def profile(engine: DockerEngine, path: str) -> str:
    """One `check --all` in this process under cProfile, timed in CPU time (the process's
    threads together): the top 25 by cumulative time."""
    from netdiag import cli

    argv = check_argv(engine)[1:]
    stdout = sys.stdout
    sys.stdout = io.StringIO()  # the report
    profiler = cProfile.Profile(time.process_time)  # CPU time: wall time is the machine's load
    try:
        profiler.enable()
        try:
            cli.main(argv)
        except SystemExit:
            pass
        profiler.disable()
    finally:
        sys.stdout = stdout
    profiler.dump_stats(path)
    text = io.StringIO()
    pstats.Stats(path, stream=text).sort_stats("cumulative").print_stats(25)
    return text.getvalue()


def agent_row(engine: DockerEngine, window: float, env: dict[str, str]
              ) -> tuple[float, float, float, str]:
    """The agent's and `etcdctl watch`'s CPU seconds over `window` idle seconds (measured
    from its first publish), the window's length and the agent's publishes in it."""
    from tests.etcd_server import EtcdServer
    from tests.etcd_server import unavailable_reason as etcd_missing

    reason = etcd_missing()
    if reason:
        raise SystemExit(f"--agent-window: {reason}")
    etcd = agent = watcher = None
    try:
        etcd = EtcdServer().create()
        agent = subprocess.Popen(
            ["ip", "netns", "exec", etcd.netns, str(VENV_NETDIAG), "agent", "--etcd",
             "http://127.0.0.1:2379", "--node", "bench-host", "--host-ns", engine.netns,
             "--docker", engine.host, "-v"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        watcher = subprocess.Popen(
            ["ip", "netns", "exec", etcd.netns, "etcdctl", "--endpoints",
             "http://127.0.0.1:2379", "watch", "--prefix", "/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**env, "ETCDCTL_API": "3"})
        agent_idle.wait_for_line(agent, "published #1", 300)
        began = time.monotonic()
        agent_start = agent_idle.cpu_seconds(agent.pid)
        watch_start = agent_idle.cpu_seconds(watcher.pid)
        time.sleep(window)
        agent_cpu = agent_idle.cpu_seconds(agent.pid) - agent_start
        watch_cpu = agent_idle.cpu_seconds(watcher.pid) - watch_start
        seconds = time.monotonic() - began
        published = agent_idle.publishes(agent)
    finally:
        agent_idle.stop(agent)
        agent_idle.stop(watcher)
        if etcd is not None:
            etcd.close()
    reasons = ", ".join(f"{count} {why}" for why, count in sorted(published.items()))
    return agent_cpu, watch_cpu, seconds, reasons or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--networks", type=int, default=20)
    parser.add_argument("--workers", type=int, default=8,
                        help="containers started at a time (default 8)")
    parser.add_argument("--version", default="20.10", help="Docker 20.10 (default) or 28")
    parser.add_argument("--repeat", type=int, default=3, help="check --all runs (best taken)")
    parser.add_argument("--agent-window", type=float, default=120.0, metavar="S",
                        help="seconds the idle agent is measured (0: no agent row)")
    parser.add_argument("--profile", metavar="FILE",
                        help="also profile one check --all in this process into FILE")
    parser.add_argument("--hold", metavar="FILE",
                        help="keep the engine up after the figures until FILE (made then) is "
                             "removed")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/host.py needs root (it starts a Docker engine)", file=sys.stderr)
        return 2
    reason = unavailable_reason(args.version)
    if reason:
        print(f"bench/host.py: {reason}", file=sys.stderr)
        return 2
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # SIGTERM (`timeout`, kill) as Ctrl-C: the engine is removed in `finally` either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    engine = DockerEngine("bench", version=args.version)
    engine.netns = f"ndb-dk-{engine.tag}"
    try:
        began = time.perf_counter()
        engine.start()
        started = time.perf_counter() - began
        build(engine, args.containers, args.networks, args.workers)
        made = time.perf_counter() - began
        print(f"set-up: engine {started:.1f} s, {args.containers} containers on "
              f"{args.networks} networks {made - started:.1f} s ({args.workers} at a time; "
              f"load {os.getloadavg()[0]:.1f})", flush=True)
        waited, busy = settle()
        print(f"settled: {waited:.0f} s until the machine was {busy:.0%} busy", flush=True)
        subprocess.run([str(VENV_NETDIAG), "--version"], env=env, capture_output=True)
        load = os.getloadavg()[0]
        check_s, check_cpu, read = time_check(engine, args.repeat, env)
        shell_s, shell_cpu = time_baseline(engine, args.networks)
        print(f"\n{'':38} {'wall s':>7} {'cpu s':>7} {'load':>5}")
        print(f"{f'netdiag check --all (read {read} ns)':38} {check_s:>7.2f} {check_cpu:>7.2f} "
              f"{load:>5.1f}")
        print(f"{'baseline: inspect + iptables-save + ip':38} {shell_s:>7.2f} {shell_cpu:>7.2f} "
              f"{os.getloadavg()[0]:>5.1f}")
        print(f"check: best of {args.repeat}; target under 3 s on 1000 containers", flush=True)
        if args.profile:
            print(profile(engine, args.profile), flush=True)
        if args.agent_window:
            load = os.getloadavg()[0]
            agent_cpu, watch_cpu, seconds, reasons = agent_row(engine, args.agent_window, env)
            print(f"\n{'process (idle, nothing changes)':42} {'CPU s/min':>9} {'% of a core':>11}")
            print(f"{f'netdiag agent, {args.containers} containers':42} "
                  f"{agent_cpu * 60 / seconds:>9.2f} {agent_cpu / seconds * 100:>10.2f}%")
            print(f"{'baseline: etcdctl watch --prefix /':42} {watch_cpu * 60 / seconds:>9.2f} "
                  f"{watch_cpu / seconds * 100:>10.2f}%")
            print(f"window {seconds:.0f} s; the agent's publishes in it: {reasons}; load before "
                  f"{load:.1f}; target: the agent under 1% of one core", flush=True)
        if args.hold:
            Path(args.hold).write_text(f"DOCKER_HOST={engine.host}\nNETNS={engine.netns}\n")
            print(f"\nholding: DOCKER_HOST={engine.host} netns {engine.netns}; removing "
                  f"{args.hold} ends it", flush=True)
            while Path(args.hold).exists():
                time.sleep(1)
    finally:
        began = time.perf_counter()
        engine.stop()
        print(f"removed in {time.perf_counter() - began:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
