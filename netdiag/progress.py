"""A live progress line on stderr for work that can take more than a second.

On a terminal the line is rewritten in place and erased when the work ends; on a pipe or a
file nothing is written at all, so reports and logs stay clean. Whatever the work wants to
say at its end (what it probed, what it built) it prints itself, as ordinary lines.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

MIN_INTERVAL = 0.1  # seconds between two redraws: a terminal does not need more
DELAY = 0.5  # nothing is drawn for work done sooner: a line that flashes helps nobody


class Progress:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty()
        self._last = 0.0
        self._shown = False
        self._started = time.monotonic()

    def update(self, text: str) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last < MIN_INTERVAL or now - self._started < DELAY:
            return
        self._last = now
        width = _columns() - 1
        self.stream.write("\r\x1b[K" + text[:width])
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.done()


def _columns() -> int:
    import shutil

    return shutil.get_terminal_size((80, 24)).columns
