"""Benchmark: what each collector costs per namespace, beside the shell tools it replaces.

Run by hand as root: `.venv/bin/python bench/collectors.py --n 200`.

Builds N namespaces `ndb-<pid>-<i>` (half bare — lo and a veth pair —, half with the same
plus 5 iptables rules through the default nft backend, as bench/snapshot.py makes them), then
runs every collector in every namespace from one thread and prints, per collector and kind of
namespace, the mean wall time and the CPU time (this thread's own plus helper programs').
In the same run it measures the baselines: a bare fork+exec of /bin/true from this process
(the floor of any helper program) and the shell tools a person would run in the namespace
(`iptables-save`, `nft -j list ruleset`, `ss -Hltun`, `sysctl` of the same keys) through
`ip netns exec`. Everything it made is removed afterwards, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.snapshot import IPTABLES_RULES as RULES  # noqa: E402  (the same 5 rules)
from netdiag import netns  # noqa: E402
from netdiag.collect import COLLECTORS, DEFAULT_WORKERS, Context, collect_snapshot  # noqa: E402
from netdiag.collect.sysctls import GLOBAL  # noqa: E402
from netdiag.errors import NetdiagError  # noqa: E402
from netdiag.model import NamespaceRef, NsKind  # noqa: E402

PREFIX = f"ndb-{os.getpid()}-"  # the benchmarks' names: ndb-<digits>-<digits>
BASELINES = {
    "iptables-save": ["iptables-save"],
    "nft -j list ruleset": ["nft", "-j", "list", "ruleset"],
    "ss -Hltun": ["ss", "-Hltun"],
    "sysctl (same keys)": ["sysctl", "-e", *GLOBAL],
}


def run(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}: {done.stderr.strip()}")


def build(n: int) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {"bare": [], "rules": []}
    for i in range(n):
        name = f"{PREFIX}{i}"
        netns.create_named(name)
        kind = "rules" if i % 2 else "bare"
        kinds[kind].append(name)
        run(["ip", "-n", name, "-batch", "-"],
            "link set lo up\nlink add v0 type veth peer name v1\nlink set v0 up\n"
            "link set v1 up\n")
        if kind == "rules":
            with netns.entered(f"/run/netns/{name}"):
                run(["iptables-restore"], RULES)
    return kinds


def _ref(name: str) -> NamespaceRef:
    path = f"/run/netns/{name}"
    return NamespaceRef(id=os.stat(path).st_ino, kind=NsKind.NAMED, path=path, name=name)


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(names: list[str]) -> dict[str, tuple[float, float]]:
    """Collector → (mean wall ms, mean CPU ms) over `names`, collectors run in their order."""
    wall: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    for name in names:
        ref = _ref(name)
        with netns.entered(ref.path):
            ctx = Context(ref)
            for collector in COLLECTORS:
                start, start_cpu, start_children = (time.perf_counter(), time.thread_time(),
                                                    children_cpu())
                try:
                    ctx.found.update(collector.collect(ctx))
                except NetdiagError:  # ipvs on this kernel: the cost of finding out counts
                    pass
                wall[collector.NAME] += time.perf_counter() - start
                cpu[collector.NAME] += (time.thread_time() - start_cpu
                                        + children_cpu() - start_children)
            ctx.close()
    return {key: (wall[key] * 1000 / len(names), cpu[key] * 1000 / len(names)) for key in wall}


def measure_command(argv: list[str], names: list[str], prefix: list[str]) -> tuple[float, float]:
    start, start_children = time.perf_counter(), children_cpu()
    for name in names:
        subprocess.run([*prefix, *([name] if prefix else []), *argv], capture_output=True)
    count = len(names)
    return ((time.perf_counter() - start) * 1000 / count,
            (children_cpu() - start_children) * 1000 / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="namespaces to build (default 200)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it creates namespaces")
    try:
        kinds = build(args.n)
        results = {kind: measure(names) for kind, names in kinds.items()}
        print(f"per namespace, mean of {args.n // 2} each; wall ms / CPU ms "
              "(thread + helper programs)")
        print(f"{'collector':<26}{'bare namespace':>18}{'5 iptables rules':>20}")
        totals = {kind: [0.0, 0.0] for kind in kinds}
        for collector in COLLECTORS:
            cells = []
            for kind in kinds:
                wall, cpu = results[kind][collector.NAME]
                totals[kind][0] += wall
                totals[kind][1] += cpu
                cells.append(f"{wall:7.3f} / {cpu:6.3f}")
            print(f"{collector.NAME:<26}{cells[0]:>18}{cells[1]:>20}")
        print(f"{'all collectors':<26}" + "".join(
            f"{f'{w:7.3f} / {c:6.3f}':>{width}}" for (w, c), width in
            zip(totals.values(), (18, 20))))
        refs = [_ref(name) for names in kinds.values() for name in names]
        start, start_cpu = time.perf_counter(), _process_cpu()
        snapshot = collect_snapshot(refs, workers=DEFAULT_WORKERS)
        wall, cpu = time.perf_counter() - start, _process_cpu() - start_cpu
        print(f"collect_snapshot of all {len(refs)} ({DEFAULT_WORKERS} workers): {wall:.2f} s "
              f"wall, {cpu:.2f} s CPU, {wall * 1000 / len(refs):.2f} ms per namespace, "
              f"{len(snapshot.gaps)} gaps")
        print("baselines, same run:")
        floor = measure_command(["/bin/true"], kinds["rules"], [])
        print(f"{'fork+exec /bin/true':<26}{'':>18}{f'{floor[0]:7.3f} / {floor[1]:6.3f}':>20}")
        for label, argv in BASELINES.items():
            wall, cpu = measure_command(argv, kinds["rules"], ["ip", "netns", "exec"])
            print(f"{'ip netns exec ' + label:<26.26}{'':>18}{f'{wall:7.3f} / {cpu:6.3f}':>20}")
    finally:
        for path in Path("/run/netns").glob(f"{PREFIX}*"):
            netns.delete_named(path.name)


if __name__ == "__main__":
    main()
