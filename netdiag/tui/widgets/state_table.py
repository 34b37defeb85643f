"""A table of rows with a filter line above it: one per tab of the namespace screen.

Typing in the filter keeps the rows that contain every word typed (case-insensitive, any
column); with no row to show, a line says why instead of an empty grid. The filter line
takes the focus only when asked (`/`, a click): never by Textual moving the focus off a table
hidden for a moment, where the next digit typed would filter instead of choosing a tab. Rows
whose keys
are in the current evidence set are marked with "»" in the first column — a marker that
stays readable without colour — and the cursor jumps to the first.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from netdiag.render import Row

MARK = "»"


class StateTable(Vertical):
    def __init__(self, columns: Sequence[str], noun: str, **kwargs):
        super().__init__(**kwargs)
        self.columns = tuple(columns)
        self.noun = noun
        self.rows: list[Row] = []
        self.marked: frozenset[str] = frozenset()
        self.empty = f"No {noun} in this namespace."  # said when there is no row at all

    def compose(self) -> ComposeResult:
        line = Input(placeholder=f"filter {self.noun} (/)", classes="filter")
        line.can_focus = False  # until asked: start_filter()
        yield line
        table = DataTable(cursor_type="row", zebra_stripes=False)
        table.add_column(" ", width=1)  # the marker's, one cell wide whatever is marked
        table.add_columns(*self.columns)
        yield table
        yield Static("", classes="placeholder")

    def on_mount(self) -> None:
        # drawn once as it is: a tab whose first rows are none (show() sees nothing changed)
        # still says why it is empty
        self._redraw(jump_to_mark=False)

    @property
    def table(self) -> DataTable:
        return self.query_one(DataTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one(Input)

    def show(self, rows: Sequence[Row], marked: frozenset[str] = frozenset(),
             empty: str = "") -> None:
        if empty and empty != self.empty:
            self.empty = empty
            self._redraw(jump_to_mark=False)
        if list(rows) == self.rows and marked == self.marked:
            return  # unchanged: keep the cursor and scroll position, and skip the redraw
        jump = marked != self.marked and bool(marked)
        self.rows, self.marked = list(rows), marked
        self._redraw(jump_to_mark=jump)

    def visible_rows(self) -> list[Row]:
        words = tuple(self.filter_input.value.lower().split())
        return [row for row in self.rows if row.matches(words)]

    def start_filter(self) -> None:
        """Give the filter line the focus (it holds it until it loses it)."""
        self.filter_input.can_focus = True
        self.filter_input.focus()

    def on_mouse_down(self, event) -> None:
        if event.widget is self.filter_input:
            self.start_filter()

    def on_descendant_blur(self, event) -> None:
        if event.widget is self.filter_input:
            self.filter_input.can_focus = False

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._redraw(jump_to_mark=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()

    def _redraw(self, jump_to_mark: bool) -> None:
        table = self.table
        cursor = table.cursor_row
        table.clear()
        first_marked = None
        for i, row in enumerate(self.visible_rows()):
            marked = bool(row.keys & self.marked)
            if marked and first_marked is None:
                first_marked = i
            style = "bold" if marked else ""
            table.add_row(MARK if marked else " ", *(Text(c, style=style) for c in row.cells))
        if jump_to_mark and first_marked is not None:
            cursor = first_marked
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)
        typed = self.filter_input.value.strip()
        self.query_one(".placeholder", Static).update(
            f"Nothing matches “{typed}” (Esc clears the filter)." if self.rows else self.empty)
        self.set_class(not table.row_count, "-empty")
