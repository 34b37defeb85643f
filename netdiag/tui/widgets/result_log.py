"""The panel of results under the tabs (paths, probes, captures, repairs): a RichLog whose
lines wrap at its own width, under their own indentation (a report's structure).

RichLog measures a line against the app's console, which is as wide as the terminal Rich
finds: where there is none (headless, as the tests and the SVG snapshots run) that is 80
columns, and a 160-column panel wrapped every long line at 78.
"""

from __future__ import annotations

from rich.padding import Padding
from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog


class ResultLog(RichLog):
    def __init__(self, **kwargs) -> None:
        super().__init__(wrap=True, markup=False, **kwargs)
        self._columns = 0  # the panel's width when last laid out (0: not yet)

    def on_resize(self, event: Resize) -> None:
        # Before RichLog's own handler (Textual calls the subclass's first), which writes
        # what came before the panel had a size.
        if event.size.width:
            self._columns = event.size.width

    def write(self, content, width: int | None = None, expand: bool = False,
              shrink: bool = True, scroll_end: bool | None = None,
              animate: bool = False) -> ResultLog:
        if width is None and self._columns:
            # The vertical scrollbar's room kept: a line written before the panel fills up
            # still fits once the scrollbar is shown.
            width = max(1, self._columns - self.styles.scrollbar_size_vertical)
        return super().write(content, width, expand, shrink, scroll_end, animate)

    def write_indented(self, line: Text) -> ResultLog:
        """`line` with what it wraps onto indented as far as the line is (a path's rule under
        its `rule:`, not at the panel's edge)."""
        indent = len(line.plain) - len(line.plain.lstrip(" "))
        return self.write(Padding(line[indent:], (0, 0, 0, indent)) if indent else line)
