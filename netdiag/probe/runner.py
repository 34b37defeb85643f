"""Run planned probes inside the namespaces they start from, and keep the results.

One worker thread enters each namespace in turn (the caller's thread never changes
namespace); scapy's routing table is process-wide, so sweeps do not run in parallel. A probe
that would end after the deadline is recorded as skipped rather than sent.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from netdiag import netns
from netdiag.errors import NetdiagError
from netdiag.model import DnsProbe, PathMtuProbe, PortProbe, Probes, Snapshot
from netdiag.probe import dns, pmtu, ports
from netdiag.probe.plan import Task, plan

SKIPPED = "skipped: the time limit was reached"
DEFAULT_BUDGET = 30.0  # seconds for all probes of one run, when the caller gives no deadline


def with_probes(snapshot: Snapshot, focus: Iterable[int] = (), deadline: float | None = None,
                timeout: float = 1.0) -> Snapshot:
    """`snapshot` with `probes` filled in by probing the live namespaces it describes.

    Without a deadline, probing stops after DEFAULT_BUDGET seconds: `check --all --probe` on a
    big host must end even when many targets stay silent.
    """
    if deadline is None:
        deadline = time.monotonic() + DEFAULT_BUDGET
    return replace(snapshot, probes=measure(snapshot, plan(snapshot, focus), deadline, timeout))


def measure(snapshot: Snapshot, tasks: Iterable[Task], deadline: float | None = None,
            timeout: float = 1.0) -> Probes:
    """Run `tasks` in one worker thread (the caller's thread never changes namespace)."""
    by_namespace: dict[int, list[Task]] = defaultdict(list)
    for task in tasks:
        by_namespace[task.namespace].append(task)
    paths = {state.ref.id: state.ref.path for state in snapshot.namespaces}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="netdiag-probe") as pool:
        results = pool.submit(_run_all, by_namespace, paths, deadline, timeout).result()
    return Probes(path_mtu=tuple(r for r in results if isinstance(r, PathMtuProbe)),
                  ports=tuple(r for r in results if isinstance(r, PortProbe)),
                  dns=tuple(r for r in results if isinstance(r, DnsProbe)))


def _run_all(by_namespace: dict[int, list[Task]], paths: dict[int, str],
             deadline: float | None, timeout: float) -> list:
    results = []
    for ns_id, tasks in by_namespace.items():
        try:
            with netns.entered(paths[ns_id]):
                results += [_run(task, deadline, timeout) for task in tasks]
        except NetdiagError as exc:  # the namespace went away or cannot be entered
            results += [_failed(task, str(exc)) for task in tasks]
    return results


def _run(task: Task, deadline: float | None, timeout: float):
    if deadline is not None and time.monotonic() + timeout > deadline:
        return _failed(task, SKIPPED)
    if task.kind == "path_mtu":
        return pmtu.sweep(task.namespace, task.address, timeout)
    if task.kind == "port":
        return ports.connect(task.namespace, task.address, task.port, timeout, task.purpose)
    return dns.query(task.namespace, task.address, timeout=2 * timeout)


def _failed(task: Task, why: str):
    if task.kind == "path_mtu":
        return PathMtuProbe(task.namespace, task.address, attempts=((0, why),))
    if task.kind == "port":
        return PortProbe(task.namespace, task.address, task.port, error=why,
                         purpose=task.purpose)
    return DnsProbe(task.namespace, task.address, error=why)
