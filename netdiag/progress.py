"""A live progress line on stderr for work that can take more than a second.

Nothing is drawn in the first DELAY: a status given that early is drawn when DELAY is up
(by a timer thread) if the work is still going. Use it after a process has decided whether
to fork (collect/fanout.py forks only while single-threaded).

On a terminal the line is rewritten in place and erased when the work ends; on a pipe or a
file nothing is written at all, so reports and logs stay clean. Whatever the work wants to
say at its end (what it probed, what it built) it prints itself, as ordinary lines.
"""

from __future__ import annotations

import sys
import threading
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
        self._waiting = ""  # the latest text that came too early, drawn once DELAY is up
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._ended = False

    def update(self, text: str) -> None:
        if not self.live:
            return
        with self._lock:
            if self._ended:  # a worker thread still at it after a Ctrl-C: the line is gone
                return
            now = time.monotonic()
            if now - self._started < DELAY:
                # Work that says where it is only once (a repair step) still gets its line
                # if it takes long enough.
                self._waiting = text
                if self._timer is None:
                    self._timer = threading.Timer(DELAY - (now - self._started), self._late)
                    self._timer.daemon = True
                    self._timer.start()
                return
            if now - self._last < MIN_INTERVAL:
                return
            self._draw(text, now)

    def _late(self) -> None:
        with self._lock:
            if not self._ended and self._waiting and not self._shown:
                self._draw(self._waiting, time.monotonic())

    def _draw(self, text: str, now: float) -> None:
        self._last = now
        width = _columns() - 1
        self._shown = True  # first: a Ctrl-C raised in the write must still find it erased
        self.stream.write("\r\x1b[K" + text[:width])
        self.stream.flush()

    def done(self) -> None:
        with self._lock:
            self._ended = True
            timer = self._timer
        if timer is not None:  # gone before the caller goes on (a fork wants one thread)
            timer.cancel()
            timer.join(timeout=1)
        with self._lock:
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
