"""The exposure view: what `netdiag exposure` prints, for the attached namespace — every way
to its listening sockets (and, on a host, to the sockets reached through it), most at risk
first, computed on the screen's snapshot in a worker (offline too: nothing is sent).

One row per way in: the address and port a client connects to, who answers, from where, and
how (the DNAT rule, the INPUT rule or policy it bypasses). Enter on a row returns to the
namespace with that evidence marked in its Firewall tab (the socket in its Sockets tab when
no rule is involved), as a finding's evidence is marked.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from netdiag.checks.exposure_model import (
    BYPASS,
    CLOSED,
    FROM_HOST,
    Door,
    Exposure,
    exposures,
    focus_filter,
)
from netdiag.findings.finding import Evidence
from netdiag.model import NamespaceRef, Snapshot
from netdiag.render import Row
from netdiag.tui.messages import ExposuresReady
from netdiag.tui.widgets.state_table import StateTable

COLUMNS = ("Risk", "Address", "Port", "Proto", "Answers", "From", "How")


def _how(door: Door) -> str:
    how = door.via + (f" {door.rule_name}" if door.rule_name else "")
    return how + (f", bypasses INPUT: {door.input_drop}" if door.input_drop else "")


def _from(door: Door) -> str:
    if door.source == FROM_HOST:
        return "the host" if door.where == "host" else f"host {door.where}"
    return f"{door.source} {door.where}"  # "uplink eth0", "network web"


def rows(found: list[Exposure]) -> list[tuple[Row, tuple[Evidence, ...]]]:
    """The table's rows, one per way in (a socket nothing reaches: one row, "-"), each with
    the evidence Enter marks. The risk is the socket's: said on its first row, as `netdiag
    exposure` prints it."""
    made = []
    for entry in found:
        answers = f"{entry.owner} :{entry.socket.port}"
        socket = Evidence(f"socket {entry.subject}", entry.namespace.id, "socket",
                          f"{entry.socket.protocol}/{entry.socket.address}:{entry.socket.port}")
        for i, door in enumerate(entry.doors):
            made.append((Row(("" if i else entry.risk, door.address, str(door.port),
                              door.protocol, answers, _from(door), _how(door))),
                         door.evidence() or (socket,)))
        if not entry.doors:
            made.append((Row((entry.risk, "-", "-", entry.socket.protocol, answers, "-",
                              "-")), (socket,)))
    return made


class ExposureScreen(Screen[tuple[Evidence, ...]]):
    BINDINGS = [Binding("enter", "mark", "Mark its rules"),
                Binding("slash", "filter", "Filter"),
                Binding("escape", "close", "Back"),
                Binding("question_mark", "app.help", "Help")]

    def __init__(self, snapshot: Snapshot, ref: NamespaceRef):
        super().__init__()
        self.snapshot, self.ref = snapshot, ref
        self.evidence: list[tuple[Evidence, ...]] = []

    def compose(self) -> ComposeResult:
        yield Static(f"{self.ref.display} · exposure: who reaches its sockets, and how "
                     "(simulated)", classes="title")
        yield Static("computing…", id="exposure-status")
        yield StateTable(COLUMNS, "exposures", id="table-exposure")
        yield Footer()

    @property
    def table(self) -> StateTable:
        return self.query_one(StateTable)

    def on_mount(self) -> None:
        self.table.table.focus()
        self.compute()

    @work(thread=True, group="exposure")
    def compute(self) -> None:
        try:
            found = focus_filter(exposures(self.snapshot), frozenset((self.ref.id,)))
        except Exception as exc:  # noqa: BLE001 - shown in the status line, never fatal
            self.post_message(ExposuresReady([], f"could not compute: {exc}"))
            return
        self.post_message(ExposuresReady([e for e in found if e.risk != CLOSED]))

    def on_exposures_ready(self, message: ExposuresReady) -> None:
        made = rows(message.found)
        self.evidence = [evidence for _, evidence in made]
        risky = sum(e.risk == BYPASS for e in message.found)
        status = message.error or (
            f"{len(message.found)} sockets reached, {risky} bypassing the host's firewall"
            " · enter marks a row's rules in the namespace's tabs")
        self.query_one("#exposure-status", Static).update(status)
        self.table.show([row for row, _ in made], empty="Nothing reaches a socket of "
                         f"{self.ref.display} (loopback-only sockets are not listed).")

    def _selected(self) -> tuple[Evidence, ...]:
        visible = self.table.visible_rows()
        row = self.table.table.cursor_row
        if not 0 <= row < len(visible):
            return ()
        return self.evidence[self.table.rows.index(visible[row])]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_mark()

    def action_mark(self) -> None:
        evidence = self._selected()
        if evidence:
            self.dismiss(evidence)

    def action_filter(self) -> None:
        self.table.start_filter()

    def action_close(self) -> None:
        if self.table.filter_input.has_focus:
            self.table.filter_input.value = ""
            self.table.table.focus()
            return
        self.dismiss(())
