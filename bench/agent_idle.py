"""Benchmark: the fleet agent's CPU when nothing changes, beside an idle `etcdctl watch`.

Run by hand as root: `.venv/bin/python bench/agent_idle.py [--n 100] [--window 120]`.

Builds the namespaces of bench/snapshot.py (`ndb-<N>-<i>` on one bridge in `ndb-hub`) and a
real etcd in a namespace of its own (tests/etcd_server.py, answering on its loopback), then
starts, in etcd's namespace, `netdiag agent --host-ns ndb-hub --ns ...` (the machine: the hub
and the N namespaces; default interval, so a read, the checks and a publish every 30 s — or
less often where a read costs more than 0.3 s of CPU, netdiag/fleet/agent.py's IDLE_SHARE —
and a lease refresh) and, as the baseline, `etcdctl watch --prefix /` (a client that holds a
connection to etcd and does nothing else). The agent starts SETTLE seconds after the build
(the bridge ports reach forwarding, a link change, after the bridge's forward delay). Once
it has published its first snapshot (the start is not idle), both processes' CPU time (user
+ system, with their reaped children: /proc/PID/stat) is read at the start and the end of a
window of `--window` seconds in which nothing changes, and printed per minute and as a share
of one core, with the publishes the agent made meanwhile and why (interval, change).
Target: the agent idles under 1% of one core. Everything made is removed afterwards, also
on failure.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import snapshot as namespaces  # noqa: E402  (bench/snapshot.py: build, names, remove_ours)

from tests.etcd_server import EtcdServer, unavailable_reason  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
FIRST_PUBLISH_TIMEOUT = 60.0
SETTLE = 20.0  # seconds after the build: the ports reach forwarding (forward delay 15 s)


def cpu_seconds(pid: int) -> float:
    """User + system time of a process and its reaped children (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15]) / TICKS  # utime stime cutime cstime


def wait_for_line(process: subprocess.Popen, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.5)
        if ready:
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            if needle.encode() in buffer:
                return
    raise SystemExit(f"the agent did not say {needle!r}: {buffer.decode(errors='replace')}")


def publishes(process: subprocess.Popen) -> Counter:
    """The agent's publishes since the last read of its log, by reason ("interval",
    "change"): from its -v lines, "published #2 (interval: ...)"."""
    text = b""
    while select.select([process.stderr], [], [], 0)[0]:
        chunk = os.read(process.stderr.fileno(), 65536)
        if not chunk:
            break
        text += chunk
    return Counter(re.findall(r"published #\d+ \((\w+):", text.decode(errors="replace")))


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="namespaces besides the hub")
    parser.add_argument("--window", type=float, default=120.0, help="seconds measured")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"bench/agent_idle.py: {reason}", file=sys.stderr)
        return 2
    namespaces.remove_ours()
    etcd = agent = watcher = None
    try:
        namespaces.build(args.n, 4)
        etcd = EtcdServer().create()
        time.sleep(SETTLE)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        selection = [arg for name in namespaces.names(args.n) for arg in ("--ns", name)]
        agent = subprocess.Popen(
            ["ip", "netns", "exec", etcd.netns, str(namespaces.VENV_NETDIAG), "agent",
             "--etcd", "http://127.0.0.1:2379", "--node", "idle", "--host-ns",
             namespaces.HUB, "--docker", "none", "-v", *selection],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        watcher = subprocess.Popen(
            ["ip", "netns", "exec", etcd.netns, "etcdctl", "--endpoints",
             "http://127.0.0.1:2379", "watch", "--prefix", "/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**env, "ETCDCTL_API": "3"})
        wait_for_line(agent, "published #1", FIRST_PUBLISH_TIMEOUT)
        load = os.getloadavg()[0]
        began = time.monotonic()
        agent_start, watch_start = cpu_seconds(agent.pid), cpu_seconds(watcher.pid)
        time.sleep(args.window)
        agent_cpu = cpu_seconds(agent.pid) - agent_start
        watch_cpu = cpu_seconds(watcher.pid) - watch_start
        seconds = time.monotonic() - began
        published = publishes(agent)
    finally:
        stop(agent)
        stop(watcher)
        if etcd is not None:
            etcd.close()
        namespaces.remove_ours()
    per_minute = 60 / seconds
    print(f"{'process (idle, nothing changes)':42} {'CPU s/min':>9} {'% of a core':>11}")
    print(f"{'netdiag agent, ' + str(args.n + 1) + ' namespaces, interval 30 s':42} "
          f"{agent_cpu * per_minute:>9.2f} {agent_cpu / seconds * 100:>10.2f}%")
    print(f"{'baseline: etcdctl watch --prefix /':42} {watch_cpu * per_minute:>9.2f} "
          f"{watch_cpu / seconds * 100:>10.2f}%")
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(published.items()))
    print(f"window {seconds:.0f} s; the agent's publishes in it: {reasons or 'none'}; load "
          f"before: {load:.1f} (2 cores); target: the agent under 1% of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
