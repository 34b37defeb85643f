"""SVG snapshots of the picker, every tab, the findings pane and the dialogs at 80x24, fed
from the fixture snapshot (offline: no clock, no kernel). Update with --snapshot-update after
checking the new pictures by eye."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from netdiag.tui.rows import TABS
from tests.tui.conftest import HOST, WEB, settle

SIZE = (80, 24)


async def _steady(pilot) -> None:
    await settle(pilot)
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def test_picker(snap_compare, offline_app):
    assert snap_compare(offline_app(), terminal_size=SIZE, run_before=_steady)


def test_picker_search(snap_compare, offline_app):
    async def search(pilot):
        await _steady(pilot)
        await pilot.press("slash", *"front", "enter")
        await _steady(pilot)
    assert snap_compare(offline_app(), terminal_size=SIZE, run_before=search)


@pytest.mark.parametrize("index", range(len(TABS)), ids=[tab.id for tab in TABS])
def test_tab(snap_compare, offline_app, index):
    async def show_tab(pilot):
        await _steady(pilot)
        await pilot.press("1234567890"[index])
        await _steady(pilot)
    assert snap_compare(offline_app(attach=HOST), terminal_size=SIZE, run_before=show_tab)


def test_container_dns_tab(snap_compare, offline_app):
    async def show_dns(pilot):
        await _steady(pilot)
        await pilot.press("8")
        await _steady(pilot)
    assert snap_compare(offline_app(attach=WEB), terminal_size=SIZE, run_before=show_dns)


def test_findings_pane_marks_evidence(snap_compare, offline_app):
    """The second finding (the MTU mismatch) is highlighted: both its links carry »."""
    async def select(pilot):
        await _steady(pilot)
        await pilot.press("f", "down")
        await _steady(pilot)
    assert snap_compare(offline_app(attach=HOST), terminal_size=SIZE, run_before=select)


def test_repair_dialog(snap_compare, offline_app):
    async def open_plan(pilot):
        await _steady(pilot)
        await pilot.press("f", "down", "r")
        await _steady(pilot)
    assert snap_compare(offline_app(attach=HOST), terminal_size=SIZE, run_before=open_plan)


def test_help(snap_compare, offline_app):
    async def open_help(pilot):
        await _steady(pilot)
        await pilot.press("question_mark")
        await _steady(pilot)
    assert snap_compare(offline_app(attach=HOST), terminal_size=SIZE, run_before=open_help)
