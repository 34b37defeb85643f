"""Smoke test in a real terminal: `netdiag tui --ns REF` in a detached tmux session shows the
namespace's interfaces, and its shell action suspends the app for a shell inside the namespace
and resumes after it. The session runs on its own tmux socket and is killed at the end."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import sh

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux")]


def _capture(tmux: list[str], session: str) -> str:
    done = subprocess.run(tmux + ["capture-pane", "-p", "-t", session], capture_output=True,
                          text=True)
    return done.stdout


def _wait_for(tmux: list[str], session: str, *texts: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    screen = _capture(tmux, session)
    while not all(text in screen for text in texts):
        assert time.monotonic() < deadline, f"{texts} not shown; the screen:\n{screen}"
        time.sleep(0.2)
        screen = _capture(tmux, session)
    return screen


def test_tui_in_tmux_shows_the_interfaces(netns_factory):
    ns = netns_factory("tmux")
    sh(f"ip -n {ns} link add ndtuiveth0 type veth peer name ndtuiveth1")
    session = f"ndt-tui-{netns_factory.tag}"
    tmux = ["tmux", "-L", session]
    command = f"SHELL=/bin/sh {sys.executable} -m netdiag tui --ns {ns}"
    subprocess.run(tmux + ["new-session", "-d", "-s", session, "-x", "80", "-y", "24", command],
                   check=True)
    try:
        _wait_for(tmux, session, "ndtuiveth0", "ndtuiveth1", f"{ns} · named · live")
        subprocess.run(tmux + ["send-keys", "-t", session, "s"], check=True)
        _wait_for(tmux, session, "exit to return")
        subprocess.run(tmux + ["send-keys", "-t", session, "ip -o link show ndtuiveth0",
                               "Enter"], check=True)
        _wait_for(tmux, session, "ndtuiveth0@ndtuiveth1")  # the shell is in the namespace
        subprocess.run(tmux + ["send-keys", "-t", session, "exit", "Enter"], check=True)
        _wait_for(tmux, session, f"{ns} · named · live", "Links")  # and the app is back
    finally:
        subprocess.run(tmux + ["kill-session", "-t", session], capture_output=True)
