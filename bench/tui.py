"""Benchmark: time from starting `netdiag tui` to the first painted namespace picker, on a host
with 100 extra network namespaces (target ≤ 1.5 s), and until the finding counts are filled.

It makes `ndb-tui-<i>` namespaces (each with lo up and a veth pair), starts the app in a fresh
Python process each run (so interpreter start and imports count) headless at 80x24, and
removes every namespace it made afterwards, also on failure or Ctrl-C. Needs root.

    .venv/bin/python bench/tui.py [--namespaces 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

PREFIX = "ndb-tui-"
TARGET_SECONDS = 1.5

CHILD = r"""
import sys, time
from netdiag.tui.app import NetdiagApp
from netdiag.tui.source import LiveSource

class BenchApp(NetdiagApp):
    def on_picker_shown(self, message):
        self.painted = (time.time(), message.count)

    def on_finding_counts(self, message):
        print(f"{self.painted[0]} {time.time()} {self.painted[1]}", flush=True)
        self.exit()

BenchApp(LiveSource()).run(headless=True, size=(80, 24))
"""


def ip_batch(lines: list[str]) -> None:
    subprocess.run(["ip", "-force", "-batch", "-"], input="\n".join(lines) + "\n", text=True,
                   check=False, capture_output=True)


def make_namespaces(count: int) -> list[str]:
    names = [f"{PREFIX}{i}" for i in range(count)]
    ip_batch([f"netns add {n}" for n in names])
    for name in names:
        ip_batch([f"-n {name} link set lo up",
                  f"-n {name} link add v0 type veth peer name v1",
                  f"-n {name} link set v0 up", f"-n {name} link set v1 up"])
    return names


def remove_namespaces(names: list[str]) -> None:
    ip_batch([f"netns del {n}" for n in names])


def one_run() -> tuple[float, float, int]:
    started = time.time()
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"the app failed:\n{done.stderr[-2000:]}")
    painted, counted, namespaces = done.stdout.split()[-3:]
    return float(painted) - started, float(counted) - started, int(namespaces)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    names: list[str] = []
    try:
        names = make_namespaces(args.namespaces)
        results = [one_run() for _ in range(args.runs)]
    finally:
        remove_namespaces(names)
    paint = [r[0] for r in results]
    counts = [r[1] for r in results]
    print(f"{results[0][2]} namespaces on this host ({args.namespaces} made by the benchmark), "
          f"{args.runs} runs")
    print(f"first painted picker: median {statistics.median(paint):.3f} s, "
          f"max {max(paint):.3f} s (target <= {TARGET_SECONDS} s)")
    print(f"finding counts filled: median {statistics.median(counts):.3f} s, "
          f"max {max(counts):.3f} s")
    return 0 if statistics.median(paint) <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
