"""`netdiag man`: the manual page, written from the parser (every command, option and example),
so it never falls behind. Install: `netdiag man > /usr/local/share/man/man1/netdiag.1`.
"""

from __future__ import annotations

import argparse
import re
from datetime import date

from netdiag import __version__
from netdiag.cli import EXAMPLES, SUMMARIES, build_parser
from netdiag.commands.completion import leaves


def register(subparsers) -> None:
    parser = subparsers.add_parser("man", help=SUMMARIES["man"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(man_page(build_parser(everything=True)), end="")
    return 0




def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.MULTILINE)


def man_page(parser: argparse.ArgumentParser) -> str:
    import netdiag

    helps = _helps(parser)
    lines = ['.\\" -*- coding: utf-8 -*-',
             f'.TH NETDIAG 1 "{date.today().isoformat()}" "netdiag {__version__}" '
             '"netdiag manual"',
             ".SH NAME", "netdiag \\- " + _roff(SUMMARIES_LINE),
             ".SH SYNOPSIS", ".B netdiag", ".I COMMAND", "[\\fIOPTIONS\\fR]",
             ".SH DESCRIPTION", _roff(netdiag.__doc__.strip()),
             ".SH COMMANDS"]
    for path, command, nested in leaves(parser):
        if not path or nested:
            continue
        lines += [f".SS {_roff('netdiag ' + ' '.join(path))}",
                  _roff(command.description or helps.get(path, ""))]
        for action in command._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            if action.option_strings:
                value = "" if action.nargs == 0 else \
                    f" \\fI{_roff(str(action.metavar or action.dest.upper()))}\\fR"
                name = ", ".join(f"\\fB{_roff(o)}\\fR" for o in action.option_strings)
            else:
                name = f"\\fI{_roff(str(action.metavar or action.dest))}\\fR"
                value = ""
            lines += [".TP", name + value, _roff(action.help or "")]
        top = path[0]
        if len(path) == 1 or path == (top, _first_action(parser, top)):
            lines += [".PP", "Examples:", ".nf"] + \
                [_roff(f"  {example}") for example in EXAMPLES.get(top, ())] + [".fi"]
    lines += [".SH EXIT STATUS", "0: nothing found (or the flow is delivered); 1: findings at "
              "or above \\-\\-fail\\-on (or the flow is not delivered); 2: bad input; 3: a "
              "namespace or the kernel could not be read.",
              ".SH ENVIRONMENT", ".TP", "\\fBNO_COLOR\\fR", "no colour in text output.",
              ".TP", "\\fBDOCKER_HOST\\fR", "the Docker engine to read first.",
              ".SH SEE ALSO", "\\fBip\\fR(8), \\fBnft\\fR(8), \\fBiptables\\fR(8), "
              "\\fBdocker\\fR(1)"]
    return "\n".join(lines) + "\n"


SUMMARIES_LINE = "network troubleshooting for Linux hosts that run containers"


def _helps(parser: argparse.ArgumentParser) -> dict[tuple[str, ...], str]:
    """Each command's and action's one line, by its path."""
    found = {}
    for path, _, nested in leaves(parser):
        for action in nested:
            for choice in action._choices_actions:
                found[(*path, choice.dest)] = choice.help or ""
    return found


def _first_action(parser: argparse.ArgumentParser, command: str) -> str:
    for path, _, nested in leaves(parser):
        if len(path) == 2 and path[0] == command and not nested:
            return path[1]
    return ""
