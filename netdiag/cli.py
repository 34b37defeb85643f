"""The `netdiag` command: parses arguments, runs one subcommand, and is the error boundary.

Each subcommand lives in netdiag/commands/ with `register(subparsers)` (which sets
`func` on its parser) and returns an exit code. Only the module of the command being run is
imported (the others pull in netlink, pydantic and Textual, which would slow every start),
except for `--help`, which lists them all. Every NetdiagError becomes one line on stderr and
the error's exit code; nothing below this module prints a traceback or calls exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

import netdiag
from netdiag import __version__
from netdiag.errors import EXIT_USAGE, NetdiagError

COMMANDS = ("ns", "show", "snapshot", "diff", "check", "path", "explain", "repair", "lab", "net",
            "tui")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, with netdiag's exit code for them."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"netdiag: error: {message} (see `{self.prog} --help`)\n")


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `wanted`, only that command's module is loaded, the others get
    placeholders (enough for argparse to know the names)."""
    parser = _Parser(prog="netdiag", description=netdiag.__doc__.strip())
    parser.add_argument("--version", action="version", version=f"netdiag {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=_Parser)
    subparsers.required = True
    for name in COMMANDS:
        if wanted in (None, name):
            import_module(f"netdiag.commands.{name}").register(subparsers)
        else:
            subparsers.add_parser(name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(wanted if wanted in COMMANDS else None).parse_args(argv)
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
