"""How text output looks on the reader's screen, decided once per command.

Colour only where it helps: on a terminal (`--color auto`, the default) unless `NO_COLOR` is
set (no-color.org) or the terminal is dumb; always with `--color always` (for `less -R`);
never with `--color never` or on a pipe, so that what scripts and files get is plain text.
Tables fit the terminal's width: on a terminal, a table wider than it wraps its widest cells
instead of running off the edge (rich does the layout); on a pipe, rows stay one line each,
aligned, easy to grep. JSON, JUnit and SARIF never go through here.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

CHOICES = ("auto", "always", "never")

# SGR codes, the few the output uses: severities, emphasis, and what is secondary.
_SGR = {"error": "1;31", "warning": "33", "info": "36", "ok": "32", "bold": "1", "dim": "2",
        "heading": "1;4"}


@dataclass(frozen=True, slots=True)
class Look:
    color: bool = False
    width: int = 0  # the terminal's columns; 0 on a pipe (lines as long as they are)

    def paint(self, text: str, style: str) -> str:
        """`text` in `style` (error, warning, info, ok, bold, dim, heading) when colour is on."""
        if not self.color or not text or style not in _SGR:
            return text
        return f"\x1b[{_SGR[style]}m{text}\x1b[0m"


def look(choice: str = "auto", stream: TextIO | None = None) -> Look:
    stream = stream or sys.stdout
    tty = _isatty(stream)
    if choice == "always":
        color = True
    elif choice == "never":
        color = False
    else:
        color = tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    width = shutil.get_terminal_size((100, 24)).columns if tty else 0
    return Look(color, width)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


PLAIN = Look()  # a pipe's: no colour, no width


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], look: Look = PLAIN
          ) -> str:
    """The rows under their headers, aligned; wrapped to the terminal's width when wider."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r]
                                           for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if look.width and sum(widths) + 2 * (len(widths) - 1) > look.width:
        return _wrapped(cells, look)
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines[0] = look.paint(lines[0], "bold")
    return "\n".join(lines) + "\n"


def _wrapped(cells: list[list[str]], look: Look) -> str:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    grid = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), show_edge=False,
                 header_style="bold" if look.color else "")
    for header in cells[0]:
        grid.add_column(header, overflow="fold")
    for row in cells[1:]:
        grid.add_row(*row)
    out = StringIO()
    Console(file=out, width=look.width, force_terminal=look.color, no_color=not look.color,
            color_system="standard" if look.color else None, highlight=False,
            emoji=False, markup=False).print(grid)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"
