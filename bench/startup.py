"""Benchmark: how fast `netdiag --version`, `netdiag --help`, commands' `--help` and `netdiag
explain` start, beside the interpreter's own start in the same run (`python -c pass`, the
floor, and `python -S -c pass`, without site-packages): the median wall time and the median
CPU time (user + system) of each.

    .venv/bin/python bench/startup.py [--runs 20]

Target: `check --help` under 120 ms: a command's --help imports its parser only, never the
rules, the collectors or a heavy package (tests/unit/test_cli_imports.py). `explain` loads
every rule to list them: it shows what a command that runs costs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

TARGET_SECONDS = 0.12  # check --help


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], runs: int) -> tuple[float, float, float]:
    """Median wall time, worst wall time, median CPU time of `runs` starts."""
    wall, cpu = [], []
    for _ in range(runs):
        cpu_before, began = _children_cpu(), time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        wall.append(time.perf_counter() - began)
        cpu.append(_children_cpu() - cpu_before)
    return statistics.median(wall), max(wall), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="starts of each (e.g. 50)")
    args = parser.parse_args()
    netdiag = [sys.executable, "-m", "netdiag"]
    rows = [("python -S -c pass (floor)", [sys.executable, "-S", "-c", "pass"]),
            ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
            ("netdiag --version", [*netdiag, "--version"]),
            ("netdiag --help", [*netdiag, "--help"]),
            ("netdiag check --help", [*netdiag, "check", "--help"]),
            ("netdiag path --help", [*netdiag, "path", "--help"]),
            ("netdiag explain", [*netdiag, "explain"])]
    print(f"{'command':28} {'median':>8} {'max':>8} {'cpu':>8}   ({args.runs} starts each)")
    check_help = 0.0
    for label, argv in rows:
        median, worst, cpu = timed(argv, args.runs)
        print(f"{label:28} {median * 1000:6.0f}ms {worst * 1000:6.0f}ms {cpu * 1000:6.0f}ms")
        if label == "netdiag check --help":
            check_help = median
    verdict = "met" if check_help < TARGET_SECONDS else "MISSED"
    print(f"target: check --help under {TARGET_SECONDS * 1000:.0f} ms (median): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
