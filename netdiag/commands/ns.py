"""`netdiag ns list [--json]`: every network namespace on the host, with what is known of it."""

from __future__ import annotations

import argparse

from netdiag import netns, terminal
from netdiag.cli import SUMMARIES
from netdiag.collect.scope import require_root
from netdiag.commands.common import print_json, print_table
from netdiag.model.serialize import to_data


def register(subparsers) -> None:
    parser = subparsers.add_parser("ns", help=SUMMARIES["ns"])
    sub = parser.add_subparsers(dest="ns_command", metavar="ACTION")
    sub.required = True
    listing = sub.add_parser("list", help="list every namespace, deduplicated by inode")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    require_root([])
    found = netns.discover()
    if args.json:
        print_json([to_data(ns) for ns in found])
        return 0
    rows = [(ns.id, ns.kind.value, ns.label, ",".join(ns.docker_networks),
             ",".join(map(str, ns.pids[:3])), ns.path) for ns in found]
    print_table(("INODE", "KIND", "LABEL", "NETWORKS", "PIDS", "PATH"), rows,
                terminal.look(args.color))
    return 0
