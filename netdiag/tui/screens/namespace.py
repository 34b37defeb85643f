"""The attached namespace: its state in tabs, its findings, and the actions on it.

Collection runs in a thread worker and answers with SnapshotReady or CollectionFailed; a
second worker watches netlink and asks for a refresh when links, addresses, routes or
neighbours change, and a timer catches what netlink does not announce (firewall, sockets).
At most one collection runs at a time: a request that arrives meanwhile is remembered and
served when it finishes. A namespace that disappears is shown as gone, with its last state.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from functools import cached_property

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from netdiag import capabilities, netns, render, watch
from netdiag.errors import NamespaceGone, NetdiagError, NotFound, PermissionDenied
from netdiag.findings.finding import Evidence, Finding
from netdiag.flows.packet import Disposition, PathResult
from netdiag.model import Gap, NamespaceRef, NamespaceState, Snapshot
from netdiag.probe import report
from netdiag.render import SECTIONS, Section
from netdiag.tui import paths, probes
from netdiag.tui.messages import (
    CaptureDone,
    CollectionFailed,
    KernelChanged,
    NamespaceVanished,
    PathDone,
    ProbeDone,
    RepairDone,
    SnapshotReady,
)
from netdiag.tui.screens.dialogs import PromptDialog, RepairDialog
from netdiag.tui.screens.exposure import ExposureScreen
from netdiag.tui.shell import shell_command
from netdiag.tui.source import apply_repair, export
from netdiag.tui.widgets.findings import FindingsPane, about
from netdiag.tui.widgets.result_log import ResultLog
from netdiag.tui.widgets.state_table import StateTable

TAB_KEYS = "1234567890cd"  # the tenth tab is 0, then Connections c and Docker d
DEBOUNCE_SECONDS = 0.3


def header_text(state: NamespaceState, findings: Sequence[Finding]) -> Text:
    """`1 error 2 warnings · addr 172.18.0.2/16 · via 172.18.0.1 eth0 · dns 127.0.0.11`: the
    findings first, so that a narrow terminal cuts the least important end."""
    addresses = [a.cidr for a in state.addresses if a.family == 4 and a.scope == "global"]
    default = next((r for r in state.routes if r.dst in ("default", "0.0.0.0/0")
                    and r.table == 254 and r.family == 4), None)
    parts = [f"addr {', '.join(addresses[:3]) or 'none'}"
             + (f" (+{len(addresses) - 3})" if len(addresses) > 3 else ""),
             f"via {default.gateway or '-'} {default.dev}" if default else "no default route",
             f"dns {', '.join(state.dns.nameservers[:2]) or 'none'}"]
    text = Text()
    counts = [(sum(f.severity.value == s for f in findings), s, style)
              for s, style in (("error", "bold red"), ("warning", "yellow"),
                               ("info", "cyan"))]
    shown = [(n, s, style) for n, s, style in counts if n]
    for i, (number, severity, style) in enumerate(shown):
        text.append(f"{number} {severity}{'s' if number != 1 and severity != 'info' else ''}",
                    style=style)
        if i < len(shown) - 1:
            text.append(" ")
    if not shown:
        text.append("no findings", style="green")
    text.append(" · " + " · ".join(parts))
    return text


# The colour of a path's verdict: green delivered; yellow where the flow was not refused but
# found nothing (no listener, no neighbour, not known); red where something refused or lost it.
VERDICT_STYLE = {Disposition.DELIVERED: "bold green", Disposition.NO_LISTENER: "yellow",
                 Disposition.NEIGHBOUR_UNREACHABLE: "yellow", Disposition.UNKNOWN: "yellow"}


def path_line(line: str) -> Text:
    """A line of a path's report, its verdict coloured: `=> DENIED` the whole line,
    `forward: NO-ROUTE in …` / `reply: delivered` the verdict word."""
    text = Text(line)
    for disposition in Disposition:
        for word in (f"=> {disposition.upper()}", f"forward: {disposition.upper()}",
                     f"reply: {disposition.upper()}", f"forward: {disposition}",
                     f"reply: {disposition}"):
            start = line.find(word)
            if start >= 0 and (len(line) == start + len(word)
                               or not line[start + len(word)].isalnum()
                               and line[start + len(word)] != "-"):
                style = VERDICT_STYLE.get(disposition, "bold red")
                if word.startswith("=>"):
                    text.stylize(style)
                else:
                    text.stylize(style, start + word.index(":") + 2, start + len(word))
                return text
    return text


def capture_line(line: str) -> Text:
    """A line of a capture's report: its verdict green or red, an interface's mark bold."""
    text = Text(line)
    if "=> the capture agrees" in line:
        text.stylize("bold green")
    elif "=> the capture DISAGREES" in line:
        text.stylize("bold red")
    elif "◀" in line:
        text.stylize("bold", line.index("◀"))
    return text


def empty_text(tab: Section, ref: NamespaceRef, gaps: Sequence[Gap]) -> str:
    """What an empty tab says: why it is empty when netdiag could not read it, else that
    the namespace has none."""
    for gap in gaps:
        if gap.namespace == ref.id and (gap.collector == tab.id
                                        or gap.collector in tab.evidence_kinds):
            return f"{tab.title} not read: {gap.message}"
    if tab.id == "firewall":
        return ("No firewall rules here: this namespace has no iptables or nftables table, "
                "so no rule of its own filters, drops or rewrites its packets.")
    return f"No {EMPTY_NOUNS.get(tab.id, tab.id)} in this namespace."


EMPTY_NOUNS = {"fdb": "forwarding entries", "ipvs": "IPVS services", "dns": "DNS settings",
               "docker": "Docker objects"}  # the others' ids say it


def gone_text(ref: NamespaceRef, shown: bool) -> str:
    """Why a namespace disappeared while attached, in the words of what made it."""
    if ref.container:
        why = f"container {ref.container} stopped or was removed"
    elif ref.lab:
        why = f"lab {ref.lab} was taken down"
    elif ref.name:
        why = f"namespace {ref.name} was deleted (ip netns del)"
    else:
        why = "every process in it exited"
    return (f"{ref.display} is gone: its network namespace no longer exists ({why}).\n"
            + ("Below is its last state; nothing can be done in it any more. "
               if shown else "Nothing of it was read before it went. ")
            + "Esc returns to the picker.")


def _unexpected(exc: Exception) -> str:
    if isinstance(exc, PermissionDenied) and exc.capability:
        # the missing capability first: the title line is cut at the terminal's width
        return f"needs CAP_{exc.capability}: {exc}"
    return str(exc) if isinstance(exc, NetdiagError) else f"{type(exc).__name__}: {exc}"


class NamespaceScreen(Screen):
    BINDINGS = [
        *(Binding(key, f"show_tab({i})", tab.title, show=False)
          for i, (key, tab) in enumerate(zip(TAB_KEYS, SECTIONS))),
        Binding("right_square_bracket", "next_tab(1)", "Next tab", show=False),
        Binding("left_square_bracket", "next_tab(-1)", "Previous tab", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("f", "focus_findings", "Findings"),
        Binding("r", "repair", "Repair"),
        Binding("r", "plan", "Plan"),  # offline: the repair's plan, nothing to apply it to
        Binding("p", "probe", "Probe"),
        Binding("t", "path", "Path"),
        Binding("w", "capture", "Capture the path traced", show=False),
        Binding("x", "exposure", "Exposure: who reaches its sockets", show=False),
        Binding("o", "toggle_probes", "Probe panel", show=False),
        Binding("e", "export", "Export"),
        Binding("s", "shell", "Shell"),
        Binding("ctrl+r", "refresh", "Refresh", show=False),
        Binding("escape", "back", "Back"),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit", show=False),
    ]

    # Offline (a saved snapshot) there is no kernel to probe, enter, re-read or repair; `r`
    # shows a repair's plan instead, without the means to apply it.
    LIVE_ONLY = frozenset({"probe", "shell", "refresh", "repair", "capture"})
    OFFLINE_ONLY = frozenset({"plan"})

    def __init__(self, ref: NamespaceRef, stop: tuple[Evidence, ...] = ()):
        super().__init__()
        self.ref = ref
        # What stopped the last path traced (given: the path that brought us here stopped in
        # this namespace, shown once it is read).
        self.stop = stop
        self._show_stop = bool(stop)
        # Evidence gone to (where a path stopped, an exposure's row): kept marked, also over
        # a live re-read, until the user chooses a finding.
        self._pinned: tuple[Evidence, ...] = ()
        # The last path traced, for a capture along it: (its snapshot, its trace, its line).
        self.traced: tuple[Snapshot, PathResult, str] | None = None
        self.snapshot: Snapshot | None = None
        self.findings: tuple[Finding, ...] = ()
        self.status = "reading…"
        self.gone = False
        self._collecting = False
        self._pending = False
        self._debouncing = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A saved snapshot has no kernel behind it: what needs one is not offered. What this
        process lacks the capability for is shown disabled (None); the title says why."""
        offline = self.app.source.offline
        if action in self.LIVE_ONLY and offline or action in self.OFFLINE_ONLY and not offline:
            return False
        return None if action in self.unavailable else True

    @property
    def here(self) -> bool:
        """Whether this is the namespace the TUI itself runs in (no entering needed)."""
        return self.ref.id == netns.self_inode()

    @cached_property
    def unavailable(self) -> dict[str, str]:
        """Live actions this process cannot carry out here → why ("needs CAP_SYS_ADMIN"): in a
        container without the capability, or not root."""
        if self.app.source.offline:
            return {}
        reasons = {}
        enter = "" if self.here else capabilities.lacking("SYS_ADMIN")
        if enter:
            reasons["shell"] = reasons["probe"] = reasons["capture"] = \
                f"entering another namespace needs {enter}"
        change = enter or capabilities.lacking("NET_ADMIN")
        if change:
            reasons["repair"] = f"changing it needs {change}"
        return reasons

    # --- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="ns-title", classes="title")
        yield Static(id="ns-header")
        yield Static(id="notice")
        with TabbedContent(id="tabs"):
            for tab in SECTIONS:
                with TabPane(tab.title, id=tab.id):
                    yield StateTable(tab.columns, tab.title.lower(), id=f"table-{tab.id}")
        yield FindingsPane(id="findings")
        yield ResultLog(id="probes")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#probes").display = False
        self._table("links").table.focus()
        self._title()
        self.action_refresh()
        if not self.app.source.offline:
            self.watch_kernel()
            self.set_interval(self.app.refresh_seconds, self.action_refresh)

    def _table(self, tab_id: str) -> StateTable:
        return self.query_one(f"#table-{tab_id}", StateTable)

    def _title(self) -> None:
        """The header: what this namespace is, and what it has (addresses, the way out, DNS,
        findings) — what one asks first on attaching."""
        gaps = [] if self.snapshot is None else sorted(
            {g.collector for g in self.snapshot.gaps if g.namespace == self.ref.id})
        gap_text = f" · gaps: {', '.join(gaps)}" if gaps else ""
        self.query_one("#ns-title", Static).update(
            f"{self.ref.display} · {self.ref.kind.value} · {self.status}{gap_text}")
        state = self.snapshot.namespace(self.ref.id) if self.snapshot else None
        own = about(self.findings, self.ref.id)  # what the picker counted for it
        header = header_text(state, own) if state is not None else Text()
        if self.unavailable:  # first: why a key in the footer is greyed out
            off = "; ".join(f"{action} ({why})" for action, why in self.unavailable.items())
            header = Text.assemble((f"unavailable: {off}", "dim"), "\n" if header else "",
                                   header)
        self.query_one("#ns-header", Static).update(header)

    # --- collection ---------------------------------------------------------------------

    def action_refresh(self) -> None:
        if self.gone or (self.app.source.offline and self.snapshot is not None):
            return
        if self._collecting:
            self._pending = True
            return
        self._collecting = True
        self.collect()

    @work(thread=True, group="collect")
    def collect(self) -> None:
        source = self.app.source
        try:
            snapshot = source.collect(self.ref)
            findings = source.check(snapshot, frozenset((self.ref.id,)))
        except NamespaceGone as exc:
            self.post_message(NamespaceVanished(str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - a failed read is shown, never fatal
            self.post_message(CollectionFailed(_unexpected(exc)))
            return
        self.post_message(SnapshotReady(snapshot, findings))

    @work(thread=True, group="watch")
    def watch_kernel(self) -> None:
        worker = get_current_worker()
        try:
            watch.watch(self.ref.path, lambda: self.post_message(KernelChanged()),
                        lambda: worker.is_cancelled or self.gone)
        except Exception as exc:  # noqa: BLE001 - without events the timer still refreshes
            self.post_message(CollectionFailed(f"no live events: {_unexpected(exc)}",
                                               read=False))

    def on_kernel_changed(self, message: KernelChanged) -> None:
        # A busy namespace (the host's) sends events all the time: read at most every
        # DEBOUNCE_SECONDS, which also turns one `ip` command's burst into one read.
        if not self._debouncing:
            self._debouncing = True
            self.set_timer(DEBOUNCE_SECONDS, self._debounced_refresh)

    def _debounced_refresh(self) -> None:
        self._debouncing = False
        self.action_refresh()

    def _collection_done(self) -> None:
        self._collecting = False
        if self._pending:
            self._pending = False
            self.action_refresh()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.status = "offline snapshot" if self.app.source.offline else "live"
        self._show(message.snapshot, message.findings)
        self._title()
        self._notice("")
        self._collection_done()

    def on_collection_failed(self, message: CollectionFailed) -> None:
        self.status = f"read failed: {message.error}"
        self._title()
        if self.snapshot is None and message.read:  # else the last state stays
            self._notice(f"{self.ref.display} could not be read: {message.error}\n"
                         "Ctrl+R tries again; Esc returns to the picker.")
        self._collection_done()

    def on_namespace_vanished(self, message: NamespaceVanished) -> None:
        self.gone = True
        self.status = "GONE" + (" (showing its last state)" if self.snapshot else "")
        self._title()
        self._notice(gone_text(self.ref, self.snapshot is not None))
        self._collecting = False
        self.workers.cancel_group(self, "watch")

    def _notice(self, text: str) -> None:
        """A message above the tabs (`text` empty: none); the whole page while nothing of
        this namespace was ever read."""
        self.query_one("#notice", Static).update(text)
        self.set_class(bool(text), "-notice")
        self.set_class(bool(text) and self.snapshot is None, "-blank")

    def _show(self, snapshot: Snapshot, findings: tuple[Finding, ...]) -> None:
        self.snapshot = snapshot
        self.findings = tuple(findings)  # what `check --ns` reports for it
        self.query_one(FindingsPane).show(self.findings, attached=self.ref.id)
        self._render_tabs(self.query_one(FindingsPane).current)
        if self._show_stop:  # after the findings pane has marked its highlighted finding
            self._show_stop = False
            self.call_after_refresh(self.action_go_to_stop)

    def _render_tabs(self, finding: Finding | None) -> None:
        """The highlighted finding's evidence marked — unless evidence gone to is pinned and
        no finding was chosen since (a re-read highlights the findings pane's row again)."""
        if self._pinned and not self.query_one(FindingsPane).table.has_focus:
            self._mark(self._pinned)
            return
        self._pinned = ()
        self._mark(finding.evidence if finding is not None else ())

    def _mark(self, evidence: tuple[Evidence, ...]) -> None:
        state = self.snapshot.namespace(self.ref.id) if self.snapshot else None
        if state is None:
            return
        ctx = render.context(self.snapshot)
        for tab in SECTIONS:
            self._table(tab.id).show(tab.rows(state, ctx), self._evidence_keys(tab, evidence),
                                     empty_text(tab, state.ref, self.snapshot.gaps))

    def _evidence_keys(self, tab: Section, evidence: tuple[Evidence, ...]) -> frozenset[str]:
        return frozenset(e.key for e in evidence if e.key and e.kind in tab.evidence_kinds
                         and e.namespace in (None, self.ref.id))

    def on_findings_pane_highlighted(self, message: FindingsPane.Highlighted) -> None:
        self._render_tabs(message.finding)
        if message.finding is None or not self.query_one(FindingsPane).table.has_focus:
            return
        for tab in SECTIONS:  # show the first tab that holds some of the evidence
            if self._evidence_keys(tab, message.finding.evidence):
                self.query_one(TabbedContent).active = tab.id
                break

    # --- navigation ---------------------------------------------------------------------

    LAYOUTS = ("finding", "path")

    def lay_out_for(self, question: str = "") -> None:
        """Give the room to what is being read: "finding" (its detail), "path" (the path's
        result), or "" the state tabs (app.tcss has the sizes)."""
        for layout in self.LAYOUTS:
            self.set_class(layout == question, f"-{layout}")

    def on_descendant_focus(self, event) -> None:
        if event.widget is self.query_one(FindingsPane).table:
            self.lay_out_for("finding")
        elif event.widget is self.query_one("#probes"):
            self.lay_out_for("path")

    def _active_table(self) -> StateTable:
        return self._table(self.query_one(TabbedContent).active or SECTIONS[0].id)

    def action_show_tab(self, index: int) -> None:
        self.lay_out_for("")
        self.query_one(TabbedContent).active = SECTIONS[index].id
        self._active_table().table.focus()

    def action_next_tab(self, step: int) -> None:
        ids = [tab.id for tab in SECTIONS]
        current = ids.index(self.query_one(TabbedContent).active or ids[0])
        self.action_show_tab((current + step) % len(ids))

    def action_filter(self) -> None:
        self.lay_out_for("")
        self._active_table().start_filter()

    def action_focus_findings(self) -> None:
        self.query_one(FindingsPane).table.focus()

    def action_back(self) -> None:
        focused = self.focused
        if isinstance(focused, Input):
            focused.value = ""
            self._active_table().table.focus()
            return
        self.app.back_to_picker()

    def on_data_table_row_selected(self, event) -> None:
        if event.data_table is self.query_one(FindingsPane).table:
            self.action_repair()

    # --- actions ------------------------------------------------------------------------

    def action_plan(self) -> None:
        self.action_repair()

    def action_repair(self) -> None:
        finding = self.query_one(FindingsPane).current
        if finding is None:
            self.notify("no finding selected")
            return
        if finding.repair is None:
            self.notify(f"{finding.code} has no repair plan")
            return
        offline = self.app.source.offline or self.gone

        def confirmed(apply: bool | None) -> None:
            if apply:  # the dialog warned about an unsafe repair: yes means unsafe allowed
                self.run_repair(finding)

        self.app.push_screen(RepairDialog(finding, self.snapshot, can_apply=not offline),
                             confirmed)

    @work(thread=True, group="repair")
    def run_repair(self, finding: Finding) -> None:
        try:
            ok, lines = apply_repair(finding.repair, self.snapshot, self.ref.id,
                                     confirmed_unsafe=True)
        except Exception as exc:  # noqa: BLE001 - shown in the panel
            ok, lines = False, [f"repair failed: {_unexpected(exc)}"]
        self.post_message(RepairDone(ok, lines))

    def on_repair_done(self, message: RepairDone) -> None:
        self._log(f"repair {'done' if message.ok else 'failed'}", message.lines)
        self.action_refresh()

    def action_probe(self) -> None:
        if self.app.source.offline or self.gone:
            self.notify("probes need a live namespace")
            return

        def chosen(line: str | None) -> None:
            if not line:
                return
            try:
                probe = probes.parse(line)
            except NetdiagError as exc:
                self.notify(str(exc), severity="error")
                return
            self._log(f"probe {probe.title}: running…", [])
            self.run_probe(probe)

        self.app.push_screen(PromptDialog(f"Probe from this namespace ({probes.USAGE})",
                                          probes.placeholder(self.snapshot, self.ref), ""),
                             chosen)

    @work(thread=True, group="probe")
    def run_probe(self, probe: probes.Probe) -> None:
        try:
            if self.snapshot is None:
                raise NotFound("the namespace has not been read yet")
            lines = probes.run(probe, self.ref, self.snapshot, self.app.probe_external)
        except Exception as exc:  # noqa: BLE001 - shown in the panel
            lines = [f"failed: {_unexpected(exc)}"]
        self.post_message(ProbeDone(probe.title, lines))

    def on_probe_done(self, message: ProbeDone) -> None:
        self._log(f"probe {message.title}:", message.lines)

    def action_path(self) -> None:
        if self.snapshot is None:
            self.notify("nothing read yet")
            return
        snapshot = self.snapshot

        def chosen(line: str | None) -> None:
            if line:
                self.run_path(snapshot, line)

        self.app.push_screen(PromptDialog("Path from this namespace (simulated, nothing is "
                                          "sent)", paths.USAGE, ""), chosen)

    @work(thread=True, group="path")
    def run_path(self, snapshot: Snapshot, line: str) -> None:
        try:
            result = paths.trace(snapshot, self.ref.id, line)
        except Exception as exc:  # noqa: BLE001 - shown in the panel
            self.post_message(PathDone(line, [f"failed: {_unexpected(exc)}"], ()))
            return
        self.post_message(PathDone(line, report.as_text(result).splitlines(),
                                   paths.evidence(result), result, snapshot))

    def on_path_done(self, message: PathDone) -> None:
        live = not (self.app.source.offline or self.gone)
        self.traced = (message.snapshot, message.result, message.line) \
            if message.result is not None and live else None
        hint = ["w: capture it along the path (sent once, watched on every hop)"] \
            if self.traced and "capture" not in self.unavailable else []
        self._log(f"path to {message.line}:", message.lines + hint, path_line)
        self.lay_out_for("path")
        self.stop = message.evidence
        if message.evidence and message.evidence[0].namespace in (None, self.ref.id):
            self.action_go_to_stop()

    def action_capture(self, wait: bool = False) -> None:
        """`netdiag capture` of the last path traced: every interface of its hops watched while
        the flow is sent once (`wait`: while its own traffic is awaited), then per interface
        whether the packet was last seen there, beside the model's verdict. A new capture, or
        leaving the namespace, ends the one running."""
        if self.app.source.offline or self.gone:
            self.notify("a capture needs a live namespace")
            return
        if self.traced is None:
            self.notify("trace a path first (t): the capture follows it")
            return
        snapshot, result, line = self.traced
        how = f"waiting {paths.CAPTURE_WAIT_SECONDS:g} s for its own traffic" if wait \
            else "sending it once"
        self._log(f"capture along the path to {line}: {how}…", [])
        self.lay_out_for("path")
        self.run_capture(snapshot, result, line, wait)

    @work(thread=True, group="capture", exclusive=True)
    def run_capture(self, snapshot: Snapshot, result: PathResult, line: str,
                    wait: bool) -> None:
        worker = get_current_worker()
        try:
            lines = paths.capture(snapshot, result, wait, self.app.probe_external,
                                  lambda: worker.is_cancelled)
        except Exception as exc:  # noqa: BLE001 - shown in the panel
            lines = [f"failed: {_unexpected(exc)}"]
        if not worker.is_cancelled:
            self.post_message(CaptureDone(line, lines))

    def on_capture_done(self, message: CaptureDone) -> None:
        self._log(f"capture along the path to {message.line}:", message.lines, capture_line)

    def action_go_to_stop(self) -> None:
        """Where the last path traced stopped: its row marked, in the tab that holds it, in
        the namespace it stopped in (attached to, when that is another one)."""
        if not self.stop:
            self.notify("no path traced from here has stopped")
            return
        self._go_to(self.stop)

    def _go_to(self, evidence: tuple[Evidence, ...]) -> None:
        """`evidence` marked, in the tab that holds it first, in the namespace it is in
        (attached to, when that is another one)."""
        where = evidence[0].namespace
        if where not in (None, self.ref.id):
            state = self.snapshot.namespace(where) if self.snapshot else None
            if state is None:
                self.notify(f"that is in namespace {where}, which was not read")
                return
            self.app.attach(state.ref, stop=evidence)
            return
        self._pinned = evidence
        self._mark(evidence)
        for tab in SECTIONS:  # the first tab that holds it
            if self._evidence_keys(tab, evidence):
                # The table takes the focus in the same turn as its tab is chosen: were the
                # focus left in the pane being hidden, Textual's next refresh would move it
                # to the first widget shown (the new pane's filter line), and a focus given
                # after that refresh could come after a key that chose another tab.
                self.query_one(TabbedContent).active = tab.id
                self._table(tab.id).table.focus()
                break

    def action_exposure(self) -> None:
        """Who reaches this namespace's sockets, and how (`netdiag exposure --ns`); a row
        chosen there comes back marked here, as a finding's evidence."""
        if self.snapshot is None:
            self.notify("nothing read yet")
            return

        def chosen(evidence: tuple[Evidence, ...] | None) -> None:
            if evidence:
                self.lay_out_for("")
                self._go_to(evidence)

        self.app.push_screen(ExposureScreen(self.snapshot, self.ref), chosen)

    def action_check(self) -> None:
        """Run the checks again, as `check --ns` would: live on a fresh read of the kernel,
        offline on the snapshot."""
        if self.app.source.offline or self.gone:
            if self.snapshot is not None:
                self.recheck(self.snapshot)
        else:
            self.action_refresh()

    @work(thread=True, group="collect")
    def recheck(self, snapshot: Snapshot) -> None:
        try:
            findings = self.app.source.check(snapshot, frozenset((self.ref.id,)))
        except Exception as exc:  # noqa: BLE001 - a failed check is shown, never fatal
            self.post_message(CollectionFailed(_unexpected(exc)))
            return
        self.post_message(SnapshotReady(snapshot, findings))

    def _log(self, title: str, lines: list[str], style=Text) -> None:
        panel = self.query_one("#probes", ResultLog)
        panel.display = True
        panel.write(title)
        for line in lines:
            panel.write_indented(style(f"  {line}"))

    def action_toggle_probes(self) -> None:
        panel = self.query_one("#probes")
        panel.display = not panel.display
        if not panel.display and self.has_class("-path"):
            self.lay_out_for("")

    def action_export(self) -> None:
        if self.snapshot is None:
            self.notify("nothing read yet")
            return
        snapshot = self.snapshot

        def chosen(path: str | None) -> None:
            if not path:
                return
            try:
                target = export(snapshot, path)
            except NetdiagError as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"snapshot written to {target}")

        name = self.ref.name or self.ref.container or str(self.ref.id)
        self.app.push_screen(PromptDialog("Export the current state as a snapshot",
                                          "file to write", f"netdiag-{name}.json"), chosen)

    def action_shell(self) -> None:
        if self.app.source.offline or self.gone:
            self.notify("a shell needs a live namespace")
            return
        shell = os.environ.get("SHELL") or "/bin/sh"
        try:
            # In its own namespace the shell needs no nsenter (nor the CAP_SYS_ADMIN setns
            # needs); its prompt says which namespace it is in.
            with shell_command(shell, self.ref, enter=not self.here) as (argv, env), \
                    self.app.suspend():
                print(f"netdiag: {shell} in {self.ref.display}; exit to return")
                subprocess.run(argv, check=False, env=env)
        except SuspendNotSupported:
            self.notify("this terminal cannot suspend the app", severity="error")
            return
        except FileNotFoundError:
            self.notify("nsenter is not installed (util-linux)", severity="error")
            return
        self.action_refresh()
