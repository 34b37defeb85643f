"""Kernel state → Snapshot.

`collect_snapshot` enters each namespace in a pool of worker threads (netns.entered), runs every
collector there, and joins the results into one Snapshot. Each collector is a module with
`NAME` and `collect(ctx) -> dict` returning NamespaceState fields; a collector that fails
records a Gap and the others go on. Cross-namespace facts are filled in afterwards: veth peers
and socket owners from the collected state alone, and the namespaces of moved VXLAN and
macvlan devices' lower links by asking the kernel to translate their netnsids.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from netdiag import __version__, helper, netns
from netdiag.collect import (
    addresses,
    conntrack,
    dns,
    docker,
    fanout,
    fdb,
    firewall,
    ipsets,
    ipvs,
    lab_intent,
    links,
    neighbours,
    netnsids,
    nftables,
    peers,
    routes,
    rules,
    sockets,
    sysctls,
    xfrm,
)
from netdiag.errors import KernelFeatureMissing, NamespaceGone, NetdiagError, PermissionDenied
from netdiag.model import Gap, HostInfo, NamespaceRef, NamespaceState, Snapshot

# Order matters only where a collector reads what an earlier one put in ctx.found
# (nftables adds the nftables ruleset to the Firewall that firewall started with the iptables
# rules, and lists rule by rule only the tables iptables-nft-save did not show in full; dns
# reads the nat rules of both; ipsets adds the sets the iptables rules name).
COLLECTORS = (links, addresses, routes, rules, neighbours, fdb, ipvs, firewall, nftables, ipsets,
              dns, sockets, sysctls, conntrack, xfrm)

DEFAULT_WORKERS = 4  # reading threads at most, per process (one, unless the reading stalls)
STALL = 0.25  # seconds without a namespace read before another thread starts
CANCEL_POLL = 0.1  # seconds between two looks at the cancel flag


class Cancelled(NetdiagError):
    """The caller cancelled a collection (collect_snapshot's `cancelled` said yes)."""


@dataclass
class Context:
    """What a collector gets: the namespace it is in, and lazily opened netlink sockets.

    Sockets are opened on first use from inside the namespace (the calling thread has entered
    it), and closed by the orchestrator. `found` holds what earlier collectors returned;
    `shared` is shared by every namespace of one snapshot read in this process (what a
    collector learnt in one namespace and may use in the next, such as save_reuse.Kept).
    """

    ref: NamespaceRef
    found: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    _sockets: dict[str, Any] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict)

    def socket(self, name: str, factory):
        """A netlink socket of this namespace, made by `factory()` on first use."""
        if name not in self._sockets:
            self._sockets[name] = factory()
        return self._sockets[name]

    def once(self, name: str, read):
        """What `read()` returns, read on first use: a kernel read several collectors share
        (it is read again if it failed)."""
        if name not in self._memo:
            self._memo[name] = read()
        return self._memo[name]

    def helper(self, argv: Sequence[str], timeout: float = 10.0) -> str:
        """Run a helper program in this namespace (the calling thread has entered it)."""
        return helper.run(argv, timeout)

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()


def _gap_kind(exc: Exception) -> str:
    if isinstance(exc, NamespaceGone):
        return "gone"
    if isinstance(exc, PermissionDenied):
        return "permission"
    if isinstance(exc, KernelFeatureMissing):
        return "feature-missing"
    return "error"


def collect_namespace(ref: NamespaceRef, collectors=COLLECTORS,
                      shared: dict[str, Any] | None = None) -> tuple[NamespaceState | None,
                                                                     list[Gap]]:
    """Read one namespace. Returns (None, gaps) if it cannot be entered at all."""
    gaps: list[Gap] = []
    ctx = Context(ref, shared={} if shared is None else shared)
    try:
        with netns.entered(ref.path):
            try:
                for collector in collectors:
                    try:
                        ctx.found.update(collector.collect(ctx))
                    except NamespaceGone:
                        raise
                    except Exception as exc:  # noqa: BLE001 - one collector must not end the run
                        message = str(exc) if isinstance(exc, NetdiagError) else \
                            f"{type(exc).__name__}: {exc}"
                        gaps.append(Gap(collector=collector.NAME, kind=_gap_kind(exc),
                                        message=message, namespace=ref.id,
                                        needs=getattr(exc, "capability", "")))
            finally:
                ctx.close()
    except NetdiagError as exc:  # gone, not ours to enter, not a namespace at all
        gaps.append(Gap(collector="namespace", kind=_gap_kind(exc), message=str(exc),
                        namespace=ref.id, needs=getattr(exc, "capability", "")))
        return None, gaps
    fields = {k: v for k, v in ctx.found.items() if k in NamespaceState.__dataclass_fields__}
    return NamespaceState(ref=ref, **fields), gaps


def collect_snapshot(refs: Sequence[NamespaceRef], timeout: float | None = None,
                     workers: int = DEFAULT_WORKERS, collectors=COLLECTORS,
                     cancelled: Callable[[], bool] | None = None,
                     intent: docker.Intent | None = None,
                     progress: Callable[[int, int], None] | None = None) -> Snapshot:
    """Read every namespace in `refs` (in parallel) into one Snapshot.

    This is the one way netdiag reads the kernel: the CLI's commands and the TUI alike, so
    that they see the same snapshot (peers and netnsids resolved, feature gaps merged).
    A namespace that did not finish within `timeout` seconds is left out with a "timeout" gap;
    its worker thread is abandoned, not waited for. `cancelled` is asked while the work goes
    on; once it says yes, Cancelled is raised (the TUI's quit). Many namespaces are spread over
    one process per CPU (fanout.py). The cyclic garbage collector pauses meanwhile: the records
    are acyclic, and its passes over the growing heap of them cost ~5% of a big snapshot.
    `intent` is the Docker engines' (the one discovery labelled `refs` from); when it is not
    given, every engine on the host is read. `progress(done, total)` is told how far the
    reading is, from this process only (with helper processes, its own share stands for all).
    """
    if intent is None:
        intent = docker.read()
    was_enabled = gc.isenabled()
    gc.disable()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        here = os.getpid()

        def told(share: Sequence[NamespaceRef]) -> Callable[[int], None] | None:
            if progress is None:
                return None
            scale = len(refs) / max(1, len(share))
            return lambda done: progress(min(len(refs), round(done * scale)), len(refs)) \
                if os.getpid() == here else None  # a helper process has no screen of its own

        results, gaps = fanout.run(refs, lambda share: _collect_in_threads(
            share, deadline, workers, collectors, cancelled, told(share)), deadline)
        states = [results[ref.id] for ref in refs if ref.id in results]
        states = netnsids.resolve(peers.resolve(states))
        states = sockets.resolve_owners(states, first=[engine.pid for engine in intent.engines
                                                       if engine.pid])
    finally:
        if was_enabled:
            gc.enable()
    return Snapshot(created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    host=host_info(), namespaces=tuple(states),
                    gaps=tuple(merge_feature_gaps(gaps)) + intent.gaps,
                    docker=intent.engines, labs=lab_intent.read(refs))


def _collect_in_threads(refs: Sequence[NamespaceRef], deadline: float | None, workers: int,
                        collectors, cancelled: Callable[[], bool] | None,
                        progress: Callable[[int], None] | None = None
                        ) -> tuple[dict[int, NamespaceState], list[Gap]]:
    """Read `refs` with one worker thread, and up to `workers` when the reading stalls.

    One thread reads cheapest: the threads of one process take turns on one core, and their
    switching costs (bench/snapshot.py, 100 namespaces in one process: 0.34 s of CPU with
    four threads, 0.23 s with one, and no quicker). A second thread (and so on) starts only
    when no namespace was finished for STALL seconds: one that blocks (a helper program that
    hangs, a stuck mount under its resolv.conf) holds up its worker, not the rest; at the
    deadline its worker is abandoned.
    """
    results: dict[int, NamespaceState] = {}
    gaps: list[Gap] = []
    queue = list(reversed(refs))  # popped from the end: in the given order
    lock = threading.Lock()
    stop = threading.Event()
    shared: dict[str, Any] = {}

    def drain() -> None:
        while not stop.is_set():
            with lock:
                if not queue:
                    return
                ref = queue.pop()
            state, found_gaps = collect_namespace(ref, collectors, shared)
            with lock:
                gaps.extend(found_gaps)
                if state is not None:
                    results[state.ref.id] = state
                finished[0] += 1

    finished = [0]
    most = max(1, min(workers, len(refs)))
    pool = ThreadPoolExecutor(max_workers=most, thread_name_prefix="netdiag-collect")
    running = {pool.submit(drain)}
    seen, moved = 0, time.monotonic()
    try:
        while running:
            now = time.monotonic()
            left = None if deadline is None else deadline - now
            if left is not None and left <= 0:
                break
            step = STALL if cancelled is None and progress is None else CANCEL_POLL
            done, running = wait(running, timeout=step if left is None else min(step, left))
            for future in done:
                future.result()  # a drainer's own failure (collect_namespace catches the rest)
            with lock:
                count, waiting = finished[0], bool(queue)
            if progress is not None:
                progress(count)
            if running and cancelled is not None and cancelled():
                raise Cancelled("collection cancelled")
            now = time.monotonic()
            if count != seen:
                seen, moved = count, now
            elif waiting and now - moved >= STALL and len(running) < most:
                running.add(pool.submit(drain))  # another worker past the one that blocks
                moved = now
    finally:
        stop.set()  # abandoned workers (a deadline, a cancel) take no further namespace
        # joined when all ended: a fork afterwards (the rules') wants this process alone
        pool.shutdown(wait=not running, cancel_futures=True)
    with lock:
        read, said = dict(results), list(gaps)
    left_out = {gap.namespace for gap in said}
    said += [Gap(collector="namespace", kind="timeout", namespace=ref.id,
                 message=f"{ref.display}: not read in time")
             for ref in refs if ref.id not in read and ref.id not in left_out]
    return read, said


def merge_feature_gaps(gaps: Sequence[Gap]) -> list[Gap]:
    """A kernel feature missing in one namespace is missing in all: say so once, not per
    namespace (a host with 1000 namespaces and no IPVS gets one gap, without a namespace)."""
    merged: list[Gap] = []
    seen: set[tuple[str, str]] = set()
    for gap in gaps:
        if gap.kind == "feature-missing":
            if (gap.collector, gap.message) in seen:
                continue
            seen.add((gap.collector, gap.message))
            gap = replace(gap, namespace=None)
        merged.append(gap)
    return merged


def host_info() -> HostInfo:
    return HostInfo(hostname=socket.gethostname(), kernel=os.uname().release,
                    netdiag_version=__version__)

