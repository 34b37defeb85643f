"""The namespace picker: every namespace on the host (or in the snapshot), searchable.

It paints as soon as discovery (fast: a scan of /proc and /run/netns) is done, then fills the
findings column from a background worker that reads every namespace and runs the checks.
`s` (or a click on the Findings header) sorts the list worst first — by the worst severity,
then by how many findings — and back to the order discovery found them in.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import get_current_worker

from netdiag.checks.engine import counts_by_namespace
from netdiag.errors import NetdiagError
from netdiag.findings.finding import Severity
from netdiag.model import NamespaceRef
from netdiag.tui.messages import CollectionFailed, FindingCounts, NamespacesFound, PickerShown
from netdiag.tui.widgets.findings import SEVERITY_STYLE

PENDING = "…"


def _where(ref: NamespaceRef) -> str:
    if ref.lab:
        return f"lab {ref.lab}/{ref.node}"
    return ",".join(ref.docker_networks)


def searchable_text(snapshot) -> dict[int, str]:
    """What the search finds a namespace by beyond its names: its addresses, and the lab
    networks a lab node is on."""
    found = {}
    for state in snapshot.namespaces:
        words = [a.address for a in state.addresses]
        lab = next((lab for lab in snapshot.labs if lab.name == state.ref.lab), None)
        if lab is not None:
            words += lab.networks_of(state.ref.node)
        found[state.ref.id] = " ".join(words).lower()
    return found


def worst_by_namespace(findings) -> dict[int, str]:
    """namespace id → the worst severity of the findings that involve it (its count's colour)."""
    worst: dict[int, object] = {}
    for finding in findings:
        for ns_id in finding.involved:
            if ns_id not in worst or finding.severity.rank > worst[ns_id].rank:
                worst[ns_id] = finding.severity
    return {ns_id: severity.value for ns_id, severity in worst.items()}


def ref_cells(ref: NamespaceRef, count: str) -> tuple[str, ...]:
    return (ref.display, count, ref.kind.value, ref.container, _where(ref), ref.process)


class PickerScreen(Screen):
    BINDINGS = [
        Binding("enter", "attach", "Attach", show=True),
        Binding("slash", "search", "Search"),
        Binding("s", "sort", "Sort"),  # worst first, or as found
        Binding("escape", "clear_search", "Clear", show=False),
        Binding("ctrl+r", "rediscover", "Refresh", show=False),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self):
        super().__init__()
        self.refs: list[NamespaceRef] = []
        self.counts: dict[int, int] | None = None
        self.worst: dict[int, str] = {}  # id → worst severity among its findings
        self.searchable: dict[int, str] = {}  # id → addresses and lab networks, once read
        self.worst_first = False  # sorted by findings, or in the order discovery found them

    def compose(self) -> ComposeResult:
        yield Static("netdiag · network namespaces", classes="title")
        yield Input(placeholder="search: name, container, network, lab, process, address (/)",
                    id="search")
        table = DataTable(cursor_type="row", id="namespaces")
        # Findings second: on a narrow terminal the last columns are the ones cut off.
        table.add_columns("Namespace", "Findings", "Kind", "Container", "Networks/lab",
                          "Process")
        yield table
        yield Static("discovering namespaces…", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#namespaces", DataTable).focus()
        self.discover()

    @work(thread=True, group="discover", exclusive=True)
    def discover(self) -> None:
        try:
            refs = self.app.source.discover()
        except Exception as exc:  # noqa: BLE001 - shown in the status line, never fatal
            self.post_message(CollectionFailed(str(exc) if isinstance(exc, NetdiagError)
                                               else f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(NamespacesFound(refs))

    @work(thread=True, group="counts", exclusive=True)
    def count_findings(self, refs: list[NamespaceRef]) -> None:
        source = self.app.source
        worker = get_current_worker()
        try:
            snapshot = source.collect_all(refs, lambda: worker.is_cancelled)
            if snapshot is None:
                return
            findings = source.check(snapshot, frozenset())
            counts = counts_by_namespace(findings)
        except Exception as exc:  # noqa: BLE001 - the list stays usable without counts
            self.post_message(CollectionFailed(f"could not count findings: {exc}"))
            return
        self.post_message(FindingCounts({ref.id: counts.get(ref.id, 0) for ref in refs
                                         if snapshot.namespace(ref.id)},
                                        searchable_text(snapshot), worst_by_namespace(findings)))

    def on_namespaces_found(self, message: NamespacesFound) -> None:
        self.refs = message.refs
        self._redraw()
        self.query_one("#status", Static).update(
            f"{len(self.refs)} namespaces · counting findings…")
        self.call_after_refresh(self.post_message, PickerShown(len(self.refs)))
        self.count_findings(self.refs)

    def on_finding_counts(self, message: FindingCounts) -> None:
        self.counts = message.counts
        self.worst = message.worst
        self.searchable = message.searchable
        self._redraw()
        total = sum(1 for c in self.counts.values() if c)
        self.query_one("#status", Static).update(
            f"{len(self.refs)} namespaces · {total} with findings · enter attaches")

    def on_collection_failed(self, message: CollectionFailed) -> None:
        self.query_one("#status", Static).update(f"error: {message.error}")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#namespaces", DataTable).focus()

    def visible(self) -> list[NamespaceRef]:
        words = self.query_one("#search", Input).value.lower().split()
        shown = []
        for ref in self.refs:
            text = " ".join(ref_cells(ref, "")).lower() + f" {ref.name} {ref.id} " + \
                self.searchable.get(ref.id, "")
            if all(word in text for word in words):
                shown.append(ref)
        if self.worst_first:
            shown.sort(key=self._badness)
        return shown

    def _badness(self, ref: NamespaceRef) -> tuple[int, int, str]:
        worst = self.worst.get(ref.id)
        return (-(Severity(worst).rank + 1 if worst else 0), -(self.counts or {}).get(ref.id, 0),
                ref.display)

    def action_sort(self) -> None:
        self.worst_first = not self.worst_first
        self._redraw()
        self.notify("worst first" if self.worst_first else "in the order found")

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.column_index == 1:  # Findings
            self.action_sort()

    def _count(self, ref: NamespaceRef) -> str:
        if self.counts is None:
            return PENDING
        return str(self.counts[ref.id]) if ref.id in self.counts else "?"

    def _redraw(self) -> None:
        table = self.query_one("#namespaces", DataTable)
        cursor = table.cursor_row
        table.clear()
        for ref in self.visible():
            name, count, *rest = ref_cells(ref, self._count(ref))
            style = SEVERITY_STYLE.get(self.worst.get(ref.id, ""), "")
            table.add_row(name, Text(count, style=style), *rest, key=str(ref.id))
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)

    def selected(self) -> NamespaceRef | None:
        table = self.query_one("#namespaces", DataTable)
        shown = self.visible()
        return shown[table.cursor_row] if 0 <= table.cursor_row < len(shown) else None

    def action_attach(self) -> None:
        ref = self.selected()
        if ref is not None:
            self.app.attach(ref)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_attach()

    def action_rediscover(self) -> None:
        self.counts = None
        self.query_one("#status", Static).update("discovering namespaces…")
        self.discover()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_clear_search(self) -> None:
        self.query_one("#search", Input).value = ""
        self.query_one("#namespaces", DataTable).focus()
