"""A real terminal for tests: a program in a detached tmux session on a tmux server of its own
(`tmux -L NAME`, so nobody's sessions are touched), read with capture-pane and typed into with
send-keys. The session is killed at the end, also when the test fails."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest


class Terminal:
    def __init__(self, name: str):
        self.name = name
        self.tmux = ["tmux", "-L", name]

    def screen(self) -> str:
        return subprocess.run(self.tmux + ["capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True).stdout

    def wait_for(self, *texts: str, timeout: float = 30) -> str:
        """The screen, once every one of `texts` is on it."""
        deadline = time.monotonic() + timeout
        screen = self.screen()
        while not all(text in screen for text in texts):
            assert time.monotonic() < deadline, f"{texts} not shown; the screen:\n{screen}"
            time.sleep(0.2)
            screen = self.screen()
        return screen

    def keys(self, *keys: str) -> None:
        subprocess.run(self.tmux + ["send-keys", "-t", self.name, *keys], check=True)


@contextmanager
def tmux_session(command: str | Sequence[str], size: tuple[int, int] = (80, 24),
                 prefix: str = "ndt-term") -> Iterator[Terminal]:
    """`command` (a shell line, or an argv run as it is) in a new terminal of `size`."""
    if not shutil.which("tmux"):
        pytest.skip("needs tmux")
    terminal = Terminal(f"{prefix}-{time.monotonic_ns() % 10**8}")
    argv = [command] if isinstance(command, str) else list(command)
    subprocess.run(terminal.tmux + ["new-session", "-d", "-s", terminal.name, "-x",
                                    str(size[0]), "-y", str(size[1]), *argv], check=True)
    try:
        yield terminal
    finally:
        subprocess.run(terminal.tmux + ["kill-session", "-t", terminal.name],
                       capture_output=True)
