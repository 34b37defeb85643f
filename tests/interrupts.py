"""Ctrl-C at a chosen point of a netdiag command, the point read from the command's own output.

`interrupt_at` runs `python -m netdiag ARGS` with stderr on a pseudo-terminal, where netdiag
draws its progress line, and with that line's delay and pacing set to 0, so every step is
drawn ("[19/126] connect c17 ...", "reading namespaces: 12/80", "probing 3/9: dns ..."). Just
before netdiag.entry imports the CLI (inside its try block) it draws "importing". Once a line
satisfies `when`, the process gets SIGINT; what it then shows on the terminal and its exit code
are returned. A run that ends before any line satisfies `when` fails the test: the signal would
have come too late, and a test that cannot tell has not tested anything.

`ignored=True` starts the command with SIGINT ignored, as every background job of a
non-interactive shell is (`netdiag lab up x.yaml &` in a script, a test runner started so).
"""

from __future__ import annotations

import codecs
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ERASE = "\x1b[K"

LAUNCH = """
import sys
from netdiag import progress
progress.DELAY = progress.MIN_INTERVAL = 0

class ImportMarker:
    def find_spec(self, name, path=None, target=None):
        if name == "netdiag.cli":
            sys.stderr.write("\\r\\x1b[Kimporting\\r\\x1b[K")
            sys.stderr.flush()
        return None

sys.meta_path.insert(0, ImportMarker())
sys.argv[0] = "netdiag"
from netdiag.entry import run
run()
"""


@dataclass(frozen=True)
class Stopped:
    returncode: int
    seen: str  # the line after which SIGINT was sent
    shown: list[str]  # stderr as the terminal shows it at the end, one entry a line
    raw: str  # stderr as written
    stdout: str

    def describe(self) -> str:
        return f"exit {self.returncode} after SIGINT at {self.seen!r}; stderr:\n" + \
            "\n".join(self.shown)


def shown_lines(raw: str) -> list[str]:
    """What a terminal shows of `raw`: a progress line erased ("\\r\\x1b[K") shows nothing."""
    lines = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        text = line.rsplit(ERASE, 1)[-1].replace("\r", "")
        if text:
            lines.append(text)
    return lines


def progress_step(line: str) -> tuple[int, int] | None:
    """(done, total) of a progress line: "[19/126] ...", "reading namespaces: 12/80"."""
    found = re.search(r"(\d+)/(\d+)", line)
    return (int(found[1]), int(found[2])) if found else None


def interrupt_at(args: list[str], when: Callable[[str], bool], ignored: bool = False,
                 timeout: float = 60) -> Stopped:
    """`netdiag ARGS`, sent SIGINT once it has drawn a line for which `when(line)` holds."""
    master, slave = pty.openpty()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # "→" may come in halves
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args], cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=out, stderr=slave, close_fds=True,
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored
            else None)
        os.close(slave)
        raw, seen, late = "", "", ""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if not ready:
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every holder of the terminal's other end is gone
                    break
                if not chunk:
                    break
                raw += decoder.decode(chunk)
                if not seen:
                    seen = next((text.replace("\r", "") for text in raw.split(ERASE)
                                 if when(text.replace("\r", ""))), "")
                    if seen and process.poll() is None:
                        process.send_signal(signal.SIGINT)
                    elif seen:  # the run has ended: the signal would come too late
                        late = seen
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            os.close(master)
            if process.poll() is None:
                process.kill()
                process.wait()
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    assert seen and not late, (
        f"netdiag {' '.join(args)} ended (exit {process.returncode}) before SIGINT could be "
        f"sent{f' after {late!r}' if late else ''}; stderr:\n" + "\n".join(shown_lines(raw)))
    return Stopped(process.returncode, seen, shown_lines(raw), raw, stdout)
