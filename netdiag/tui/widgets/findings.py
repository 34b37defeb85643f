"""The findings pane: the findings that involve the attached namespace (what the picker counts
and `check --all` attributes to it: its own, or naming it as related), then those about the
namespaces on its paths that `check --ns` adds (dimmed, their namespace in the Subject), and
the evidence of the highlighted one. Highlighting a finding posts FindingsPane.Highlighted,
which the screen uses to mark that evidence in its tabs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from netdiag.findings.finding import Finding

SEVERITY_TEXT = {"error": "ERROR", "warning": "WARN", "info": "info"}
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
# The Subject column's width: 16 cells, up to 28 for subjects that name another namespace
# first (`host: veth6f5e4d3`), which 16 cut before the interface's name was whole.
SUBJECT_WIDTH, SUBJECT_WIDEST = 16, 28


def _sorted(findings: Sequence[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, f.code, f.subject))


def about(findings: Sequence[Finding], ns_id: int | None) -> list[Finding]:
    """The findings `check --all` attributes to `ns_id` (all of them for None)."""
    return [f for f in findings if ns_id is None or ns_id in f.involved]


def subject_text(finding: Finding, attached: int | None) -> str:
    """The subject, after the namespace it is in when that is not the attached one."""
    if attached is None or finding.namespace.id == attached:
        return finding.subject
    where = finding.namespace.display
    return where if finding.subject == where else f"{where}: {finding.subject}"


class FindingsPane(Vertical):
    @dataclass
    class Highlighted(Message):
        finding: Finding | None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.findings: list[Finding] = []
        self.own = 0  # how many of them involve the attached namespace (listed first)
        self._subject_width = 0

    def compose(self) -> ComposeResult:
        yield Static("Findings", id="findings-title")
        yield DataTable(cursor_type="row", id="findings-table")
        yield Static("", id="evidence")

    def on_mount(self) -> None:
        self._columns(SUBJECT_WIDTH)

    def _columns(self, subject: int) -> None:
        """Fixed widths: the pane must read the same at 80 columns whatever the messages
        are."""
        if subject == self._subject_width:
            return
        self._subject_width = subject
        self.table.clear(columns=True)
        for label, width in (("Sev", 5), ("Code", 5), ("Subject", subject), ("Message", 200)):
            self.table.add_column(label, width=width)

    @property
    def table(self) -> DataTable:
        return self.query_one(DataTable)

    @property
    def current(self) -> Finding | None:
        row = self.table.cursor_row
        return self.findings[row] if 0 <= row < len(self.findings) else None

    def show(self, findings: Sequence[Finding], note: str = "",
             attached: int | None = None) -> None:
        keep = self.current
        own = about(findings, attached)
        nearby = [f for f in findings if f not in own]
        self.findings, self.own = _sorted(own) + _sorted(nearby), len(own)
        subjects = [subject_text(f, attached) for f in self.findings]
        self._columns(min(SUBJECT_WIDEST, max([SUBJECT_WIDTH, *map(len, subjects)])))
        table = self.table
        table.clear()
        for i, f in enumerate(self.findings):
            dim = "dim" if i >= self.own else ""
            table.add_row(Text(SEVERITY_TEXT[f.severity.value],
                               style=SEVERITY_STYLE[f.severity.value]),
                          Text(f.code, style=dim), Text(subjects[i], style=dim),
                          Text(f.message, style=dim))
        errors = sum(f.severity.value == "error" for f in own)
        title = f"Findings: {len(own)}" if own else "Findings: none"
        if errors:
            title += f" ({errors} error{'s' if errors > 1 else ''})"
        if nearby:
            title += f" · {len(nearby)} more on its paths"
        self.query_one("#findings-title", Static).update(f"{title}{note}")
        # Without findings the pane is its title line: the tabs get the room.
        self.set_class(not self.findings, "empty")
        if keep in self.findings:
            table.move_cursor(row=self.findings.index(keep), animate=False)
        self._describe(self.current)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._describe(self.current)

    def _describe(self, finding: Finding | None) -> None:
        text = ""
        if finding is not None:
            # The whole message (the table's column cuts it), wrapped, then the evidence.
            text = f"{finding.message}\n" + (
                "\n".join(f"  · {e.text}" for e in finding.evidence) or "  (no evidence)")
            if finding.repair:
                text += f"\n  repair ({finding.repair.safety.value}): {finding.repair.title}"
        self.query_one("#evidence", Static).update(text)
        self.post_message(self.Highlighted(finding))
