"""The probe runner gives way to a Ctrl-C at once, not after the probes left (netdiag.probe)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from netdiag.model import Snapshot
from netdiag.probe import runner


def test_a_ctrl_c_while_probing_is_not_held_until_every_probe_is_done(monkeypatch):
    probing, over = threading.Event(), threading.Event()

    def slow_probes(*args):  # a probe run that would go on for its whole budget
        probing.set()
        over.wait(10)
        return []

    monkeypatch.setattr(runner, "_run_all", slow_probes)
    main = threading.main_thread().ident

    def ctrl_c() -> None:
        probing.wait(5)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=ctrl_c, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.measure(Snapshot(created_at="", host=None, namespaces=()), [])
        assert time.monotonic() - started < 5
    finally:
        over.set()  # the abandoned probe thread ends too
