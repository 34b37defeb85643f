"""Shell completion (exercised in a real bash) and the manual page (checked by groff), both
written from the parser."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netdiag.cli import COMMANDS, build_parser
from netdiag.commands.completion import bash_script
from netdiag.commands.man import man_page

BIN = str(Path(sys.executable).parent)  # where the `netdiag` the script calls back lives


def complete(*words: str) -> list[str]:
    """What bash offers for the last of `words`, with netdiag's script loaded."""
    script = bash_script(build_parser(everything=True))
    probe = (f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
             "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n_netdiag\n"
             'printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    return [line for line in done.stdout.splitlines() if line]


def test_the_script_is_valid_bash_and_zsh_loads_it_through_bashcompinit():
    script = bash_script(build_parser(everything=True))
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    done = subprocess.run([sys.executable, "-m", "netdiag", "completion", "zsh"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("autoload -U +X bashcompinit && bashcompinit\n")
    assert done.stdout.endswith("complete -F _netdiag netdiag\n")


@pytest.mark.parametrize("words, offered", [
    (("netdiag", ""), set(COMMANDS)),
    (("netdiag", "ch"), {"check"}),
    (("netdiag", "lab", "u"), {"up"}),
    (("netdiag", "check", "--for"), {"--format"}),
    (("netdiag", "check", "--format", "s"), {"sarif"}),
    (("netdiag", "explain", "mtu"), {"mtu-mismatch"}),
    (("netdiag", "check", "--rule", "ND92"), {"ND921"}),
    (("netdiag", "lab", "up", "broken-m"), {"broken-mtu"}),
    (("netdiag", "path", "host", "10.0.0.1", "--pr"), {"--proto", "--probe", "--probe-external"}),
    (("netdiag", "show", "--ns", "host", "ro"), {"routes"}),
])
def test_completion_offers_commands_options_choices_rules_and_labs(words, offered):
    assert set(complete(*words)) == offered


def test_lab_names_are_offered_where_a_lab_is_named_only():
    script = bash_script(build_parser(everything=True))

    def case(path: str) -> str:
        return script.split(f'    "{path}")\n', 1)[1].split(" ;;\n    \"", 1)[0]

    for path in ("lab down", "lab status", "lab exec", "repair"):
        assert "--candidates labs" in case(path), path
    for path in ("net create", "net inspect", "net rm"):  # networks' names, not labs'
        assert "--candidates labs" not in case(path), path


@pytest.mark.skipif(os.geteuid() != 0, reason="listing namespaces needs root")
def test_namespace_references_are_completed_from_what_is_there_now():
    assert complete("netdiag", "path", "ho") == ["host"]
    assert complete("netdiag", "check", "--ns", "ho") == ["host"]


def test_the_manual_page_covers_every_command_and_option_and_groff_reads_it_cleanly():
    parser = build_parser(everything=True)
    page = man_page(parser)
    assert page.startswith('.\\" -*- coding: utf-8 -*-\n.TH NETDIAG 1 ')
    done = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-k"], input=page,
                          capture_output=True, text=True, check=True)
    assert done.stderr == "", done.stderr
    rendered = done.stdout.replace("\b", "")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name in COMMANDS:
                assert f"netdiag {name}" in page.replace("\\-", "-"), name
    for option in ("--probe-external", "--all-fields", "--fail-on", "--candidates"):
        assert (option in page.replace("\\-", "-")) is (option != "--candidates"), option
    assert "EXIT STATUS" in page and len(rendered) > 10000
