"""Smoke test in a real terminal: `netdiag tui --ns REF` in a detached tmux session shows the
namespace's interfaces. The session runs on its own tmux socket and is killed at the end."""

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


def test_tui_in_tmux_shows_the_interfaces(netns_factory):
    ns = netns_factory("tmux")
    sh(f"ip -n {ns} link add ndtuiveth0 type veth peer name ndtuiveth1")
    session = f"ndt-tui-{netns_factory.tag}"
    tmux = ["tmux", "-L", session]
    command = f"{sys.executable} -m netdiag tui --ns {ns}"
    subprocess.run(tmux + ["new-session", "-d", "-s", session, "-x", "80", "-y", "24", command],
                   check=True)
    try:
        deadline = time.monotonic() + 15
        screen = _capture(tmux, session)
        while not ("ndtuiveth0" in screen and "ndtuiveth1" in screen):
            assert time.monotonic() < deadline, f"interfaces not shown; the screen:\n{screen}"
            time.sleep(0.2)
            screen = _capture(tmux, session)
        assert f"{ns} · named · live" in screen
    finally:
        subprocess.run(tmux + ["kill-session", "-t", session], capture_output=True)
