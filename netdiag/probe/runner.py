"""Run planned probes inside the namespaces they start from, and keep the results.

One worker thread enters each namespace in turn (the caller's thread never changes
namespace); scapy's routing table is process-wide, so sweeps do not run in parallel. A probe
that would end after the deadline is recorded as skipped rather than sent. `summary` is what
every probing run tells its user: how many probes went where, which failed, and which targets
were left out because they are outside the snapshot.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from netdiag import netns
from netdiag.errors import NetdiagError, PermissionDenied
from netdiag.model import DnsProbe, PathMtuProbe, PortProbe, Probes, Snapshot
from netdiag.probe import dns, pmtu, ports
from netdiag.probe.plan import Plan, Task, plan

SKIPPED = "skipped: the time limit was reached"
DEFAULT_BUDGET = 30.0  # seconds for all probes of one run, when the caller gives no deadline


ProbeProgress = Callable[[int, int, Task], None]  # (probes done, probes planned, the next one)


def with_probes(snapshot: Snapshot, focus: Iterable[int] = (), deadline: float | None = None,
                timeout: float = 1.0, external: bool = False,
                progress: ProbeProgress | None = None) -> tuple[Snapshot, Plan]:
    """`snapshot` with `probes` filled in by probing the live namespaces it describes, and
    the plan that was carried out (for `summary`).

    Targets are inside the snapshot unless `external` is set (scope.py). Without a deadline,
    probing stops after DEFAULT_BUDGET seconds: `check --all --probe` on a big host must end
    even when many targets stay silent.
    """
    if deadline is None:
        deadline = time.monotonic() + DEFAULT_BUDGET
    planned = plan(snapshot, focus, external=external)
    probes = measure(snapshot, planned.tasks, deadline, timeout, progress)
    return replace(snapshot, probes=probes), planned


def measure(snapshot: Snapshot, tasks: Iterable[Task], deadline: float | None = None,
            timeout: float = 1.0, progress: ProbeProgress | None = None) -> Probes:
    """Run `tasks` in one worker thread (the caller's thread never changes namespace)."""
    by_namespace: dict[int, list[Task]] = defaultdict(list)
    for task in tasks:
        by_namespace[task.namespace].append(task)
    paths = {state.ref.id: state.ref.path for state in snapshot.namespaces}
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netdiag-probe")
    future = pool.submit(_run_all, by_namespace, paths, deadline, timeout, progress)
    try:
        # in short waits: a Ctrl-C is taken between two, never held by one long wait (one
        # unbounded wait let it through only after a 10 s probe, in a loaded suite)
        while True:
            try:
                results = future.result(timeout=0.1)
                break
            except TimeoutError:
                continue
    except BaseException:  # Ctrl-C: now, not after every probe left (up to the budget)
        pool.shutdown(wait=False)
        raise
    pool.shutdown()
    return Probes(path_mtu=tuple(r for r in results if isinstance(r, PathMtuProbe)),
                  ports=tuple(r for r in results if isinstance(r, PortProbe)),
                  dns=tuple(r for r in results if isinstance(r, DnsProbe)))


def _run_all(by_namespace: dict[int, list[Task]], paths: dict[int, str],
             deadline: float | None, timeout: float, progress: ProbeProgress | None) -> list:
    results: list = []
    total = sum(len(tasks) for tasks in by_namespace.values())
    for ns_id, tasks in by_namespace.items():
        started = len(results)
        try:
            with netns.entered(paths[ns_id]):
                for task in tasks:
                    if progress is not None:
                        progress(len(results), total, task)
                    results.append(_run(task, deadline, timeout))
        except NetdiagError as exc:  # the namespace went away or cannot be entered
            results += [_failed(task, str(exc)) for task in tasks[len(results) - started:]]
    return results


def summary(planned: Plan, probes: Probes, label=lambda ns_id: f"inode:{ns_id}") -> list[str]:
    """What a probing run says at its end: counts, targets, failures, and what was left out."""
    kinds = (("path MTU sweep", probes.path_mtu), ("TCP connect", probes.ports),
             ("DNS query", probes.dns))
    counts = ", ".join(f"{len(found)} {name}{'s' if len(found) != 1 else ''}"
                       for name, found in kinds if found)
    targets = list(dict.fromkeys(task.target for task in planned.tasks))  # nearest first
    failed = [line for _, found in kinds for line in (_failure(label, r) for r in found) if line]
    lines = [f"probed: {counts or 'nothing'}"
             + (f" to {len(targets)} target{'s' if len(targets) != 1 else ''}"
                f" ({', '.join(targets[:8])}{', …' if len(targets) > 8 else ''})"
                if targets else "")
             + f"; {len(failed)} failed"]
    lines += [f"  failed: {line}" for line in failed]
    if planned.left_out:
        lines.append(f"not probed: {len(planned.left_out)} target"
                     f"{'s' if len(planned.left_out) != 1 else ''} outside the namespaces "
                     "netdiag read (--probe-external sends to them)")
        lines += [f"  {label(task.namespace)} → {task.target}: {why}"
                  for task, why in planned.left_out[:8]]
        if len(planned.left_out) > 8:
            lines.append(f"  … and {len(planned.left_out) - 8} more")
    return lines


def _failure(label, result) -> str:
    if isinstance(result, PathMtuProbe):
        why = f" ({result.attempts[-1][1]})" if result.attempts else ""
        return "" if result.answered else \
            f"{label(result.namespace)} → {result.destination}: no DF ping answered{why}"
    if isinstance(result, PortProbe):
        return "" if result.open else \
            f"{label(result.namespace)} → {result.address}:{result.port}: {result.error}"
    return "" if result.answered else \
        f"{label(result.namespace)} → dns {result.server}: {result.error}"


def _run(task: Task, deadline: float | None, timeout: float):
    if deadline is not None and time.monotonic() + timeout > deadline:
        return _failed(task, SKIPPED)
    if task.kind == "path_mtu":
        try:
            return pmtu.sweep(task.namespace, task.address, timeout)
        except PermissionDenied as exc:  # no CAP_NET_RAW: the connects and queries still run
            return _failed(task, str(exc))
    if task.kind == "port":
        return ports.connect(task.namespace, task.address, task.port, timeout, task.purpose)
    return dns.query(task.namespace, task.address, task.query or ".", timeout=2 * timeout)


def _failed(task: Task, why: str):
    if task.kind == "path_mtu":
        return PathMtuProbe(task.namespace, task.address, attempts=((0, why),))
    if task.kind == "port":
        return PortProbe(task.namespace, task.address, task.port, error=why,
                         purpose=task.purpose)
    return DnsProbe(task.namespace, task.address, error=why)
