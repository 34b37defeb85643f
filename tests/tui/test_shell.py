"""The shell the TUI opens says in its prompt which namespace it is in (bash after the
user's own ~/.bashrc, sh from the environment); names cannot smuggle commands into it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from netdiag.model import NamespaceRef, NsKind
from netdiag.tui.shell import label, shell_command

WEB = NamespaceRef(id=4026532301, kind=NsKind.DOCKER, path="/proc/1/ns/net",
                   label="web", container="web")


def prompt(shell: str, ref: NamespaceRef, home) -> str:
    """The PS1 an interactive `shell` started as the TUI starts it has (here: no nsenter)."""
    with shell_command(shell, ref, enter=False) as (argv, env):
        env["HOME"] = str(home)
        done = subprocess.run([*argv, "-i", "-c", 'printf "%s" "$PS1"'], env=env,
                              capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_the_prompt_names_the_namespace(shell, tmp_path):
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"no {shell} here")
    assert prompt(path, WEB, tmp_path).startswith("[netdiag: web] ")


def test_bash_keeps_the_users_prompt_after_the_name(tmp_path):
    (tmp_path / ".bashrc").write_text("PS1='mine> '\n")
    assert prompt(shutil.which("bash"), WEB, tmp_path) == "[netdiag: web] mine> "


def test_a_name_cannot_run_commands_in_the_prompt():
    evil = NamespaceRef(id=1, kind=NsKind.NAMED, path="/run/netns/x",
                        name="x$(touch /tmp/pwned)`id`\\u")
    assert label(evil) == "x??touch?/tmp/pwned??id??u"


def test_entering_goes_through_nsenter():
    with shell_command("/bin/sh", WEB, enter=True) as (argv, env):
        assert argv == ["nsenter", "--net=/proc/1/ns/net", "/bin/sh"]
        assert env["NETDIAG_NS"] == "web"
