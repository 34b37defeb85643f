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
from dataclasses import dataclass
from pathlib import Path

from netdiag import netns
from netdiag.collect import discovery, docker, namespace_refs
from netdiag.errors import (
    CollectError,
    NamespaceGone,
    NetdiagError,
    NotFound,
    PermissionDenied,
    UsageError,
)
from netdiag.findings.finding import Finding
from netdiag.findings.repair import ManualStep, Repair
from netdiag.findings.rule import CheckConfig
from netdiag.model import NamespaceRef, Snapshot
from netdiag.model.serialize import save

CHECK_SECONDS = 10.0  # rules still running then are abandoned (the engine reports them)

Checker = Callable[[Snapshot, frozenset[int]], tuple[Finding, ...]]


def run_checks(snapshot: Snapshot, focus: frozenset[int] = frozenset()) -> tuple[Finding, ...]:
    """What `check --all` (no focus) or `check --ns` (focus) reports for `snapshot`."""
    from netdiag.checks import engine

    return engine.run(snapshot, CheckConfig(), focus=focus,
                      deadline=time.monotonic() + CHECK_SECONDS).findings


@dataclass
class LiveSource:
    """The running kernel, read as the CLI reads it (collect_snapshot over every namespace)."""

    check: Checker = run_checks
    offline: bool = False
    timeout: float = 10.0
    engines: tuple[str, ...] = ()  # the Docker engines read, as --docker names them: every one

    def discover(self) -> list[NamespaceRef]:
        return self.namespaces(docker.read(self.engines))

    def namespaces(self, intent: docker.Intent) -> list[NamespaceRef]:
        """The namespaces there are, Docker's labelled from the engines' `intent`."""
        return discovery.discover(engines=intent.engines)

    def resolve(self, reference: str) -> NamespaceRef:
        return namespace_refs.resolve(reference)

    def collect_all(self, refs: Sequence[NamespaceRef],
                    cancelled: Callable[[], bool] = lambda: False) -> Snapshot | None:
        """Every namespace; None when `cancelled()` became true on the way (quitting never
        waits for a whole host)."""
        from netdiag.collect import Cancelled, collect_snapshot

        try:
            return collect_snapshot(refs, timeout=self.timeout, cancelled=cancelled,
                                    intent=docker.read(self.engines))
        except Cancelled:
            return None

    def collect(self, ref: NamespaceRef) -> Snapshot:
        """Everything, as `check --ns` reads it: findings about the attached namespace may
        come from comparing it with any other (its overlay's other hosts, a veth's far end)."""
        from netdiag.collect import collect_snapshot

        ensure_alive(ref)
        intent = docker.read(self.engines)  # once: for the labels and for the snapshot
        refs = self.namespaces(intent)
        if all(r.id != ref.id for r in refs):
            refs.append(ref)
        snapshot = collect_snapshot(refs, timeout=self.timeout, intent=intent)
        if snapshot.namespace(ref.id) is None:
            ensure_alive(ref)
            raise _unread(snapshot, ref)
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
        return namespace_refs.resolve(reference, self.discover())

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


def _unread(snapshot: Snapshot, ref: NamespaceRef) -> NetdiagError:
    """Why `ref` could not be read, as its namespace gap says: a PermissionDenied naming the
    missing capability when that is why."""
    for gap in snapshot.gaps:
        if gap.namespace == ref.id and gap.collector == "namespace":
            if gap.needs:
                return PermissionDenied(gap.message, gap.needs)
            return CollectError(gap.message)
    return CollectError(f"{ref.display}: could not be read")


def apply_repair(repair: Repair, snapshot: Snapshot, attached: int,
                 confirmed_unsafe: bool = False) -> tuple[bool, list[str]]:
    """Apply `repair` through the executor's policy, as `repair --ns ATTACHED` would (the
    user confirmed it, unsafe ones included, in the dialog); (all applied, one line a step)."""
    from netdiag.repair.executor import Policy, describe, execute

    policy = Policy.for_namespaces(snapshot, {attached}, unsafe=confirmed_unsafe)
    results = execute(repair, snapshot, policy)
    lines = [("applied: " if r.applied else "NOT applied: ") + describe(r.step, snapshot)
             + (f" ({r.message})" if r.message else "") for r in results]
    tried = {id(r.step) for r in results}
    steps = [step for step in repair.steps if not isinstance(step, ManualStep)]
    lines += [f"not tried: {describe(step, snapshot)}" for step in steps if id(step) not in tried]
    return bool(results) and all(r.applied for r in results) and len(results) == len(steps), lines


def export(snapshot: Snapshot, path: str) -> Path:
    target = Path(path).expanduser()
    try:
        save(snapshot, target)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    return target
