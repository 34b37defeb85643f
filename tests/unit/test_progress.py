"""The live progress line: drawn on a terminal once the work takes a moment, never on a pipe."""

import io
import time

from netdiag import progress as progress_module
from netdiag.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_on_a_pipe():
    pipe = io.StringIO()
    with Progress(pipe) as line:
        line.update("reading namespaces: 1/9")
    assert pipe.getvalue() == ""


def test_a_moment_passes_before_the_line_shows_and_it_is_erased_at_the_end(monkeypatch):
    monkeypatch.setattr(progress_module, "DELAY", 3600.0)
    screen = Terminal()
    with Progress(screen) as line:
        line.update("reading namespaces: 1/9")  # too soon: quick work shows nothing
        assert screen.getvalue() == ""
        monkeypatch.setattr(progress_module, "DELAY", 0.0)
        monkeypatch.setattr(progress_module, "MIN_INTERVAL", 0.0)
        line.update("reading namespaces: 5/9")
        assert screen.getvalue().endswith("reading namespaces: 5/9")
    assert screen.getvalue().endswith("\r\x1b[K")


def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.01)


def test_a_single_status_shows_once_its_work_has_taken_the_delay(monkeypatch):
    monkeypatch.setattr(progress_module, "DELAY", 0.05)
    screen = Terminal()
    with Progress(screen) as line:
        line.update("repairing 1/2: mtu-mismatch eth0")
        until(lambda: screen.getvalue().endswith("repairing 1/2: mtu-mismatch eth0"))


def test_work_done_before_the_delay_is_never_drawn(monkeypatch):
    monkeypatch.setattr(progress_module, "DELAY", 3600.0)
    quick = Terminal()
    with Progress(quick) as line:
        line.update("repairing 2/2")
    timer = line._timer
    assert timer is not None and not timer.is_alive()  # ended: it can draw nothing any more
    assert quick.getvalue() == ""


def test_nothing_is_drawn_after_the_end(monkeypatch):
    """A worker still at it after a Ctrl-C (probes) does not draw over what comes next."""
    monkeypatch.setattr(progress_module, "DELAY", 0.0)
    monkeypatch.setattr(progress_module, "MIN_INTERVAL", 0.0)
    screen = Terminal()
    with Progress(screen) as line:
        line.update("probing 1/9")
    line.update("probing 2/9")
    assert screen.getvalue() == "\r\x1b[Kprobing 1/9\r\x1b[K"
