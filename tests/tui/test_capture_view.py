"""The path view on real namespaces: a path stopped by a native nftables rule is marked on
that rule in the Firewall tab, `w` captures the flow along the path (`netdiag capture`'s
code) and says per interface whether the packet was last seen there, beside the model's
verdict, and leaving the namespace ends a capture still running.

The lab — a ──veth── b, b's `inet filter` input chain dropping pings — has fixed names
(ndt-tuicap-a, -b): the SVG snapshots show them.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, RichLog

from netdiag.tui.app import NetdiagApp
from netdiag.tui.screens.namespace import NamespaceScreen
from tests.conftest import TEST_PREFIX, NetnsFactory, sh
from tests.tui.conftest import ScopedSource, answer_prompt, run_async, settle, until
from tests.tui.test_live import _veth_pair
from tests.tui.test_snapshots import SIZE, WIDE

pytestmark = pytest.mark.integration
TAG = "tuicap"
NFT = """table inet filter {
    chain input {
        type filter hook input priority 0; policy accept;
        icmp type echo-request counter drop comment "no pings"
    }
}
"""
# A read of the lab takes well under a second on an idle machine; on a loaded one (2 cores,
# other suites' engines busy), over ten.
READ_SECONDS = 60
FLOW = "10.99.0.2"  # icmp from a to b: one echo request, stopped at b's input


@pytest.fixture(scope="module")
def lab():
    factory = NetnsFactory()
    factory.tag = TAG
    resolv = None
    try:
        a, b = factory("a"), factory("b")
        for name in (a, b):  # no IPv6 link-local addresses appearing while the app runs
            sh(f"ip netns exec {name} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
               "net.ipv6.conf.default.disable_ipv6=1")
        resolv = Path("/etc/netns") / a  # the header shows a's DNS: the same on any machine
        resolv.mkdir(parents=True)
        (resolv / "resolv.conf").write_text("nameserver 10.99.0.2\n")
        _veth_pair(a, b)
        sh(f"ip netns exec {b} nft -f - <<'EOF'\n{NFT}EOF")
        yield a, b
    finally:
        if resolv is not None:
            shutil.rmtree(resolv, ignore_errors=True)
        factory.cleanup()


def _app(a: str) -> NetdiagApp:
    source = ScopedSource(f"{TEST_PREFIX}{TAG}-")
    ref = next(ref for ref in source.discover() if ref.name == a)
    return NetdiagApp(source, attach_to=ref, refresh_seconds=60)


def _panel(app) -> str:
    return "\n".join(line.text for line in app.screen.query_one("#probes", RichLog).lines)


def _capturing() -> bool:
    return any(t.name == "netdiag-capture" and t.is_alive() for t in threading.enumerate())


async def _quiet(pilot) -> None:
    """As test_snapshots' _steady, with a read's time on a loaded machine."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await settle(pilot, timeout=READ_SECONDS)


async def _trace(pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, NamespaceScreen)
                and app.screen.snapshot is not None, timeout=READ_SECONDS)
    await until(pilot, lambda: not app.screen._collecting, timeout=READ_SECONDS)
    await answer_prompt(pilot, "t", FLOW)
    await until(pilot, lambda: app.screen.traced is not None)


@pytest.mark.parametrize("size", [SIZE, WIDE], ids=["80x24", "160x45"])
def test_capture_along_the_path(snap_compare, lab, size):
    """`w` after a path: the echo request seen leaving a and arriving at b, last at b's
    veth — where the model, which has it dropped by b's nft rule, expects it last."""
    a, b = lab

    async def run_before(pilot) -> None:
        app = pilot.app
        await _trace(pilot)
        assert f"DENIED in {b} at nft inet filter input handle" in _panel(app), _panel(app)
        assert "w: capture it along the path" in _panel(app)
        await pilot.press("w")
        await until(pilot, lambda: "=> the capture" in _panel(app), timeout=20)
        text = _panel(app)
        rows = {line.split()[1]: line.split()[2:] for line in text.splitlines()
                if line.split()[:1] in (["1"], ["2"])}
        assert rows[f"{a}:va"] == ["out", "1", "0"], text
        assert rows[f"{b}:vb"][:3] == ["in", "1", "0"], text
        assert " ".join(rows[f"{b}:vb"][3:]) == "◀ last seen, as the model expects", text
        assert f"last seen: {b}:vb" in text and "probe: fail" in text
        assert "=> the capture agrees with the model" in text
        app.screen.query_one("#table-links DataTable").focus()  # as test_path_result
        await until(pilot, lambda: isinstance(app.focused, DataTable))
        await _quiet(pilot)

    assert snap_compare(_app(lab[0]), terminal_size=size, run_before=run_before)


@run_async
async def test_the_nft_rule_is_marked_and_leaving_ends_a_capture(lab):
    """Where the path stopped (b) has the nft rule that stopped it marked in its Firewall
    tab; a capture waiting for the flow's own traffic (10 s) ends within seconds of the
    user leaving the namespace it was started from."""
    from tests.tui.test_pilot import MARK, cells, state_table

    a, b = lab
    app = _app(a)
    async with app.run_test(size=SIZE) as pilot:
        await _trace(pilot)
        app.screen.action_go_to_stop()
        await until(pilot, lambda: app.screen.ref.name == b and app.screen.snapshot is not None,
                    timeout=READ_SECONDS)
        await until(pilot, lambda: app.screen.query_one("#tabs").active == "firewall")
        handle = sh(f"ip netns exec {b} nft -a list chain inet filter input").split(
            "# handle ")[-1].split()[0]

        def marked() -> list[list[str]]:
            return [row[1:5] for row in cells(state_table(app, "firewall").table)
                    if row[0] == MARK]

        try:
            await until(pilot, lambda: marked() == [["nft/inet", "filter", "input", handle]])
        except AssertionError:
            raise AssertionError(f"marked {marked()}, evidence {app.screen.stop}") from None
        shown = app.screen.snapshot
        await pilot.press("ctrl+r")  # a live re-read keeps it marked
        await until(pilot, lambda: app.screen.snapshot is not shown
                    and not app.screen._collecting, timeout=READ_SECONDS)
        await pilot.pause()
        assert marked() == [["nft/inet", "filter", "input", handle]]

        await pilot.press("escape")  # back to a, where the path was traced
        await until(pilot, lambda: app.screen.ref.name == a)
        palette = {c.title: c.callback for c in app.get_system_commands(app.screen)}
        assert "Capture along the path" in palette
        palette["Capture along the path, waiting for its own traffic"]()
        await until(pilot, _capturing)
        await pilot.press("escape")  # leave a: to the picker
        await until(pilot, lambda: not isinstance(app.screen, NamespaceScreen))
        await until(pilot, lambda: not _capturing(), timeout=5)
