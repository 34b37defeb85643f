"""The probe runner gives way to a Ctrl-C at once, not after the probes left (netdiag.probe).

The case runs in a Python of its own, as tests/unit/test_entry.py's do: it installs a SIGINT
handler and signals its own main thread, and in the suite's process what earlier tests left
behind (two clean-clone runs in three) held the interrupt until the probe was over."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CASE = """
import signal, threading
from netdiag.model import Snapshot
from netdiag.probe import runner

probing, over, finished = threading.Event(), threading.Event(), threading.Event()

def slow_probes(*args):  # a probe run that would go on for its whole budget
    probing.set()
    over.wait(10)
    finished.set()
    return []

runner._run_all = slow_probes
signal.signal(signal.SIGINT, signal.default_int_handler)
main = threading.main_thread().ident

def ctrl_c():
    probing.wait(5)
    signal.pthread_kill(main, signal.SIGINT)

threading.Thread(target=ctrl_c, daemon=True).start()
try:
    runner.measure(Snapshot(created_at="", host=None, namespaces=()), [])
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted while probing" if not finished.is_set() else "interrupted after")
finally:
    over.set()  # the abandoned probe thread ends too
"""


def test_a_ctrl_c_while_probing_is_not_held_until_every_probe_is_done():
    # The case installs Python's handler itself: a suite started with SIGINT ignored (a
    # background job of a non-interactive shell) passes that on, and none would be there.
    done = subprocess.run([sys.executable, "-c", CASE], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "interrupted while probing", done
