"""`netdiag explain RULE`: print a rule's documentation (its module docstring), or list the
rules."""

from __future__ import annotations

import inspect

from netdiag import terminal
from netdiag.cli import SUMMARIES
from netdiag.commands.common import print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("explain", help=SUMMARIES["explain"],
                                   description=__doc__)
    parser.add_argument("rule", nargs="?", metavar="RULE",
                        help="rule name or code, any case (without it: list every rule); "
                             "e.g. mtu-mismatch or nd301")
    parser.set_defaults(func=run)


def run(args) -> int:
    from netdiag.checks import registry  # every rule: not for `explain --help`

    if not args.rule:
        print_table(("CODE", "RULE", "SEVERITY", "SUMMARY"),
                    [(rule.code, rule.name, rule.severity.value, rule.summary)
                     for rule, _ in registry.catalogue()], terminal.look(args.color))
        return 0
    rule, doc = registry.describe(args.rule)
    print(f"{rule.code} {rule.name} ({rule.severity.value}): {rule.summary}\n")
    print(inspect.cleandoc(doc))
    return 0
