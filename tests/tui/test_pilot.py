"""Pilot tests of the TUI on the fixture snapshot (offline): picking, tabs, filters, findings
and their evidence, help, export, and what offline mode refuses to do."""

from __future__ import annotations

from textual.widgets import DataTable

from netdiag.model.serialize import load
from netdiag.tui.app import NetdiagApp
from netdiag.tui.screens.help import HelpScreen, key_name
from netdiag.tui.screens.namespace import NamespaceScreen
from netdiag.tui.screens.picker import PickerScreen
from netdiag.tui.widgets.findings import FindingsPane
from netdiag.tui.widgets.state_table import MARK, StateTable
from tests.tui.conftest import HOST, WEB, run_async, settle

SIZE = (80, 24)


def cells(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def state_table(app, tab_id: str) -> StateTable:
    return app.screen.query_one(f"#table-{tab_id}", StateTable)


@run_async
async def test_picker_search_finds_networks_and_addresses(offline_app):
    """The placeholder promises networks and addresses: both find their namespaces."""
    app = offline_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#namespaces", DataTable)
        await pilot.press("slash", *"backend", "enter")
        await settle(pilot)
        assert [row[0] for row in cells(table)] == ["db"]  # a Docker network
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"192.168.50.10", "enter")
        await settle(pilot)
        assert [row[0] for row in cells(table)] == ["host"]  # an address of the host


@run_async
async def test_picker_search_then_attach(offline_app):
    app = offline_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#namespaces", DataTable)
        assert [row[0] for row in cells(table)] == ["host", "web", "db", "demo/h1"]
        assert [row[1] for row in cells(table)] == ["2", "0", "2", "0"]
        await pilot.press("slash", *"postgres", "enter")
        await settle(pilot)
        assert [row[0] for row in cells(table)] == ["db"]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NamespaceScreen) and app.screen.ref.container == "db"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, PickerScreen)


@run_async
async def test_tabs_and_filter(offline_app):
    app = offline_app(attach=HOST)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        assert app.screen.query_one("#tabs").active == "routes"
        await pilot.press("right_square_bracket")
        assert app.screen.query_one("#tabs").active == "neighbours"
        await pilot.press("1", "slash", *"veth br", "enter")
        await settle(pilot)
        links = state_table(app, "links")
        assert [row[1] for row in cells(links.table)] == ["veth1a2b3c4", "veth6f5e4d3"]
        await pilot.press("slash", "escape")
        await settle(pilot)
        assert links.table.row_count == 7 and links.table.has_focus


@run_async
async def test_selecting_a_finding_marks_its_evidence(offline_app):
    app = offline_app(attach=HOST)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = app.screen.query_one(FindingsPane)
        assert [f.code for f in pane.findings] == ["ND101", "ND201"]  # db's own one is not here
        await pilot.press("f", "down")
        await settle(pilot)
        assert pane.current.code == "ND201"
        assert app.screen.query_one("#tabs").active == "links"
        marked = [row[1] for row in cells(state_table(app, "links").table) if row[0] == MARK]
        assert marked == ["br-frontend", "veth6f5e4d3"]
        await pilot.press("up")
        await settle(pilot)
        assert app.screen.query_one("#tabs").active == "routes"
        marked = [row[2] for row in cells(state_table(app, "routes").table) if row[0] == MARK]
        assert marked == ["10.10.0.0/16", "10.10.0.0/24"]
        assert not any(row[0] == MARK for row in cells(state_table(app, "links").table))


@run_async
async def test_findings_of_a_related_namespace(offline_app):
    """db is the far end of the MTU mismatch: that finding shows there too, with db's eth0."""
    app = offline_app(attach=4026532302)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = app.screen.query_one(FindingsPane)
        assert sorted(f.code for f in pane.findings) == ["ND201", "ND401"]
        pane.table.focus()
        pane.table.move_cursor(row=[f.code for f in pane.findings].index("ND201"))
        await settle(pilot)
        marked = [row[1] for row in cells(state_table(app, "links").table) if row[0] == MARK]
        assert marked == ["eth0"]


@run_async
async def test_help_lists_every_binding(offline_app):
    app = offline_app(attach=HOST)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(str(s.render()) for s in app.screen.query("Static"))
        for screen in (NetdiagApp, PickerScreen, NamespaceScreen):
            for binding in screen.BINDINGS:
                assert f"{key_name(binding.key):8} {binding.description}" in text
        await pilot.press("escape")
        assert isinstance(app.screen, NamespaceScreen)


@run_async
async def test_export_writes_a_snapshot_that_loads_back(offline_app, host_snapshot, tmp_path):
    app = offline_app(attach=WEB)
    target = tmp_path / "web.json"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        app.screen.query_one("#prompt").value = str(target)
        await pilot.press("enter")
        await settle(pilot)
    assert load(target) == host_snapshot


@run_async
async def test_offline_refuses_repair_probe_and_shell(offline_app):
    app = offline_app(attach=HOST)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f", "down", "enter")  # enter on a finding opens its plan
        await settle(pilot)
        assert type(app.screen).__name__ == "RepairDialog" and not app.screen.can_apply
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(app.screen, NamespaceScreen)
        assert not app.screen.query_one("#probes").display  # nothing was applied or logged
        # Probe and shell are not offered at all: not in the footer, and their keys do nothing.
        assert app.screen.check_action("probe", ()) is False
        assert app.screen.check_action("shell", ()) is False
        assert app.screen.check_action("repair", ()) is False
        assert app.screen.check_action("plan", ()) is True  # a repair's plan, not applied
        footer = " ".join(b.binding.description for b in app.screen.active_bindings.values()
                          if b.binding.show)
        assert "Probe" not in footer and "Shell" not in footer and "Repair" not in footer
        assert "Plan" in footer, footer
        await pilot.press("p", "s")
        await settle(pilot)
        assert isinstance(app.screen, NamespaceScreen)
        assert list(app._notifications) == []


@run_async
async def test_the_docker_tab_and_a_finding_that_names_dockers_view():
    """`d` opens the Docker tab; a finding whose evidence quotes Docker marks that row."""
    from netdiag.tui.source import OfflineSource, run_checks
    from tests.fixtures.scenarios import docker_host

    d = docker_host()
    d.b.update_link(d.host, "br-web", admin_up=False, oper_state="down")
    snapshot = d.build()
    app = NetdiagApp(OfflineSource(snapshot, check=run_checks),
                     attach_to=snapshot.namespace(d.host).ref)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        assert app.screen.query_one("#tabs").active == "docker"
        rows = cells(state_table(app, "docker").table)
        assert [row[1:3] for row in rows[:2]] == [["engine", "test"], ["network", "bridge"]]
        pane = app.screen.query_one(FindingsPane)
        pane.table.focus()
        pane.table.move_cursor(row=[f.rule for f in pane.findings].index("docker-bridge-broken"))
        await settle(pilot)
        marked = [row[2] for row in cells(state_table(app, "docker").table) if row[0] == MARK]
        assert "web" in marked


@run_async
async def test_the_path_view_traces_a_flow_and_marks_the_rule_that_stops_it():
    """`t` asks for a destination; the trace goes to the panel and the firewall rule that
    drops the flow is marked in the Firewall tab (offline too: nothing is sent)."""
    from netdiag.tui.source import OfflineSource, run_checks
    from tests.fixtures.scenarios import docker_host

    async def trace(snapshot, destination: str) -> tuple[str, str, list[list[str]]]:
        """The path panel's text, the active tab and the marked firewall rows after `t`."""
        app = NetdiagApp(OfflineSource(snapshot, check=run_checks),
                         attach_to=snapshot.namespace(d.host).ref)
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(pilot)
            await pilot.press("t", *destination, "enter")
            await settle(pilot)
            text = "\n".join(str(line.text) for line in app.screen.query_one("#probes").lines)
            marked = [row for row in cells(state_table(app, "firewall").table)
                      if row[0] == MARK]
            return text, app.screen.query_one("#tabs").active, marked

    d = docker_host()
    text, _, _ = await trace(d.build(), "192.168.1.10:8080")
    assert "path to 192.168.1.10:8080" in text and "=> DELIVERED" in text
    d.b.iptables(d.host, "filter", "-A OUTPUT -p tcp --dport 80 -j DROP")
    text, tab, marked = await trace(d.build(), "172.18.0.2:80")
    assert "=> DENIED" in text and tab == "firewall"
    assert [row[3:5] for row in marked] == [["OUTPUT", "1"]]


@run_async
async def test_ctrl_s_saves_the_screenshot_where_it_says_without_a_downloads_folder(
        offline_app, tmp_path, monkeypatch):
    """Issue 31: "Failed to save screenshot" for root on a server (no ~/Downloads): it goes
    to the current folder, and the notification says where."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no Downloads there
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    app = offline_app(attach=HOST)
    said: list[tuple[str, str]] = []
    app.notify = lambda message, severity="information", **_: said.append((message, severity))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
    (svg,) = tmp_path.glob("*.svg")
    assert said == [(f"Saved the screenshot as {svg}", "information")], said
    assert svg.read_text().startswith("<svg")
