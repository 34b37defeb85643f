"""`netdiag tui`: the interactive view — pick a namespace, see its state and findings live.

`--ns REF` attaches directly; `--from FILE` shows a saved snapshot offline (no probes, no
repairs, no shell). Bad references and unreadable files fail with one line before the
screen is taken over, and so does a run without a terminal (`netdiag tui >file`).
"""

from __future__ import annotations

import sys

from netdiag.cli import SUMMARIES
from netdiag.commands.common import add_docker_arg
from netdiag.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("tui", help=SUMMARIES["tui"])
    parser.add_argument("--ns", metavar="REF",
                        help="attach to this namespace directly (self, host, NAME, PATH, pid:N, "
                             "container:NAME, inode:N, LAB/NODE); e.g. --ns container:web")
    parser.add_argument("--from", dest="from_file", metavar="FILE",
                        help="show a saved snapshot instead of the live kernel; e.g. --from "
                             "snap.json")
    parser.add_argument("--refresh", type=float, metavar="SECONDS", default=10.0,
                        help="re-read the attached namespace this often, besides netlink "
                             "events (default 10); e.g. --refresh 2")
    parser.add_argument("--probe-external", action="store_true",
                        help="let the probe key reach targets no namespace netdiag read holds")
    add_docker_arg(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from netdiag.collect.scope import require_root
    from netdiag.model.serialize import load
    from netdiag.tui.app import NetdiagApp
    from netdiag.tui.source import LiveSource, OfflineSource

    if args.refresh <= 0:
        raise UsageError("--refresh must be a positive number of seconds")
    if args.from_file:
        source = OfflineSource(load(args.from_file))
    else:
        require_root([args.ns] if args.ns else [])
        source = LiveSource(engines=tuple(args.docker))
    attach_to = source.resolve(args.ns) if args.ns else None
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Textual would draw into the file or pipe, and wait for keys, until killed.
        raise UsageError("netdiag tui needs a terminal (its input and output are not one); "
                         "for text, use `netdiag check` or `netdiag show`")
    NetdiagApp(source, attach_to=attach_to, refresh_seconds=args.refresh,
               probe_external=args.probe_external).run()
    return 0
