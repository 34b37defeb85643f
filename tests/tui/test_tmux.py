"""Smoke test in a real terminal: `netdiag tui --ns REF` in a detached tmux session shows the
namespace's interfaces, and its shell action suspends the app for a shell inside the namespace
and resumes after it. The session runs on its own tmux socket and is killed at the end. Run as
a container runs it (root without CAP_SYS_ADMIN), the shell in its own namespace still works,
and entering another is shown unavailable, with the reason."""

from __future__ import annotations

import shutil
import sys

import pytest

from tests.conftest import sh
from tests.terminal import tmux_session

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux")]


def test_tui_in_tmux_shows_the_interfaces(netns_factory):
    ns = netns_factory("tmux")
    sh(f"ip -n {ns} link add ndtuiveth0 type veth peer name ndtuiveth1")
    command = f"SHELL=/bin/sh {sys.executable} -m netdiag tui --ns {ns}"
    with tmux_session(command, prefix="ndt-tui") as terminal:
        terminal.wait_for("ndtuiveth0", "ndtuiveth1", f"{ns} · named · live")
        terminal.keys("s")
        terminal.wait_for("exit to return")
        terminal.keys("ip -o link show ndtuiveth0", "Enter")
        terminal.wait_for("ndtuiveth0@ndtuiveth1")  # the shell is in the namespace
        terminal.keys("exit", "Enter")
        terminal.wait_for(f"{ns} · named · live", "Links")  # and the app is back


def _without_sys_admin(ns: str, tui_args: str) -> str:
    return (f"SHELL=/bin/sh ip netns exec {ns} setpriv --inh-caps=-sys_admin "
            f"--bounding-set=-sys_admin -- {sys.executable} -m netdiag tui {tui_args}")


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_without_sys_admin_the_shell_in_its_own_namespace_needs_no_nsenter(netns_factory):
    ns = netns_factory("tmux")
    sh(f"ip -n {ns} link add ndtuiveth0 type veth peer name ndtuiveth1")
    with tmux_session(_without_sys_admin(ns, "--ns self"), (120, 30), "ndt-tui") as terminal:
        screen = terminal.wait_for("ndtuiveth0", "· live")
        assert "unavailable" not in screen, screen
        terminal.keys("s")
        terminal.wait_for("exit to return")
        terminal.keys("ip -o link show ndtuiveth0", "Enter")
        terminal.wait_for("ndtuiveth0@ndtuiveth1")
        terminal.keys("exit", "Enter")
        terminal.wait_for("ndtuiveth0", "· live")


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_without_sys_admin_entering_another_namespace_is_shown_unavailable(netns_factory):
    here, there = netns_factory("tmuxa"), netns_factory("tmuxb")
    with tmux_session(_without_sys_admin(here, f"--ns {there}"), (120, 30),
                      "ndt-tui") as terminal:
        screen = terminal.wait_for("unavailable:", "could not be read")
        assert "shell (entering another namespace needs CAP_SYS_ADMIN)" in screen, screen
        assert "could not be read: needs CAP_SYS_ADMIN: cannot enter" in \
            " ".join(screen.split()), screen
        terminal.keys("s", "?")  # `?` shows the help, unless `s` left the app
        screen = terminal.wait_for("Attached namespace")  # past the `s`: the app has keys
        assert "exit to return" not in screen  # disabled: it did nothing
