"""The probe runner gives way to a Ctrl-C at once, not after the probes left (netdiag.probe)."""

from __future__ import annotations

import signal
import threading

import pytest

from netdiag.model import Snapshot
from netdiag.probe import runner


def test_a_ctrl_c_while_probing_is_not_held_until_every_probe_is_done(monkeypatch):
    probing, over, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_probes(*args):  # a probe run that would go on for its whole budget
        probing.set()
        over.wait(10)
        finished.set()
        return []

    monkeypatch.setattr(runner, "_run_all", slow_probes)
    # Python's own handler, even when the suite was started with SIGINT ignored (a background
    # job of a non-interactive shell): then no handler is installed and the signal is lost.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident

    def ctrl_c() -> None:
        probing.wait(5)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=ctrl_c, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.measure(Snapshot(created_at="", host=None, namespaces=()), [])
        assert not finished.is_set()  # the interrupt did not wait for the probes
    finally:
        over.set()  # the abandoned probe thread ends too
        signal.signal(signal.SIGINT, previous)
