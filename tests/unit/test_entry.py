"""The process boundary keeps every Ctrl-C (netdiag/entry.py): one inherited as ignored is
taken back, and one Python drops in a callback is raised again at the next call. Each case runs
in a process of its own (it changes the signal handler and the interpreter's hooks)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python(code: str, **kwargs) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, **kwargs)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_sigint_inherited_as_ignored_is_taken_back():
    code = ("import signal; from netdiag import entry; "
            "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN); entry._keep_ctrl_c(); "
            "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    ignoring = python(code, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert ignoring.split() == ["True", "True"]


DROPPED = """
import weakref
from netdiag import entry

entry._keep_ctrl_c()


class Pool:
    pass


def callback(_):  # where the signal handler happened to run: Python prints it and goes on
    raise KeyboardInterrupt


pool = Pool()
ref = weakref.ref(pool, callback)
try:
    del pool
    print("the command went on", flush=True)
except KeyboardInterrupt:
    print("interrupted")
"""


def test_a_ctrl_c_dropped_in_a_weakref_callback_stops_the_command_all_the_same():
    done = subprocess.run([sys.executable, "-c", DROPPED], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "interrupted", done
    assert done.stderr == ""  # nor is it printed as ignored


def test_other_exceptions_in_callbacks_are_still_reported():
    code = DROPPED.replace("raise KeyboardInterrupt", "raise ValueError('in a callback')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "the command went on"
    assert "ValueError: in a callback" in done.stderr
