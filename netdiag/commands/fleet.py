"""`netdiag fleet ls|show NODE|snapshot -o FILE`: the machines whose agents publish into etcd.

`ls` lists the nodes with their snapshot's age, whether it is fresh, their agent's version
and what `check` found on each alone; `show NODE` one node's records and history; `snapshot`
merges every node's snapshot into one file that `check --from`, `path --from` and `lab
from-snapshot` read. `check --fleet URL` judges the merged fleet directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from netdiag import terminal
from netdiag.cli import SUMMARIES
from netdiag.commands.common import print_json, print_table
from netdiag.errors import EXIT_FINDINGS, NotFound

ETCD_ENV = "NETDIAG_ETCD"


def add_etcd_arg(parser: argparse.ArgumentParser, flag: str = "--etcd") -> None:
    default = os.environ.get(ETCD_ENV)
    parser.add_argument(flag, dest="etcd", default=default, required=default is None,
                        metavar="URL",
                        help=f"etcd's client URL (default: ${ETCD_ENV}); e.g. {flag} "
                             "http://10.0.0.5:2379")
    add_etcd_access_args(parser)


def add_etcd_access_args(parser: argparse.ArgumentParser) -> None:
    """TLS files and the password file for an etcd that asks for them (docs/fleet.md); the
    CLI's main hands them to netdiag.etcd before the command runs."""
    group = parser.add_argument_group(
        "etcd with TLS or auth", "the user comes from $NETDIAG_ETCD_USER, its password from "
        "--etcd-password-file or $NETDIAG_ETCD_PASSWORD (never the command line)")
    group.add_argument("--etcd-cacert", metavar="FILE", default="",
                       help="the CA that signed etcd's certificate (default: "
                            "$NETDIAG_ETCD_CACERT); e.g. --etcd-cacert /etc/etcd/ca.pem")
    group.add_argument("--etcd-cert", metavar="FILE", default="",
                       help="netdiag's client certificate (default: $NETDIAG_ETCD_CERT); "
                            "e.g. --etcd-cert /etc/netdiag/etcd.pem")
    group.add_argument("--etcd-key", metavar="FILE", default="",
                       help="its key (default: $NETDIAG_ETCD_KEY); e.g. --etcd-key "
                            "/etc/netdiag/etcd-key.pem")
    group.add_argument("--etcd-password-file", metavar="FILE", default="",
                       help="the etcd user's password, in a file; e.g. --etcd-password-file "
                            "/etc/netdiag/etcd-password")


def register(subparsers) -> None:
    parser = subparsers.add_parser("fleet", help=SUMMARIES["fleet"],
                                   description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="fleet_command", metavar="COMMAND", required=True)

    ls = commands.add_parser("ls", help="list the nodes: age, health, findings (exit 1 if "
                                        "one is stale)")
    add_etcd_arg(ls)
    ls.add_argument("--json", action="store_true", help="as JSON")
    ls.set_defaults(func=run_ls)

    show = commands.add_parser("show", help="one node's records and history")
    show.add_argument("node", metavar="NODE",
                      help="the node's name, as `fleet ls` lists it; e.g. worker-3")
    add_etcd_arg(show)
    show.add_argument("--json", action="store_true", help="as JSON")
    show.set_defaults(func=run_show)

    snap = commands.add_parser("snapshot", help="merge every node's snapshot into one file")
    add_etcd_arg(snap)
    snap.add_argument("-o", "--output", metavar="FILE", required=True,
                      help="write the fleet snapshot here; e.g. -o fleet.json")
    snap.add_argument("--node", action="append", default=[], metavar="NAME",
                      help="only this node (repeatable); e.g. --node worker-3")
    snap.set_defaults(func=run_snapshot)


def run_ls(args: argparse.Namespace) -> int:
    from netdiag.fleet.store import FleetStore

    store = FleetStore(args.etcd)
    metas, unreadable = store.nodes()
    for text in unreadable:
        print(f"netdiag: note: {text}", file=sys.stderr)
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    rows = [_row(meta, now) for meta in metas]
    if args.json:
        print_json([dict(row, stored=meta.stored, sequence=meta.sequence)
                    for row, meta in zip(rows, metas)])
    elif not rows:
        print(f"no node publishes into {store.url} (start `netdiag agent --etcd {store.url}` "
              "on each machine)")
    else:
        print_table(("NODE", "AGE", "STATE", "AGENT", "NAMESPACES", "FINDINGS", "SIZE"),
                    [(row["node"], _age_text(row["age"]), row["state"], row["agent"],
                      row["namespaces"], _findings_text(row["findings"]),
                      f"{meta.stored / 1024:.1f} KiB") for row, meta in zip(rows, metas)],
                    terminal.look(args.color))
    return EXIT_FINDINGS if any(row["state"] == "stale" for row in rows) else 0


def _row(meta, now: str) -> dict:
    machine = _machine(meta)
    age = machine.age(now)
    stale = age is not None and age > machine.allowed_age
    return {"node": meta.node, "age": None if age is None else round(age, 1),
            "state": "stale" if stale else "fresh", "agent": meta.agent_version,
            "schema": meta.schema_version, "namespaces": meta.namespaces,
            "findings": meta.findings, "published_at": meta.published_at,
            "interval": meta.interval, "hostname": meta.hostname}


def _machine(meta):
    from netdiag.model.fleet import Machine

    return Machine(name=meta.node, published_at=meta.published_at, interval=meta.interval)


def run_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from netdiag.fleet.store import FleetStore

    store = FleetStore(args.etcd)
    meta = store.node(args.node)
    if meta is None:
        known = ", ".join(m.node for m in store.nodes()[0]) or "none"
        raise NotFound(f"no node {args.node!r} in the fleet at {store.url} (nodes: {known})")
    history = store.history(args.node)
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    row = _row(meta, now)
    if args.json:
        print_json({**asdict(meta), "age": row["age"], "state": row["state"],
                    "history": [asdict(h) for h in history]})
        return 0
    look = terminal.look(args.color)
    fields = [("node", meta.node), ("hostname", meta.hostname), ("kernel", meta.kernel),
              ("agent", f"netdiag {meta.agent_version}, snapshot schema "
                        f"{meta.schema_version}"),
              ("published", f"{meta.published_at} ({_age_text(row['age'])} ago, "
                            f"{row['state']}; every {meta.interval:g} s at least)"),
              ("snapshot", f"#{meta.sequence} ({meta.reason}), {meta.namespaces} namespaces, "
                           f"read in {meta.read_seconds:.2f} s, {meta.size / 1024:.1f} KiB "
                           f"stored as {meta.stored / 1024:.1f} KiB"),
              ("findings", _findings_text(meta.findings))]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{look.paint(name.ljust(width), 'bold')}  {value}")
    print()
    print_table(("#", "PUBLISHED", "WHY", "NAMESPACES", "FINDINGS"),
                [(h.sequence, h.published_at, h.reason, h.namespaces,
                  _findings_text(h.findings)) for h in reversed(history)], look)
    return 0


def run_snapshot(args: argparse.Namespace) -> int:
    from netdiag.fleet import gather
    from netdiag.model.serialize import save

    snapshot = gather(args.etcd, nodes=tuple(args.node))
    if args.node and not snapshot.machines:
        raise NotFound(f"none of the nodes {', '.join(args.node)} publishes into {args.etcd}")
    save(snapshot, args.output)
    print(f"{len(snapshot.machines)} nodes, {len(snapshot.namespaces)} namespaces, "
          f"{len(snapshot.gaps)} gaps → {args.output}", file=sys.stderr)
    for gap in snapshot.gaps:
        if gap.collector == "fleet":
            print(f"netdiag: note: {gap.message}", file=sys.stderr)
    return 0


def _age_text(age: float | None) -> str:
    if age is None:
        return "?"
    if age < 120:
        return f"{max(0.0, age):.0f} s"
    return f"{age / 60:.0f} min" if age < 7200 else f"{age / 3600:.1f} h"


def _findings_text(findings: dict[str, int]) -> str:
    order = ("error", "warning", "info")
    parts = [f"{findings[s]} {s}" for s in order if findings.get(s)]
    return ", ".join(parts) or "none"
