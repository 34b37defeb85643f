"""`netdiag diff A B [--json]`: what changed between two saved snapshots.

Exit code 0 when they describe the same state (counters, timestamps and what the kernel learns
by itself aside; `--all-fields` shows those too), 1 when they differ, 2 when a file cannot be
read. The comparison itself is netdiag.diff.
"""

from __future__ import annotations

import argparse
from itertools import groupby
from typing import TYPE_CHECKING

from netdiag.cli import SUMMARIES
from netdiag.commands.common import print_json
from netdiag.errors import EXIT_FINDINGS, EXIT_OK

if TYPE_CHECKING:
    from netdiag.diff import Change

SIGNS = {"added": "+", "removed": "-", "changed": "~"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("diff", help=SUMMARIES["diff"])
    parser.add_argument("before", metavar="A", help="the older snapshot file, e.g. before.json")
    parser.add_argument("after", metavar="B", help="the newer snapshot file, e.g. after.json")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--all-fields", action="store_true",
                        help="also what the kernel learns and forgets by itself (neighbour "
                             "states, learned forwarding entries, the local table's routes)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netdiag.diff import diff
    from netdiag.model.serialize import load, to_data

    changes = diff(load(args.before), load(args.after), all_fields=args.all_fields)
    if args.json:
        print_json([to_data(change) for change in changes])
    elif changes:
        print("\n".join(format_changes(changes)))
    else:
        print("no differences")
    return EXIT_FINDINGS if changes else EXIT_OK


def format_changes(changes: tuple[Change, ...]) -> list[str]:
    """Changes grouped by namespace: "  + links veth1: kind=veth mtu=1500 ..." lines."""
    lines = []
    for namespace, group in groupby(changes, key=lambda c: c.namespace):
        lines.append(f"== {namespace} ==")
        for change in group:
            line = f"  {SIGNS[change.kind]} {change.section} {change.key}"
            if change.kind == "changed":
                lines.append(line)
                lines.extend(f"      {detail}" for detail in change.details)
            else:
                lines.append(f"{line}: {' '.join(change.details)}" if change.details else line)
    return lines
