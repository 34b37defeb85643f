"""Where the TUI's data comes from: the live kernel, or a saved snapshot.

Both sources answer the same three questions — which namespaces are there, what does one
namespace (and what it is wired to) look like now, what does everything look like — and are
called from worker threads only, never from the event loop. The seams to the rest of netdiag
live here too, each one small function: `run_checks` (the rule engine), `apply_repair` (the
repair executor) and `export`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from netdiag import netns
from netdiag.checks.api import CheckConfig, Finding, ManualStep, Repair, Safety
from netdiag.errors import CollectError, NamespaceGone, NotFound, UsageError
from netdiag.model import NamespaceRef, Snapshot
from netdiag.model.serialize import save

BATCH = 32  # namespaces read between two looks at the cancel flag
CHECK_SECONDS = 10.0  # rules still running then are abandoned (the engine reports them)

Checker = Callable[[Snapshot], tuple[Finding, ...]]


def run_checks(snapshot: Snapshot) -> tuple[Finding, ...]:
    """Every finding the check engine reports for `snapshot`, with the default config."""
    from netdiag.checks import engine

    return engine.run(snapshot, CheckConfig(), deadline=time.monotonic() + CHECK_SECONDS).findings


def involves(finding: Finding, ns_id: int) -> bool:
    return finding.namespace.id == ns_id or ns_id in finding.related


def finding_counts(findings: Sequence[Finding]) -> dict[int, int]:
    """namespace id → how many findings involve it."""
    counts: dict[int, int] = {}
    for f in findings:
        for ns_id in {f.namespace.id, *f.related}:
            counts[ns_id] = counts.get(ns_id, 0) + 1
    return counts


@dataclass
class LiveSource:
    """The running kernel."""

    check: Checker = run_checks
    offline: bool = False
    timeout: float = 10.0

    def discover(self) -> list[NamespaceRef]:
        return netns.discover()

    def resolve(self, reference: str) -> NamespaceRef:
        return netns.resolve(reference)

    def collect_all(self, refs: Sequence[NamespaceRef],
                    cancelled: Callable[[], bool] = lambda: False) -> Snapshot | None:
        """Every namespace, read in batches so that quitting never waits for a whole host;
        None when `cancelled()` became true on the way."""
        from netdiag.collect import (DEFAULT_WORKERS, collect_namespace, host_info, peers,
                                     sockets)

        states, gaps = [], []
        with ThreadPoolExecutor(DEFAULT_WORKERS, thread_name_prefix="netdiag-tui") as pool:
            for start in range(0, len(refs), BATCH):
                if cancelled():
                    return None
                for state, found in pool.map(collect_namespace, refs[start:start + BATCH]):
                    gaps += found
                    states += [state] if state is not None else []
        # Resolved once over everything: a veth's peer may have been read in another batch.
        states = sockets.resolve_owners(peers.resolve(states))
        return Snapshot(created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        host=host_info(), namespaces=tuple(states), gaps=tuple(gaps))

    def collect(self, ref: NamespaceRef) -> Snapshot:
        """The attached namespace and every namespace wired to it: what `check --ns` reads, so
        that findings about both ends (an MTU mismatch across a veth) are made and shown."""
        from netdiag.collect import collect_snapshot
        from netdiag.commands.check_scope import wired

        ensure_alive(ref)
        refs = wired([r for r in self.discover() if r.id != ref.id] + [ref], [ref],
                     timeout=self.timeout)
        snapshot = collect_snapshot(refs, timeout=self.timeout)
        if snapshot.namespace(ref.id) is None:
            ensure_alive(ref)
            raise CollectError(_gap_text(snapshot, ref) or f"{ref.display}: could not be read")
        return snapshot


@dataclass
class OfflineSource:
    """A saved snapshot: everything is known up front and nothing changes."""

    snapshot: Snapshot
    check: Checker = run_checks
    offline: bool = True

    def discover(self) -> list[NamespaceRef]:
        return [ns.ref for ns in self.snapshot.namespaces]

    def resolve(self, reference: str) -> NamespaceRef:
        return netns.resolve(reference, self.discover())

    def collect_all(self, refs: Sequence[NamespaceRef],
                    cancelled: Callable[[], bool] = lambda: False) -> Snapshot | None:
        return self.snapshot

    def collect(self, ref: NamespaceRef) -> Snapshot:
        if self.snapshot.namespace(ref.id) is None:
            raise NotFound(f"{ref.display} is not in the snapshot")
        return self.snapshot


Source = LiveSource | OfflineSource


def ensure_alive(ref: NamespaceRef) -> None:
    """Raise NamespaceGone when `ref.path` no longer leads to the namespace it named."""
    if netns.inode_of(ref.path) != ref.id:
        raise NamespaceGone(f"namespace {ref.display} is gone ({ref.path} now names another)")


def _gap_text(snapshot: Snapshot, ref: NamespaceRef) -> str:
    for gap in snapshot.gaps:
        if gap.namespace == ref.id and gap.collector == "namespace":
            return gap.message
    return ""


def apply_repair(repair: Repair, snapshot: Snapshot) -> tuple[bool, list[str]]:
    """Apply `repair` with netdiag's repair executor, in the namespaces of `snapshot` (the
    attached one and those wired to it); returns (all applied, one line per step)."""
    from netdiag.repair.executor import allowed_paths, apply_steps, describe

    if repair.safety is Safety.MANUAL:
        raise UsageError("this repair is manual: carry out its steps by hand")
    steps = [step for step in repair.steps if not isinstance(step, ManualStep)]
    paths = allowed_paths(snapshot, {step.namespace for step in steps})
    results = apply_steps(steps, paths)
    lines = [("applied: " if r.applied else "NOT applied: ") + describe(r.step, snapshot)
             + (f" ({r.message})" if r.message else "") for r in results]
    lines += [f"not tried: {describe(step, snapshot)}" for step in steps[len(results):]]
    return all(r.applied for r in results) and len(results) == len(steps), lines


def export(snapshot: Snapshot, path: str) -> Path:
    target = Path(path).expanduser()
    try:
        save(snapshot, target)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    return target
