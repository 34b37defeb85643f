"""`netdiag ns list [--json]`: every network namespace on the host, with what is known of it."""

from __future__ import annotations

import argparse

from netdiag import terminal
from netdiag.cli import SUMMARIES
from netdiag.commands.common import print_json, print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("ns", help=SUMMARIES["ns"])
    sub = parser.add_subparsers(dest="ns_command", metavar="ACTION")
    sub.required = True
    listing = sub.add_parser("list", help="list every namespace, deduplicated by inode")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("-v", "--verbose", action="store_true",
                         help="also each namespace's inode (the id `inode:N` refers to)")
    listing.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from netdiag.collect import discovery
    from netdiag.collect.scope import require_root
    from netdiag.model.serialize import to_data

    require_root([])
    found = discovery.discover()
    if args.json:
        print_json([to_data(ns) for ns in found])
        return 0
    rows = [(ns.label, ns.kind.value, ",".join(ns.docker_networks),
             ",".join(map(str, ns.pids[:3])), ns.path) for ns in found]
    headers = ("NAMESPACE", "KIND", "NETWORKS", "PIDS", "PATH")
    if args.verbose:  # the inode is what `inode:N` and the JSON's id refer to
        headers, rows = ("INODE", *headers), [(ns.id, *row) for ns, row in zip(found, rows)]
    print_table(headers, rows, terminal.look(args.color))
    return 0
