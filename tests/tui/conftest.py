"""Fixtures for the TUI tests: the fixture snapshot, hand-made findings about it, and helpers
to drive the app until its workers are done."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import Repair, Safety, SetMtu
from netdiag.model import Snapshot
from netdiag.model.serialize import load
from netdiag.tui.app import NetdiagApp
from netdiag.tui.source import LiveSource, OfflineSource

FIXTURE = Path(__file__).parent.parent / "fixtures" / "tui_host.json"
HOST, WEB, DB = 4026531840, 4026532301, 4026532302


def fixture_findings(snapshot: Snapshot, focus: frozenset[int] = frozenset()
                     ) -> tuple[Finding, ...]:
    """Findings as rules would make them for the fixture host (independent of the rule set),
    those that involve `focus` when it is given."""
    found = _fixture_findings(snapshot)
    return tuple(f for f in found if not focus or not focus.isdisjoint(f.involved))


def _fixture_findings(snapshot: Snapshot) -> tuple[Finding, ...]:
    host, db = snapshot.namespace(HOST).ref, snapshot.namespace(DB).ref
    mtu = Finding(
        code="ND201", rule="mtu-mismatch", severity=Severity.WARNING, namespace=host,
        subject="veth6f5e4d3", message="veth6f5e4d3 has MTU 1450 but br-frontend has 1500",
        evidence=(Evidence("host veth6f5e4d3 mtu 1450", HOST, "link", "veth6f5e4d3"),
                  Evidence("host br-frontend mtu 1500", HOST, "link", "br-frontend"),
                  Evidence("db eth0 mtu 1450", DB, "link", "eth0")),
        repair=Repair("set MTU 1500 on both veth ends", Safety.SAFE,
                      (SetMtu(HOST, "veth6f5e4d3", 1500), SetMtu(DB, "eth0", 1500))),
        related=(DB,))
    overlap = Finding(
        code="ND101", rule="overlapping-subnets", severity=Severity.ERROR, namespace=host,
        subject="10.10.0.0/24", message="br-frontend 10.10.0.0/24 shadows 10.10.0.0/16 via eth0",
        evidence=(Evidence("10.10.0.0/24 dev br-frontend", HOST, "route", "10.10.0.0/24"),
                  Evidence("10.10.0.0/16 via 192.168.50.254", HOST, "route", "10.10.0.0/16")),
        repair=Repair("move the bridge subnet", Safety.MANUAL))
    route = Finding(
        code="ND401", rule="missing-default-route", severity=Severity.WARNING, namespace=db,
        subject="db", message="db has eth0 but no default route",
        evidence=(Evidence("routes: 10.10.0.0/24 dev eth0", DB, "route", "10.10.0.0/24"),))
    return (mtu, overlap, route)


@pytest.fixture
def host_snapshot() -> Snapshot:
    # not called `snapshot`: that name belongs to syrupy, which snap_compare uses
    return load(FIXTURE)


@pytest.fixture
def offline_app(host_snapshot):
    def make(attach: int | None = None) -> NetdiagApp:
        source = OfflineSource(host_snapshot, check=fixture_findings)
        ref = host_snapshot.namespace(attach).ref if attach else None
        return NetdiagApp(source, attach_to=ref)
    return make


# Workers that end only with their screen: a live namespace screen's netlink watch.
ENDLESS_WORKERS = frozenset({"watch"})


async def settle(pilot, timeout: float = 60.0) -> None:
    """Wait until every worker that ends on its own has finished (the reads, checks, paths
    and probes; not a live screen's netlink watch) and the screen has caught up. Fails
    naming the workers still running after `timeout` seconds (a read on a loaded machine
    takes seconds)."""
    from textual.worker import WorkerCancelled

    for _ in range(3):
        await pilot.pause()
        running = [w for w in pilot.app.workers
                   if w.group not in ENDLESS_WORKERS and not w.is_finished]
        if not running:
            continue
        # Not workers.wait_for_complete: given no workers it waits for all, the watch too,
        # and it swallows the cancellation a timeout would end it with.
        waits = [asyncio.ensure_future(w.wait()) for w in running]
        done, late = await asyncio.wait(waits, timeout=timeout)
        for wait in late:  # not cancelled: that would cancel the worker's task, not its thread
            wait.add_done_callback(lambda wait: wait.cancelled() or wait.exception())
        if late:
            raise AssertionError(f"still running after {timeout:g} s: " + ", ".join(
                w.name or w.group for w, wait in zip(running, waits) if wait in late))
        for wait in done:
            try:
                wait.result()  # a worker's failure fails the test
            except WorkerCancelled:  # superseded (exclusive) or ended with its screen
                pass
    await pilot.pause()


def run_async(test):
    """Run an async test function with asyncio.run (no pytest async plugin is installed)."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))
    return wrapper


async def until(pilot, condition, timeout: float = 10.0) -> float:
    """Poll `condition` while the app runs; returns the seconds it took, fails at `timeout`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > timeout:
            raise AssertionError(f"not true within {timeout:g} s: {condition.__doc__ or condition}")
        await pilot.pause(0.05)
    return loop.time() - start


class ScopedSource(LiveSource):
    """The live kernel, but only the namespaces this test made (the machine is shared), and
    none of the Docker engines (`--docker none`): the session's, which other tests keep busy,
    would be read at every refresh, for namespaces no test here looks at."""

    def __init__(self, prefix: str, **kwargs):
        super().__init__(**{"engines": ("none",), **kwargs})
        self.prefix = prefix

    def namespaces(self, intent):
        return [ref for ref in super().namespaces(intent) if ref.name.startswith(self.prefix)]



async def answer_prompt(pilot, key: str, text: str) -> None:
    """Press `key` (t: trace a path, p: probe...), wait until its prompt is the screen, then
    type `text` and enter: keys typed before the prompt is mounted go to the screen below
    it (a digit there chooses a tab)."""
    from netdiag.tui.screens.dialogs import PromptDialog

    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, PromptDialog))
    await pilot.press(*text, "enter")


def attached(snapshot, ns_id: int):
    """The TUI offline on `snapshot`, attached to namespace `ns_id`, its checks as `check`'s."""
    from netdiag.tui.app import NetdiagApp
    from netdiag.tui.source import OfflineSource, run_checks

    return NetdiagApp(OfflineSource(snapshot, check=run_checks),
                      attach_to=snapshot.namespace(ns_id).ref)
