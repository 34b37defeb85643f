"""Benchmark: how fast `netdiag --version`, `netdiag --help` and one command's `--help` start,
beside the interpreter's own start in the same run (`python -c pass`, the floor).

    .venv/bin/python bench/startup.py [--runs 20]

Target: `--version` and `--help` under 0.3 s (they import no command module).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET_SECONDS = 0.3


def timed(argv: list[str], runs: int) -> tuple[float, float]:
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), max(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="starts of each (e.g. 50)")
    args = parser.parse_args()
    netdiag = [sys.executable, "-m", "netdiag"]
    rows = [("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
            ("netdiag --version", [*netdiag, "--version"]),
            ("netdiag --help", [*netdiag, "--help"]),
            ("netdiag check --help", [*netdiag, "check", "--help"]),
            ("netdiag path --help", [*netdiag, "path", "--help"])]
    print(f"{'command':28} {'median':>8} {'max':>8}   ({args.runs} starts each)")
    for label, argv in rows:
        median, worst = timed(argv, args.runs)
        print(f"{label:28} {median * 1000:7.0f}ms {worst * 1000:7.0f}ms")
    print(f"target: --version and --help under {TARGET_SECONDS * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
