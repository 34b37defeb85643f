"""`netdiag lab ...`: build topologies of namespaces from YAML, to reproduce and repair faults.

    lab up FILE|NAME      plan, then build (everything is rolled back on failure)
    lab plan FILE|NAME    print the plan (dry run)
    lab down NAME         remove everything the lab made (idempotent; works after a crash)
    lab up FILE --etcd URL --host NAME, lab down NAME --host NAME
                          one host's part of a lab whose hosts share a store (processes,
                          machines)
    lab ls                the labs that are up
    lab status NAME       nodes, processes, and the drivers' own checks
    lab exec NAME NODE -- CMD
    lab examples          the bundled labs, one per line, name first
    lab schema            the topology file's JSON Schema
    lab from-snapshot SNAPSHOT -o FILE
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from netdiag.cli import SUMMARIES
from netdiag.commands.fleet import add_etcd_access_args
from netdiag.errors import Interrupted, NotFound, UsageError
from netdiag.topology import journal as journals

if TYPE_CHECKING:  # pydantic: for a lab file read, not for `lab --help`
    from netdiag.topology import schema

EXAMPLES = Path(__file__).resolve().parent.parent / "lab" / "examples"


def register(subparsers) -> None:
    parser = subparsers.add_parser("lab", help=SUMMARIES["lab"])
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION")
    sub.required = True
    for name, func, help_ in (("up", run_up, "build a lab"),
                              ("plan", run_plan, "print a lab's plan")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("topology", metavar="FILE|NAME",
                       help="a topology file or a bundled lab; e.g. broken-mtu or ./lab.yaml")
        p.set_defaults(func=func)
        if name == "up":
            p.add_argument("--replace", action="store_true",
                           help="remove a lab of that name first (up or half-built), then build")
        p.add_argument("--host", metavar="NAME",
                       help="only this host's part of the lab (with --etcd): its namespaces, "
                            "containers and agent; each host's part is its own `lab up`; "
                            "e.g. --host host1")
        if name == "up":
            p.add_argument("--etcd", metavar="URL",
                           help="the drivers' store the lab's hosts share (with --host); "
                                "e.g. --etcd http://10.0.0.5:2379")
            p.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                           help="with --host: how long to wait for the networks another "
                                "host's part makes (default 120); e.g. --wait 30")
            add_etcd_access_args(p)
    p = sub.add_parser("down", help="remove a lab")
    p.add_argument("name", help="the lab's name (see `netdiag lab ls`); e.g. broken-mtu")
    p.add_argument("--host", metavar="NAME",
                   help="remove only that host's part (lab up --host), as `lab down "
                        "NAME@HOST` does; e.g. --host h1")
    add_etcd_access_args(p)
    p.set_defaults(func=run_down)
    sub.add_parser("ls", help="list labs").set_defaults(func=run_ls)
    p = sub.add_parser("status", help="a lab's nodes, processes and driver checks")
    p.add_argument("name", help="the lab's name; e.g. broken-mtu")
    p.set_defaults(func=run_status)
    p = sub.add_parser("exec", help="run a command in a lab node's namespace")
    p.add_argument("name", help="the lab's name; e.g. broken-mtu")
    p.add_argument("node", help="a node of it (host or container); e.g. web")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD",
                   help="the command to run there; e.g. -- ip route")
    p.set_defaults(func=run_exec)
    sub.add_parser("examples", help="list the bundled labs").set_defaults(func=run_examples)
    sub.add_parser("schema", help="print the topology JSON Schema").set_defaults(func=run_schema)
    p = sub.add_parser("from-snapshot", help="write a topology that reproduces a snapshot")
    p.add_argument("snapshot", help="a snapshot file (netdiag snapshot -o); e.g. snap.json")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="where to write the topology; e.g. -o repro.yaml")
    p.add_argument("--name", help="the new lab's name (default: derived from the snapshot); "
                                  "e.g. --name repro")
    p.set_defaults(func=run_from_snapshot)


def resolve_topology(ref: str) -> tuple[schema.Topology, str]:
    """A file path, or the name of a bundled lab."""
    from netdiag.topology import schema

    path = Path(ref)
    if not path.exists() and (EXAMPLES / f"{ref}.yaml").exists():
        path = EXAMPLES / f"{ref}.yaml"
    elif not path.exists():
        raise UsageError(f"{ref}: no such file or bundled lab (see `netdiag lab examples`)")
    return schema.load(path), str(path.resolve())  # the journal keeps it: absolute


def _require_root() -> None:
    if os.geteuid() != 0:
        from netdiag.errors import PermissionDenied
        raise PermissionDenied("labs build network namespaces: run netdiag as root")


def run_up(args) -> int:
    topology, source = resolve_topology(args.topology)
    if bool(args.host) != bool(args.etcd):
        raise UsageError("lab up --host and --etcd go together: one host's part of a lab, on "
                         "the store its hosts share")
    if args.etcd:
        from netdiag.etcd import parse_url

        parse_url(args.etcd)  # a malformed URL is refused before anything is built
    _require_root()
    from netdiag.lab import build
    from netdiag.progress import Progress

    started = time.perf_counter()
    journal = None
    try:
        with Progress() as line:
            journal = build.up(topology, source, lambda i, total, text: line.update(
                f"[{i}/{total}] {text}"), replace=args.replace, host=args.host or "",
                etcd=args.etcd or "", network_wait=args.wait)
        print(f"lab {journal.name} is up: {len(journal.nodes)} nodes in "
              f"{time.perf_counter() - started:.2f} s")
    except KeyboardInterrupt:
        if journal is not None:  # built a moment before the Ctrl-C: that goes too
            build.undo(journal.name)
        raise Interrupted(f"lab up {topology.name} interrupted: everything it had built "
                          "was removed") from None
    return 0


def run_plan(args) -> int:
    from netdiag.topology import plan

    topology, _ = resolve_topology(args.topology)
    for i, step in enumerate(plan.plan(topology, args.host or ""), 1):
        print(f"{i:3}. {step.describe()}")
    return 0


def run_down(args) -> int:
    _require_root()
    from netdiag.lab import teardown

    name = journals.host_part(args.name, args.host) if args.host else args.name
    if name not in journals.names():
        parts = [n for n in journals.names() if n.startswith(f"{name}@")]
        hint = f" (its host parts: {', '.join(parts)})" if parts else ""
        print(f"lab {name} is not up: nothing to remove{hint}")
        return 0
    from netdiag.progress import Progress

    nodes = len(journals.load(name).nodes)
    with Progress() as line:
        removed = teardown.down(name, lambda i, total, text: line.update(
            f"[{i}/{total}] {text}"))
    namespaces = sum(1 for what in removed if what.startswith("namespace "))
    processes = sum(1 for what in removed if what.startswith("process "))
    networks = sum(1 for what in removed if what.startswith("network "))
    shared = f", {_count(networks, 'network')} from the shared store" if networks else ""
    print(f"lab {name} removed: {_count(nodes, 'node')} ("
          f"{_count(namespaces, 'namespace')}, the drivers' own included), "
          f"{_count(processes, 'process', 'processes')}{shared}")
    return 0


def _count(number: int, word: str, plural: str = "") -> str:
    return f"{number} {word if number == 1 else plural or word + 's'}"


def run_ls(args) -> int:
    print(f"{'NAME':16} {'STATE':10} {'NODES':>5}  TOPOLOGY")
    hints: list[str] = []
    for name in journals.names():
        try:
            j = journals.load(name)
        except NotFound:
            continue
        print(f"{j.name:16} {j.condition:10} {len(j.nodes):>5}  {j.topology}")
        if j.condition == "half-built":
            hints.append(f"lab {j.name} is half-built: `netdiag lab down {j.name}` removes it, "
                         f"`netdiag lab up {j.name} --replace` rebuilds it")
    for hint in hints:
        print(hint, file=sys.stderr)
    return 0


def run_status(args) -> int:
    j = journals.load(args.name)
    print(f"lab {j.name}: {j.condition} (from {j.topology})")
    from netdiag.lab import teardown

    print(f"  {_count(len(j.nodes), 'node')}:")
    for node, ns in j.nodes.items():
        alive = os.path.exists(f"/run/netns/{ns}")
        print(f"  {node:16} {ns:28} {'present' if alive else 'GONE'}")
    nested = teardown.nested_namespaces(j)
    if nested:
        print(f"  and {_count(len(nested), 'namespace')} the drivers made: "
              f"{', '.join(nested)}")
    running = sum(1 for p in j.processes if journals.start_time(p.pid) == p.start_time)
    print(f"  processes: {running} of {len(j.processes)} running")
    if j.host or os.path.exists(j.store):
        from netdiag.drivers.controller import Controller
        from netdiag.store import open_store

        with open_store(j.store) as store:
            findings = Controller(store).check(host=j.nodes[j.host] if j.host else None)
        named = {ns: f"{j.name}/{node}" for node, ns in j.nodes.items()}  # as `check` says
        for f in findings:
            where = named.get(f.namespace.name) or named.get(os.path.basename(f.namespace.path))
            print(f"  {f.severity.value}: {where or f.namespace.display}: {f.message}")
        print(f"  driver checks: {len(findings)} findings")
    return 0


def run_exec(args) -> int:
    j = journals.load(args.name)
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise UsageError("lab exec needs a command after --")
    ns = j.nodes.get(args.node)
    if ns is None:
        raise NotFound(f"lab {j.name} has no node {args.node!r} "
                       f"(nodes: {', '.join(j.nodes)})")
    os.execvp("ip", ["ip", "netns", "exec", ns, *argv])


def run_examples(args) -> int:
    from netdiag.topology import schema

    for path in sorted(EXAMPLES.glob("*.yaml")):
        print(f"{path.stem:24} {schema.load(path).description}")
    return 0


def run_schema(args) -> int:
    from netdiag.topology import schema

    print(json.dumps(schema.json_schema(), indent=2))
    return 0


def run_from_snapshot(args) -> int:
    from netdiag.lab.from_snapshot import write_topology
    from netdiag.model.serialize import load

    write_topology(load(args.snapshot), args.output, args.name)
    print(f"topology written to {args.output}")
    return 0
