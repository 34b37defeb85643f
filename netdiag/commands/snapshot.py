"""`netdiag snapshot [-o FILE] [--ns REF ...]`: save the state of namespaces as JSON."""

from __future__ import annotations

import argparse
import sys

from netdiag.cli import SUMMARIES
from netdiag.commands.common import add_namespace_args, get_snapshot, timed_out
from netdiag.errors import EXIT_COLLECT


def register(subparsers) -> None:
    parser = subparsers.add_parser("snapshot", help=SUMMARIES["snapshot"])
    add_namespace_args(parser, offline=False)
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write here (default: stdout); e.g. -o before.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netdiag.model.serialize import dumps, save

    snapshot = get_snapshot(args)
    if args.output:
        save(snapshot, args.output)
        print(f"{len(snapshot.namespaces)} namespaces, {len(snapshot.gaps)} gaps → {args.output}",
              file=sys.stderr)
    else:
        print(dumps(snapshot, indent=1))
    for message in timed_out(snapshot):
        print(f"netdiag: note: not read in time: {message}", file=sys.stderr)
    return EXIT_COLLECT if timed_out(snapshot) else 0
