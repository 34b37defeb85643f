"""Pilot tests of the TUI on the fixture snapshot (offline): picking, tabs, filters, findings
and their evidence, help, export, and what offline mode refuses to do."""

from __future__ import annotations

from textual.widgets import DataTable

from netdiag.model.serialize import load
from netdiag.tui.app import NetdiagApp
from netdiag.tui.screens.dialogs import PromptDialog
from netdiag.tui.screens.exposure import ExposureScreen
from netdiag.tui.screens.help import HelpScreen, key_name
from netdiag.tui.screens.namespace import NamespaceScreen
from netdiag.tui.screens.picker import PickerScreen
from netdiag.tui.widgets.findings import FindingsPane
from netdiag.tui.widgets.state_table import MARK, StateTable
from tests.tui.conftest import HOST, WEB, answer_prompt, attached, run_async, settle, until

SIZE = (80, 24)


def cells(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def state_table(app, tab_id: str) -> StateTable:
    return app.screen.query_one(f"#table-{tab_id}", StateTable)


async def choose_in_palette(pilot, words: str) -> None:
    """ctrl+p, type `words`, wait for the palette to offer them first (it searches in the
    background), enter."""
    from textual.command import CommandPalette
    from textual.widgets import OptionList

    app = pilot.app
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette))
    await pilot.press(*words)
    options = app.screen.query_one(OptionList)

    def offered() -> bool:
        return bool(options.option_count) and words.lower() in \
            str(options.get_option_at_index(0).prompt).lower()
    await until(pilot, offered)
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, CommandPalette))
    await settle(pilot)


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
        for screen in (NetdiagApp, PickerScreen, NamespaceScreen, ExposureScreen):
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
    from tests.fixtures.scenarios import docker_host

    d = docker_host()
    d.b.update_link(d.host, "br-web", admin_up=False, oper_state="down")
    snapshot = d.build()
    app = attached(snapshot, d.host)
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
    from tests.fixtures.scenarios import docker_host

    async def trace(snapshot, destination: str) -> tuple[str, str, list[list[str]]]:
        """The path panel's text, the active tab and the marked firewall rows after `t`."""
        app = attached(snapshot, d.host)
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(pilot)
            await answer_prompt(pilot, "t", destination)
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
    text, _, _ = await trace(d.build(), "172.18.0.2:80 --proto tcp")  # as `netdiag path`
    assert "=> DENIED" in text
    text, _, _ = await trace(d.build(), "172.18.0.2:80 udp")  # the one syntax, not another
    assert "write the protocol as `netdiag path` takes it: 172.18.0.2:80 --proto udp" in \
        " ".join(text.split())  # the panel wraps it


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


@run_async
async def test_the_picker_counts_what_check_all_reports_and_the_view_shows_them(host_snapshot):
    """One answer in every view: per namespace, the picker's count is the number of findings
    `check --all` attributes to it (its own, or naming it as related), and attaching shows
    that many first, under that count; the findings about namespaces on its paths that
    `check --ns` adds come after, counted apart. Real rules on the fixture host, whose
    findings relate several namespaces."""
    import json
    import subprocess
    import sys

    from netdiag.tui.source import OfflineSource, run_checks
    from tests.tui.conftest import FIXTURE

    done = subprocess.run([sys.executable, "-m", "netdiag", "check", "--all", "--from",
                           str(FIXTURE), "--format", "json"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode in (0, 1), done.stderr
    reported = json.loads(done.stdout)["findings"]
    assert any(f["related"] for f in reported)  # the case that went wrong
    expected = {state.ref.id: sum(state.ref.id in {f["namespace"]["id"],
                                                   *(r["id"] for r in f["related"])}
                                  for f in reported)
                for state in host_snapshot.namespaces}
    app = NetdiagApp(OfflineSource(host_snapshot, check=run_checks))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        picker = app.screen
        assert picker.counts == expected
        shown = {row[0]: row[1] for row in cells(picker.query_one("#namespaces", DataTable))}
        for state in host_snapshot.namespaces:
            assert shown[state.ref.display] == str(expected[state.ref.id])
            app.attach(state.ref)
            await settle(pilot)
            pane = app.screen.query_one(FindingsPane)
            assert pane.own == expected[state.ref.id], state.ref.display
            assert all(state.ref.id in f.involved for f in pane.findings[:pane.own])
            assert not any(state.ref.id in f.involved for f in pane.findings[pane.own:])
            title = str(app.screen.query_one("#findings-title").render())
            errors = sum(f.severity.value == "error" for f in pane.findings[:pane.own])
            assert title.startswith(f"Findings: {pane.own} ({errors} error" if errors else
                                    f"Findings: {pane.own}" if pane.own else
                                    "Findings: none"), title
            assert "(0 error" not in title, title
            await pilot.press("escape")
            await settle(pilot)


@run_async
async def test_path_verdicts_are_coloured():
    """DENIED (and the hop's NO-ROUTE…) red, DELIVERED green, in the path panel."""
    from tests.fixtures.scenarios import docker_host

    async def verdict_colours(snapshot, destination: str) -> dict[str, set[str]]:
        """The colours of the verdict words in the path panel, by line."""
        app = attached(snapshot, d.host)
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(pilot)
            await answer_prompt(pilot, "t", destination)
            await settle(pilot)
            found = {}
            for strip in app.screen.query_one("#probes").lines:
                line = strip.text.strip()
                if line.startswith(("=>", "forward:")):
                    found[line.split(" in ")[0]] = {
                        seg.style.color.name for seg in strip
                        if seg.style and seg.style.color and seg.text.strip(" :=>")
                        and seg.text.strip(" :=>") in line.split()[1]}
            return found

    d = docker_host()
    assert await verdict_colours(d.build(), "192.168.1.10:8080") == {
        "=> DELIVERED": {"green"}, "forward: delivered": {"green"}}
    d.b.iptables(d.host, "filter", "-A OUTPUT -p tcp --dport 80 -j DROP")
    assert await verdict_colours(d.build(), "172.18.0.2:80") == {
        "=> DENIED": {"red"}, "forward: DENIED": {"red"}}


@run_async
async def test_picker_counts_are_coloured_and_subjects_name_other_namespaces(offline_app):
    """A count takes its namespace's worst severity's colour; attached to db, the MTU
    mismatch found in the host says so in its Subject."""
    app = offline_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#namespaces", DataTable)
        colours = {str(table.get_row_at(i)[0]): table.get_row_at(i)[1].style
                   for i in range(table.row_count)}
        assert colours == {"host": "bold red", "web": "", "db": "yellow", "demo/h1": ""}
        await pilot.press("slash", *"postgres", "enter", "enter")
        await settle(pilot)
        pane = app.screen.query_one(FindingsPane)
        subjects = {f.code: str(pane.table.get_row_at(i)[2])
                    for i, f in enumerate(pane.findings)}
        assert subjects == {"ND201": "host: veth6f5e4d3", "ND401": "db"}
        (column,) = [c for c in pane.table.columns.values() if str(c.label) == "Subject"]
        assert column.width == len("host: veth6f5e4d3")  # whole: 16 cells cut it


@run_async
async def test_the_detail_gets_the_room_when_a_finding_or_a_path_is_read():
    """Reading a finding (f) or a path's result (t) shrinks the state tabs to a few rows and
    gives the rest to the detail; a tab key gives the room back to the tabs."""
    from tests.fixtures.scenarios import docker_host

    d = docker_host()
    d.b.update_link(d.host, "br-web", admin_up=False, oper_state="down")
    d.b.iptables(d.host, "filter", "-A OUTPUT -p tcp --dport 80 -j DROP")
    snapshot = d.build()
    for size in (SIZE, (160, 45)):
        app = attached(snapshot, d.host)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)

            def height(selector: str, app=app) -> int:
                widget = app.screen.query_one(selector)
                return widget.region.height if widget.display else 0

            tabs, evidence = height("#tabs"), height("#evidence")
            await pilot.press("f")
            await settle(pilot)
            assert height("#tabs") <= max(8, size[1] // 3) < tabs
            assert height("#evidence") >= evidence + tabs - height("#tabs") >= 6
            await pilot.press("1")
            await settle(pilot)
            assert (height("#tabs"), height("#evidence")) == (tabs, evidence)
            await answer_prompt(pilot, "t", "172.18.0.2:80")
            await settle(pilot)
            assert height("#tabs") <= max(8, size[1] // 3)
            assert height("#probes") >= 11 and height("#probes") > height("#tabs")
            assert app.screen.query_one("#tabs").active == "firewall"


@run_async
async def test_a_tab_chosen_before_the_stop_is_shown_stays_chosen():
    """`1` pressed between the trace's stop being marked and the screen's refresh: the
    Links tab stays (the stop's deferred focus used to bring the Firewall tab back, as a
    clean-clone CI run showed)."""
    from tests.fixtures.scenarios import docker_host

    d = docker_host()
    d.b.iptables(d.host, "filter", "-A OUTPUT -p tcp --dport 80 -j DROP")
    snapshot = d.build()
    app = attached(snapshot, d.host)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await answer_prompt(pilot, "t", "172.18.0.2:80")
        await settle(pilot)
        screen = app.screen
        assert screen.query_one("#tabs").active == "firewall"
        screen.action_go_to_stop()  # schedules the stop's focus for after the refresh
        screen.action_show_tab(0)   # ... and the key comes first
        await settle(pilot)
        assert screen.query_one("#tabs").active == "links"
        assert screen.focused is state_table(app, "links").table


@run_async
async def test_the_command_palette_has_netdiags_commands():
    """ctrl+p: attach to a namespace by name, trace a path, go to where it stopped, run
    the checks."""
    from netdiag.tui.source import OfflineSource, run_checks
    from tests.fixtures.scenarios import docker_host

    d = docker_host()
    d.b.iptables(d.host, "filter", "-A OUTPUT -p tcp --dport 80 -j DROP")
    snapshot = d.build()
    checked: list[frozenset[int]] = []

    def check(snapshot, focus):
        checked.append(focus)
        return run_checks(snapshot, focus)

    app = NetdiagApp(OfflineSource(snapshot, check=check))
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)

        async def palette(words: str) -> None:
            await choose_in_palette(pilot, words)

        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Run the checks" in titles
        await palette("attach to web")
        assert isinstance(app.screen, NamespaceScreen) and app.screen.ref.container == "web"
        await palette("attach to host")
        assert app.screen.ref.id == d.host and len(app.screen_stack) == 3  # picker below
        assert "Go to where the path stopped" not in \
            [c.title for c in app.get_system_commands(app.screen)]
        await palette("trace a path")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog))
        await pilot.press(*"172.18.0.2:80", "enter")
        await settle(pilot)
        await pilot.press("1")
        await settle(pilot)
        assert app.screen.query_one("#tabs").active == "links"
        await palette("go to where the path stopped")
        assert app.screen.query_one("#tabs").active == "firewall"
        marked = [row[3:5] for row in cells(state_table(app, "firewall").table)
                  if row[0] == MARK]
        assert marked == [["OUTPUT", "1"]]
        before = len(checked)
        await palette("run the checks")
        assert checked[before:] == [frozenset({d.host})]


class VanishedSource:
    """A snapshot whose namespaces are gone by the time one is attached (a container removed
    between the picker's list and the attach)."""

    offline = True

    def __init__(self, snapshot):
        self.snapshot = snapshot

    def discover(self):
        return [state.ref for state in self.snapshot.namespaces]

    def collect_all(self, refs, cancelled=lambda: False):
        return self.snapshot

    def collect(self, ref):
        from netdiag.errors import NamespaceGone

        raise NamespaceGone(f"namespace {ref.display} is gone")

    def check(self, snapshot, focus):
        return ()


@run_async
async def test_empty_tabs_say_why(offline_app):
    """web has no firewall: the tab says so; db's IPVS was not read (no IPVS in the kernel):
    the tab says that; a filter that matches nothing says so too."""
    app = offline_app(attach=WEB)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await settle(pilot)
        firewall = state_table(app, "firewall")
        assert not firewall.table.display
        text = str(firewall.query_one(".placeholder").render())
        assert text.startswith("No firewall rules here: this namespace has no iptables or")
        await pilot.press("1", "slash", *"nosuchlink", "enter")
        await settle(pilot)
        links = state_table(app, "links")
        assert str(links.query_one(".placeholder").render()).startswith(
            "Nothing matches “nosuchlink”")
        assert not links.table.display
    app = offline_app(attach=4026532302)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert str(state_table(app, "ipvs").query_one(".placeholder").render()) == \
            "IPVS not read: kernel has no IPVS"


@run_async
async def test_a_namespace_gone_before_it_was_read_says_so(host_snapshot):
    """No blank page: the message says what happened and what to do."""
    web = host_snapshot.namespace(WEB).ref
    app = NetdiagApp(VanishedSource(host_snapshot), attach_to=web)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.screen.gone
        notice = app.screen.query_one("#notice")
        assert notice.display and notice.region.height >= 10
        assert " ".join(str(notice.render()).split()) == (
            "web is gone: its network namespace no longer exists (container web stopped or "
            "was removed). Nothing of it was read before it went. Esc returns to the picker.")
        assert not app.screen.query_one("#tabs").display
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, PickerScreen)


@run_async
async def test_going_to_where_a_path_stopped_in_another_namespace_attaches_there():
    """From web, a flow leaves the host by eth0 (beyond what netdiag read): "go to where the
    path stopped" attaches to the host with eth0 marked; Esc comes back to web."""
    from tests.fixtures.scenarios import docker_host

    d = docker_host()
    snapshot = d.build()
    app = attached(snapshot, d.web)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await answer_prompt(pilot, "t", "192.168.1.50:9999")
        await settle(pilot)
        assert app.screen.ref.id == d.web and app.screen.stop[0].namespace == d.host
        await choose_in_palette(pilot, "go to where the path stopped")
        assert app.screen.ref.id == d.host
        assert app.screen.query_one("#tabs").active == "links"
        marked = [row[1] for row in cells(state_table(app, "links").table) if row[0] == MARK]
        assert marked == ["eth0"]
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen.ref.id == d.web


def talking_web():
    """A Docker host whose web container has a TCP connection from the host: (snapshot,
    web's namespace id)."""
    from dataclasses import replace

    from netdiag.model import Connection
    from tests.fixtures.scenarios import docker_host

    d = docker_host()
    snapshot = d.build()
    talking = Connection("tcp", 4, "172.18.0.2", 80, "172.18.0.1", 51000, inode=0)
    return replace(snapshot, namespaces=tuple(
        replace(s, connections=(talking,)) if s.ref.id == d.web else s
        for s in snapshot.namespaces)), d.web


@run_async
async def test_the_connections_tab_names_the_other_end():
    """`c`: the attached namespace's connections, as `show connections` lists them, with
    the namespace at the other end named."""
    app = attached(*talking_web())
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert app.screen.query_one("#tabs").active == "connections"
        rows = cells(state_table(app, "connections").table)
        assert len(rows) == 1 and rows[0][1:4] == ["tcp", "172.18.0.2:80", "172.18.0.1:51000"]
        assert "host" in rows[0][-1], rows


@run_async
async def test_the_picker_sorts_worst_first_and_back(offline_app):
    """`s`: the namespace with an error first, then the one with a warning, then the rest;
    `s` again, the order discovery found them in."""
    app = offline_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#namespaces", DataTable)

        def names() -> list[str]:
            return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]

        found = names()
        await pilot.press("s")
        await settle(pilot)
        assert names()[:2] == ["host", "db"] and sorted(names()) == sorted(found) != names()
        await pilot.press("s")
        await settle(pilot)
        assert names() == found


@run_async
async def test_the_path_panel_wraps_at_its_own_width():
    """A report line longer than 78 columns (the rule that stopped the flow) is one line of
    the panel at 160 columns, and wrapped within the panel at 80, under its own indentation:
    the panel wrapped at 78 whatever its width, where no terminal tells Rich one (headless),
    and at its left edge."""
    from netdiag.probe import report
    from netdiag.tui import paths
    from tests.fixtures.scenarios import docker_host

    d = docker_host()
    d.b.iptables(d.host, "filter", LONG_RULE)
    snapshot = d.build()
    expected = report.as_text(paths.trace(snapshot, d.host, "172.18.0.2:80")).splitlines()
    assert max(len(line) for line in expected) > 100
    for size in (SIZE, (160, 45)):
        app = attached(snapshot, d.host)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await answer_prompt(pilot, "t", "172.18.0.2:80")
            await settle(pilot)
            panel = app.screen.query_one("#probes")
            shown = [strip.text.rstrip() for strip in panel.lines]
            assert max(len(line) for line in shown) <= panel.scrollable_content_region.width
            if size == SIZE:
                rule = next(i for i, line in enumerate(shown) if line.startswith("      rule:"))
                wrapped = shown[rule + 1]
                assert len(wrapped) - len(wrapped.lstrip()) == 6 and "-j REJECT" in wrapped, \
                    shown
            else:
                assert shown == ["path to 172.18.0.2:80:", *(f"  {line}" for line in expected)]


# A rule whose line in the path's report is wider than 80 columns, narrower than 160.
LONG_RULE = ("-A OUTPUT -s 172.18.0.1 -d 172.18.0.2 -o br-web -p tcp -m tcp --dport 80 "
             "-m conntrack --ctstate NEW,INVALID -j REJECT")
