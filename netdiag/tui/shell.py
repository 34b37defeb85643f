"""The shell `s` opens in the attached namespace, its prompt saying which namespace it is in.

bash reads the user's ~/.bashrc (which sets PS1 on most systems) and then a small rc file of
ours that puts `[netdiag: NAME]` before that prompt; other shells (sh, dash, ash) take PS1
from the environment. NETDIAG_NS names the namespace for a prompt of the user's own.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from contextlib import contextmanager
from pathlib import Path

from netdiag.model import NamespaceRef

# A prompt expands $(…), `…` and backslashes: a name is shown with only harmless characters.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/@+=-]")


def label(ref: NamespaceRef) -> str:
    return _UNSAFE.sub("?", ref.display) or str(ref.id)


@contextmanager
def shell_command(shell: str, ref: NamespaceRef, enter: bool):
    """(argv, environment) of an interactive `shell` in `ref`'s namespace (`enter`: through
    nsenter, else the shell runs where netdiag runs); the rc file lives while in the block."""
    name = label(ref)
    prefix = f"[netdiag: {name}] "
    env = dict(os.environ, NETDIAG_NS=name, PS1=f"{prefix}$ ")
    argv = [shell]
    with tempfile.TemporaryDirectory(prefix="netdiag-shell-") as folder:
        if Path(shell).name == "bash":
            rc = Path(folder, "bashrc")
            rc.write_text('[ -f ~/.bashrc ] && . ~/.bashrc\n'
                          f'PS1={shlex.quote(prefix)}"${{PS1:-\\$ }}"\n')
            argv += ["--rcfile", str(rc)]
        if enter:
            argv = ["nsenter", f"--net={ref.path}", *argv]
        yield argv, env
