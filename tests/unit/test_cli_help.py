"""The command line explains itself: every option has help with an example, every command's
--help ends with examples that parse, and `netdiag --help`/`--version` load no command."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

import pytest

from netdiag.checks import registry
from netdiag.cli import COMMANDS, EXAMPLES, build_parser


def _actions(parser: argparse.ArgumentParser, path: tuple[str, ...]):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


def test_every_option_has_help_and_every_value_an_example():
    missing, no_example = [], []
    for path, action in _actions(build_parser(everything=True), ("netdiag",)):
        name = " ".join((*path, "/".join(action.option_strings) or action.dest))
        if not action.help:
            missing.append(name)
        elif action.nargs != 0 and action.choices is None and "e.g." not in action.help:
            no_example.append(name)
    assert not missing, f"options without help: {missing}"
    assert not no_example, f"options taking a value without an example: {no_example}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_commands_help_ends_with_examples_that_parse(command, capsys):
    parser = build_parser(everything=True)
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    text = capsys.readouterr().out
    assert "examples:\n" in text
    for example in EXAMPLES[command]:
        assert f"  {example}\n" in text
        # The command itself, before a shell's redirection or pipe.
        words = shlex.split(example.split(" > ")[0].split(" | ")[0].removeprefix("source <(")
                            .rstrip(")"))
        args = parser.parse_args(words[1:])
        assert args.command == command


def test_top_level_help_and_version_load_no_command_module():
    probe = ("import sys\nfrom netdiag.cli import main\n"
             "for argv in (['--help'], ['--version']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('netdiag.commands.')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
    assert all(name in done.stdout for name in COMMANDS)  # yet --help lists every command


@pytest.mark.parametrize("asked", ["expected-flow-blocked", "ND921", "nd921",
                                   "Expected-Flow-Blocked", " nd921 "])
def test_a_rule_is_found_by_name_or_code_in_any_case(asked):
    assert registry.find(asked).RULE.code == "ND921"
