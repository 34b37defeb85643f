"""The live progress line: drawn on a terminal once the work takes a moment, never on a pipe."""

import io

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
    screen = Terminal()
    with Progress(screen) as line:
        line.update("reading namespaces: 1/9")  # too soon: quick work shows nothing
        assert screen.getvalue() == ""
        monkeypatch.setattr(progress_module, "DELAY", 0.0)
        monkeypatch.setattr(progress_module, "MIN_INTERVAL", 0.0)
        line.update("reading namespaces: 5/9")
        assert screen.getvalue().endswith("reading namespaces: 5/9")
    assert screen.getvalue().endswith("\r\x1b[K")


def test_a_single_status_shows_once_its_work_has_taken_the_delay(monkeypatch):
    import time

    monkeypatch.setattr(progress_module, "DELAY", 0.05)
    screen = Terminal()
    with Progress(screen) as line:
        line.update("repairing 1/2: mtu-mismatch eth0")
        time.sleep(0.2)
        assert screen.getvalue().endswith("repairing 1/2: mtu-mismatch eth0")
    quick = Terminal()
    with Progress(quick) as line:
        line.update("repairing 2/2")
    time.sleep(0.1)
    assert quick.getvalue() == ""  # done before the delay: never drawn
