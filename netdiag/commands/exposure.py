"""`netdiag exposure`: who can reach each listening socket — from beyond the host, from the
host, from its other networks — and how, sorted by risk.

The flow engine answers from the snapshot (netdiag/checks/exposure_model.py; docs/exposure.md):
a published port (which DNAT rule), direct routing to a container's address, a macvlan address
on the wire, the userland proxy, the host's own socket. A port published on every address that
an uplink reaches while the host's INPUT would drop it is a *bypass* (warning). Namespace
selection as `check`'s: `--all` (default), `--ns REF`, `--from FILE`. Exit codes: 0 no bypass,
1 a bypass, 2 bad usage, 3 nothing could be read.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

from netdiag import terminal
from netdiag.cli import SUMMARIES
from netdiag.commands.common import add_docker_arg, print_json, print_table, seconds
from netdiag.errors import EXIT_FINDINGS, EXIT_OK

# The model and the collectors load in run(), not for `exposure --help`.


def register(subparsers) -> None:
    parser = subparsers.add_parser("exposure", help=SUMMARIES["exposure"],
                                   description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every namespace (the default)")
    which.add_argument("--ns", action="append", default=[], metavar="REF",
                       help="list the sockets of this namespace and those reached through "
                            "it (repeatable), e.g. --ns container:web")
    parser.add_argument("--from", dest="from_file", metavar="SNAPSHOT",
                        help="judge a saved snapshot instead of the kernel; e.g. --from "
                             "snap.json")
    parser.add_argument("--timeout", type=seconds, metavar="SECONDS",
                        help="bound the collection (e.g. 10)")
    add_docker_arg(parser)
    parser.add_argument("--format", choices=("text", "json", "sarif"), default="text",
                        help="text for a person, json or sarif for tools (default: text)")
    parser.add_argument("--closed", action="store_true",
                        help="also list the sockets nothing reaches (loopback-only...)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netdiag.checks.exposure_model import BYPASS, CLOSED, exposures, focus_filter
    from netdiag.commands.common import collect_scoped, focus_offline
    from netdiag.model.serialize import load

    if args.from_file:
        snapshot = load(args.from_file)
        focus = focus_offline(snapshot, args.ns)
    else:
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        snapshot, focus = collect_scoped(args.ns, deadline, args.docker)
        focus = focus if args.ns else frozenset()
    gc.freeze()
    found = focus_filter(exposures(snapshot), focus)
    if not args.closed and args.format == "text":
        found = [e for e in found if e.risk != CLOSED]
    if args.format == "json":
        print_json({"exposures": [_data(e) for e in found]})
    elif args.format == "sarif":
        sys.stdout.write(_sarif(snapshot, found))
    else:
        _table(found, terminal.look(args.color))
    return EXIT_FINDINGS if any(e.risk == BYPASS for e in found) else EXIT_OK


def _data(entry) -> dict:
    return {
        "namespace": {"id": entry.namespace.id, "kind": entry.namespace.kind.value,
                      "label": entry.namespace.display},
        "socket": {"protocol": entry.socket.protocol, "address": entry.socket.address,
                   "port": entry.socket.port, "process": entry.socket.process,
                   "pid": entry.socket.pid},
        "owner": entry.owner, "risk": entry.risk,
        "severity": entry.severity.value if entry.severity else None,
        "reached": [{"from": d.source, "where": d.where, "address": d.address, "port": d.port,
                     "protocol": d.protocol, "via": d.via, "rule": d.rule,
                     "rule_name": d.rule_name, "input_drop": d.input_drop, "host": d.host}
                    for d in entry.doors],
        "controls": [{"benchmark": c.benchmark, "id": c.id, "title": c.title}
                     for c in entry.controls],
    }


def _way(door) -> str:
    how = door.via + (f" {door.rule_name}" if door.rule_name else "")
    drop = f" (INPUT: {door.input_drop})" if door.input_drop else ""
    return f"{door.source} {door.where} → {door.address}:{door.port} {how}{drop}"


def _table(found, look: terminal.Look) -> None:
    rows = []
    for entry in found:
        ways = [_way(d) for d in entry.doors] or ["-"]
        controls = ", ".join(c.name for c in entry.controls) or "-"
        rows.append([entry.risk, entry.namespace.display, entry.subject, entry.owner,
                     ways[0], controls])
        rows += [["", "", "", "", way, ""] for way in ways[1:]]
    print_table(["RISK", "NAMESPACE", "SOCKET", "OWNER", "REACHED FROM", "CONTROLS"], rows, look)


def _sarif(snapshot, found) -> str:
    """Every entry open to an uplink as a finding (bypass: ND931, the rest ND932), in the one
    SARIF renderer, with its benchmark controls as taxa."""
    from netdiag.checks.engine import Report
    from netdiag.checks.exposure import exposure_firewall_bypass, exposure_unpublished_port
    from netdiag.checks.output import sarif
    from netdiag.findings.rule import CheckConfig

    bypass = list(exposure_firewall_bypass.check(snapshot, CheckConfig()))
    wanted = {e.namespace.id for e in found}
    findings = [f for f in bypass if f.namespace.id in wanted or set(f.related) & wanted]
    findings += [exposure_unpublished_port.finding(e) for e in found
                 if e.severity is not None and e.risk != "bypass"]
    report = Report(snapshot.created_at, (exposure_firewall_bypass, exposure_unpublished_port),
                    tuple(findings), (), snapshot.gaps,
                    {s.ref.id: s.ref for s in snapshot.namespaces})
    return sarif.render(report)
