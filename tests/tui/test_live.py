"""The TUI against real namespaces (netns_factory): picker → attach → tabs → filter → finding
→ repair → the finding is gone; live refresh on netlink events; a namespace that vanishes;
probes from the attached namespace."""

from __future__ import annotations

import time

import pytest
from textual.widgets import DataTable, RichLog

from netdiag.tui.app import NetdiagApp
from netdiag.tui.screens.dialogs import RepairDialog
from netdiag.tui.screens.namespace import NamespaceScreen
from netdiag.tui.widgets.findings import FindingsPane
from netdiag.tui.widgets.state_table import StateTable
from tests.conftest import TEST_PREFIX, sh
from tests.tui.conftest import ScopedSource, run_async, settle, until

pytestmark = pytest.mark.integration
SIZE = (80, 24)


def _source(factory) -> ScopedSource:
    return ScopedSource(f"{TEST_PREFIX}{factory.tag}-")


def _veth_pair(a: str, b: str, mtu_a: int = 1500, mtu_b: int = 1500) -> None:
    sh(f"ip -n {a} link add va mtu {mtu_a} type veth peer name vb netns {b}")
    sh(f"ip -n {b} link set vb mtu {mtu_b}")
    sh(f"ip -n {a} addr add 10.99.0.1/24 dev va && ip -n {a} link set va up")
    sh(f"ip -n {b} addr add 10.99.0.2/24 dev vb && ip -n {b} link set vb up")
    # The kernel reports carrier a moment after `up` (linkwatch): wait, so tests start settled.
    deadline = time.monotonic() + 5
    while not all("state UP" in sh(f"ip -n {n} link show {d}") for n, d in ((a, "va"), (b, "vb"))):
        assert time.monotonic() < deadline, "veth pair did not come up"
        time.sleep(0.05)


def _rows(app, tab_id: str) -> list[tuple[str, ...]]:
    return [row.cells for row in app.screen.query_one(f"#table-{tab_id}", StateTable).rows]


def _shown(app, tab_id: str) -> list[list[str]]:
    table = app.screen.query_one(f"#table-{tab_id}", StateTable).table
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def _attached(app) -> bool:
    return isinstance(app.screen, NamespaceScreen) and app.screen.snapshot is not None


def _mtu_findings(app) -> list:
    return [f for f in app.screen.query_one(FindingsPane).findings if f.rule == "mtu-mismatch"]


@run_async
async def test_pick_attach_filter_and_repair_an_mtu_mismatch(netns_factory):
    """End to end with the real check engine: the mismatch is reported in b (the larger end)
    and involves a, so it shows when attached to a; its repair lowers vb to 1400."""
    a, b = netns_factory("a"), netns_factory("b")
    _veth_pair(a, b, mtu_a=1400, mtu_b=1500)
    app = NetdiagApp(_source(netns_factory))
    async with app.run_test(size=SIZE) as pilot:
        picker = app.screen.query_one("#namespaces", DataTable)
        await until(pilot, lambda: picker.row_count == 2)
        await until(pilot, lambda: app.screen.counts is not None)
        assert app.screen.counts[source_id(app, a)] >= 1
        await pilot.press("slash", *a[-6:], "enter", "enter")  # search for a, attach to it
        await until(pilot, lambda: _attached(app))
        assert app.screen.ref.name == a
        assert ("va", "veth", "1400", "UP/up", f"vb@{b}", "") in _rows(app, "links")

        await pilot.press("2")  # Addresses tab, filtered to the veth
        await pilot.press("slash", *"10.99", "enter")
        assert [row[2] for row in _shown(app, "addresses")] == ["10.99.0.1/24"]

        await until(pilot, lambda: len(_mtu_findings(app)) == 1)
        pane = app.screen.query_one(FindingsPane)
        await pilot.press("f", *["down"] * pane.findings.index(_mtu_findings(app)[0]))
        assert pane.current.rule == "mtu-mismatch"
        await until(pilot, lambda: app.screen.query_one("#tabs").active == "links")
        assert [row[1] for row in _shown(app, "links") if row[0] == "»"] == ["va"]

        await pilot.press("r")
        assert isinstance(app.screen, RepairDialog) and app.screen.can_apply
        await pilot.press("y")
        await until(pilot, lambda: not _mtu_findings(app))  # re-read after the repair: fixed
    assert "mtu 1400" in sh(f"ip -n {b} link show vb")


def source_id(app, name: str) -> int:
    return next(ref.id for ref in app.screen.refs if ref.name == name)


def _attached_app(factory, name: str) -> NetdiagApp:
    """The app attached to `name` directly (as `--ns`), with the timer out of the way."""
    source = _source(factory)
    return NetdiagApp(source, attach_to=source.resolve(name), refresh_seconds=60)


@run_async
async def test_an_added_address_appears_within_2_seconds(netns_factory):
    a = netns_factory("a")
    app = _attached_app(netns_factory, a)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: _attached(app))
        sh(f"ip -n {a} addr add 10.77.0.1/24 dev lo")
        await until(pilot, lambda: any(row[1] == "10.77.0.1/24" for row in _rows(app, "addresses")),
                    timeout=2.0)


@run_async
async def test_settle_waits_for_the_read_not_for_the_watch(netns_factory):
    """The tests' settle returns once the attached namespace is read, its netlink watch still
    running (it waited for every worker, the watch too, and never returned)."""
    a = netns_factory("a")
    app = _attached_app(netns_factory, a)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert _attached(app) and not app.screen._collecting
        assert [w.is_running for w in app.workers if w.group == "watch"] == [True]


@run_async
async def test_a_namespace_that_disappears_is_shown_as_gone(netns_factory):
    a = netns_factory("a")
    app = _attached_app(netns_factory, a)
    said: list[str] = []
    app.notify = lambda message, **_: said.append(message)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: _attached(app))
        sh(f"ip netns del {a}")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.screen.gone)
        assert "GONE" in str(app.screen.query_one("#ns-title").render())
        assert any(row[0] == "lo" for row in _rows(app, "links"))  # the last state stays
        notice = " ".join(str(app.screen.query_one("#notice").render()).split())
        assert notice.startswith(f"{a} is gone: its network namespace no longer exists "
                                 f"(namespace {a} was deleted (ip netns del)). Below is its "
                                 "last state"), notice
        await pilot.press("p")  # and actions on it are refused, not crashed on
        await until(pilot, lambda: "probes need a live namespace" in said)
        assert isinstance(app.screen, NamespaceScreen)


@run_async
async def test_probes_from_the_attached_namespace(netns_factory):
    a, b = netns_factory("a"), netns_factory("b")
    _veth_pair(a, b, mtu_a=1400)  # (a veth receives a few bytes over its MTU: limit a's end)
    app = _attached_app(netns_factory, a)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: _attached(app))
        panel = app.screen.query_one("#probes", RichLog)

        def text() -> str:
            return "\n".join(line.text for line in panel.lines)

        for line, expected in (("ping 10.99.0.2", " 0% packet loss"),
                               ("tcp 10.99.0.2:81", "tcp 10.99.0.2:81: closed (refused)"),
                               ("mtu 10.99.0.2", "path MTU to 10.99.0.2: 1400 bytes"),
                               # a name, as the attached namespace resolves it: b's address
                               (f"tcp {b}:82", "tcp 10.99.0.2:82: closed (refused)")):
            await pilot.press("p")
            await until(pilot, lambda: bool(app.screen.query("#prompt")))
            hint = app.screen.query_one("#prompt").placeholder
            assert hint.startswith("e.g. ") and "tcp " in hint, hint  # real examples
            app.screen.query_one("#prompt").value = line
            await pilot.press("enter")
            try:
                await until(pilot, lambda expected=expected: expected in text(), timeout=20)
            except AssertionError:
                raise AssertionError(f"{expected!r} not in the probe panel:\n{text()}") from None


@run_async
async def test_browsing_changes_nothing(netns_factory):
    """Until a repair is confirmed the TUI only reads: full snapshots before and after a
    session of picking, attaching, switching tabs and refreshing are equal, and no netnsid
    was assigned by asking which namespaces are wired together."""
    from netdiag.collect import collect_snapshot

    a, b, c = netns_factory("a"), netns_factory("b"), netns_factory("c")
    for name in (a, b):  # IPv6 link-local addresses would appear on their own a second later
        sh(f"ip netns exec {name} sysctl -qw net.ipv6.conf.default.disable_ipv6=1")
    _veth_pair(a, b, mtu_a=1400)
    source = _source(netns_factory)
    refs = source.discover()

    def state():
        snapshot = collect_snapshot(refs)
        return (snapshot.namespaces, [sh(f"ip -n {n} netns list-id") for n in (a, b, c)])

    before = state()
    app = NetdiagApp(source)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: getattr(app.screen, "counts", None) is not None)
        await pilot.press("enter")
        await until(pilot, lambda: _attached(app))
        await pilot.press(*"1234567890", "ctrl+r", "f", "escape")
        await until(pilot, lambda: not isinstance(app.screen, NamespaceScreen))  # the picker
        await settle(pilot)  # every worker the session started (the refresh too) has finished
    assert state() == before


@run_async
async def test_picker_refresh_finds_a_new_namespace(netns_factory):
    netns_factory("a")
    app = NetdiagApp(_source(netns_factory))
    async with app.run_test(size=SIZE) as pilot:
        picker = app.screen.query_one("#namespaces", DataTable)
        await until(pilot, lambda: picker.row_count == 1)
        netns_factory("b")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: picker.row_count == 2)


@run_async
async def test_picker_counts_equal_check_all(netns_factory):
    """One collection orchestrator: the picker counts, per namespace, the findings of
    `check --all` that involve it (its own, or naming it as related)."""
    import json
    import subprocess
    import sys

    a, b, c = netns_factory("a"), netns_factory("b"), netns_factory("c")
    _veth_pair(a, b, mtu_a=1400, mtu_b=1500)
    sh(f"ip -n {c} link add vc mtu 1500 type veth peer name vd mtu 9000")
    sh(f"ip -n {c} link set vc up && ip -n {c} link set vd up")
    done = subprocess.run([sys.executable, "-m", "netdiag", "check", "--all", "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    expected: dict[int, int] = {}
    for finding in json.loads(done.stdout)["findings"]:
        for ns_id in {finding["namespace"]["id"], *(r["id"] for r in finding["related"])}:
            expected[ns_id] = expected.get(ns_id, 0) + 1
    app = NetdiagApp(_source(netns_factory))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.counts is not None, timeout=30)
        ours = {source_id(app, n) for n in (a, b, c)}
        assert {i: app.screen.counts.get(i, 0) for i in ours} == \
            {i: expected.get(i, 0) for i in ours}
        assert sum(app.screen.counts.get(i, 0) for i in ours) >= 2
