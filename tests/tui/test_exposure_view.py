"""Pilot tests of the TUI's exposure view (`x`, or "Show the exposure" in ctrl+p) on fixture
snapshots (offline: computed from the snapshot, nothing is sent): the Docker host with the
ufw shape (INPUT policy DROP, ssh allowed) lists the published port as a bypass first, and
Enter on it marks the DNAT rule and the INPUT policy in the Firewall tab."""

from __future__ import annotations

from netdiag.tui.screens.exposure import ExposureScreen
from netdiag.tui.screens.namespace import NamespaceScreen
from netdiag.tui.widgets.state_table import MARK, StateTable
from tests.fixtures.scenarios import docker_host
from tests.tui.conftest import attached, run_async, settle, until
from tests.tui.test_pilot import cells, choose_in_palette, state_table
from tests.unit.test_exposure_model import ufw_like

SIZE = (120, 30)


def exposure_rows(app) -> list[list[str]]:
    return cells(app.screen.query_one("#table-exposure", StateTable).table)


async def open_view(pilot, key: str = "x") -> list[list[str]]:
    app = pilot.app
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, ExposureScreen)
                and bool(app.screen.evidence))
    await settle(pilot)
    return exposure_rows(app)


@run_async
async def test_the_bypass_comes_first_and_enter_marks_its_rules():
    d = docker_host("modern")
    ufw_like(d)
    snapshot = d.build()
    app = attached(snapshot, d.host)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        rows = await open_view(pilot)
        first = rows[0][1:]
        assert first[:4] == ["bypass", "192.168.1.10", "8080", "tcp"], rows
        assert first[4] == "container web :80" and first[5] == "uplink eth0"
        assert first[6] == "published nat/DOCKER/3, bypasses INPUT: filter/INPUT policy DROP"
        # the socket's risk on its first row; the host's own way to the port bypasses nothing
        assert [row[1] for row in rows if row[5] == "container web :80"][1:] == \
            [""] * (sum(row[5] == "container web :80" for row in rows) - 1)
        assert any(row[6] == "the host" and row[7] == "published nat/DOCKER/3" for row in rows)
        # ssh is meant to be reached: public, after the bypass; loopback-only sockets are out
        risks = [row[1] for row in rows if row[1]]
        assert risks == ["bypass", "public"], risks
        assert next(row for row in rows if row[1] == "public")[5] == "sshd (pid 1) :22"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NamespaceScreen)
        assert app.screen.query_one("#tabs").active == "firewall"
        marked = [row[2:5] for row in cells(state_table(app, "firewall").table)
                  if row[0] == MARK]
        assert marked == [["nat", "DOCKER", "3"], ["filter", "INPUT", ""]], marked


@run_async
async def test_without_an_input_policy_nothing_is_a_bypass_and_esc_returns():
    """The healthy host: the published port is public, no row says bypass; esc comes back
    with nothing marked."""
    d = docker_host("modern")
    snapshot = d.build()
    app = attached(snapshot, d.host)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        rows = await open_view(pilot)
        assert "bypass" not in [row[1] for row in rows]
        published = [row for row in rows if row[7].startswith("published nat/DOCKER/3")
                     and row[6] == "uplink eth0"]
        assert published and published[0][1] == "public"
        assert not any("bypasses INPUT" in row[7] for row in rows)
        status = str(app.screen.query_one("#exposure-status").render())
        assert ", 0 bypassing the host's firewall" in status
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, NamespaceScreen)
        assert not any(row[0] == MARK for row in cells(state_table(app, "firewall").table))


@run_async
async def test_the_palette_opens_the_view_and_a_containers_row_marks_its_socket():
    """From the web container: its socket's ways in (the host's DNAT among them); a row
    with no rule of its own marks the socket in the Sockets tab."""
    d = docker_host("modern")
    snapshot = d.build()
    app = attached(snapshot, d.web)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await choose_in_palette(pilot, "show the exposure")
        await until(pilot, lambda: isinstance(app.screen, ExposureScreen)
                    and bool(app.screen.evidence))
        await settle(pilot)
        rows = exposure_rows(app)
        assert {row[5] for row in rows} == {"container web :80"}
        direct = next(i for i, row in enumerate(rows) if row[7] == "direct")
        app.screen.table.table.move_cursor(row=direct)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NamespaceScreen) and app.screen.ref.id == d.web
        assert app.screen.query_one("#tabs").active == "sockets"
        marked = [row[1:4] for row in cells(state_table(app, "sockets").table)
                  if row[0] == MARK]
        assert marked == [["tcp", "0.0.0.0", "80"]]
