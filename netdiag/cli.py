"""The `netdiag` command: parses arguments, runs one subcommand, and is the error boundary.

Each subcommand lives in netdiag/commands/ with `register(subparsers)` (which sets
`func` on its parser) and returns an exit code. Every NetdiagError becomes one line on stderr
and the error's exit code; nothing below this module prints a traceback or calls exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from netdiag import __version__
from netdiag.commands import (check, diff, explain, lab, net, ns, repair, show, snapshot, tui)
from netdiag.errors import EXIT_USAGE, NetdiagError

COMMANDS = (ns, show, snapshot, diff, check, explain, repair, lab, net, tui)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, with netdiag's exit code for them."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"netdiag: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="netdiag", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"netdiag {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=_Parser)
    subparsers.required = True
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NetdiagError as exc:
        print(f"netdiag: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("netdiag: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `netdiag show | head`
        return 0
