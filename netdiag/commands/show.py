"""`netdiag show [SECTION] [--ns REF] [--json] [--from FILE]`: a namespace's state as tables.

One block per namespace, headed by its label, with one aligned table per section (links,
addrs, routes with the policy rules, neigh, fdb with the VXLAN devices, ipvs, firewall, dns,
sockets, sysctls), rendered by netdiag/render.py exactly as the TUI's tabs; without a section,
a compact overview: each interface with its state, addresses and where it leads, the default
routes and how many records each other section holds. `show docker`, `show connections`
(connections_view.py) and `show conntrack` (conntrack_view.py) are views of their own.
Rendering is pure (`tables(state, section, ctx)`) so it is tested from hand-built snapshots;
reading live or from a file is common.py's job.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netdiag import capabilities, terminal
from netdiag.cli import SUMMARIES
from netdiag.commands.common import (
    add_namespace_args,
    get_snapshot,
    print_json,
    print_table,
    timed_out,
)
from netdiag.errors import EXIT_COLLECT, NotFound, UsageError

if TYPE_CHECKING:  # the model and its renderer load when show runs, not for `show --help`
    from netdiag import render
    from netdiag.model import Gap, Link, NamespaceState, Snapshot


@dataclass(frozen=True, slots=True)
class Table:
    title: str  # "" when the block has a single table
    headers: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]


# --- sections: netdiag/render.py's, the same the TUI shows -----------------------------------

# CLI name → (render section, the NamespaceState fields it shows, for --json). Rules are shown
# with the routes and VXLAN devices with the forwarding entries, as in the TUI; `rules` and
# `vxlan` stay as names for those sections.
SECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "links": ("links", ("links",)),
    "addrs": ("addresses", ("addresses",)),
    "routes": ("routes", ("routes", "rules")),
    "rules": ("routes", ("routes", "rules")),
    "neigh": ("neighbours", ("neighbours",)),
    "fdb": ("fdb", ("links", "fdb")),
    "vxlan": ("fdb", ("links", "fdb")),
    "ipvs": ("ipvs", ("ipvs",)),
    "firewall": ("firewall", ("firewall",)),
    "dns": ("dns", ("dns",)),
    "sockets": ("sockets", ("sockets",)),
    "sysctls": ("sysctls", ("sysctls",)),
}


def _table_name(table: int) -> str:
    from netdiag.model.index import TABLE_NAMES

    return TABLE_NAMES.get(table, str(table))


def _via(route) -> str:
    if route.nexthops:  # multipath: every hop with its device, as the DEV column holds one
        return "; ".join(f"{gw or '-'} dev {dev}" if dev else gw for gw, dev in route.nexthops)
    return route.gateway


def _state(link: Link) -> str:
    if not link.admin_up:
        return "down"
    return "up" if link.oper_state in ("up", "unknown") else f"up/{link.oper_state}"


def _overview(state: NamespaceState, ctx: render.RenderContext) -> list[Table]:
    from netdiag import render

    addresses: dict[str, list[str]] = {}
    for a in state.addresses:
        addresses.setdefault(a.ifname, []).append(a.cidr)
    interfaces = tuple((link.name, link.kind, _state(link), link.mtu,
                        " ".join(addresses.get(link.name, ())),
                        render.peer_text(state, link, ctx.names))
                       for link in state.links)
    defaults = tuple((f"ipv{r.family}", _table_name(r.table), _via(r), r.dev)
                     for r in state.routes if r.dst == "default")
    fw = state.firewall
    counts = ((("routes", len(state.routes)), ("rules", len(state.rules)),
               ("neighbours", len(state.neighbours)), ("fdb", len(state.fdb)),
               ("iptables rules", len(fw.iptables_rules)), ("nft rules", len(fw.nft_rules)),
               ("ipvs services", len(state.ipvs)), ("listening sockets", len(state.sockets)),
               ("connections", len(state.connections) + sum(
                   count for _, count in state.connections_omitted))))
    return [Table("interfaces", ("NAME", "KIND", "STATE", "MTU", "ADDRESSES", "LINK"),
                  interfaces),
            Table("default routes", ("FAMILY", "TABLE", "VIA", "DEV"), defaults),
            Table("counts", ("WHAT", "COUNT"), counts)]


def tables(state: NamespaceState, section: str | None,
           ctx: render.RenderContext | None = None) -> list[Table]:
    """The tables `netdiag show` prints for one namespace (overview when section is None);
    `ctx` labels the other namespaces veth peers lead into."""
    from netdiag import render

    ctx = ctx or render.RenderContext()
    if section is None:
        return _overview(state, ctx)
    found = render.section(SECTIONS[section][0])
    return [Table("", tuple(column.upper() for column in found.columns),
                  tuple(row.cells for row in found.rows(state, ctx)))]


def heading(state: NamespaceState, verbose: bool = False) -> str:
    """`== web (docker) ==`: the namespace by its name; its inode only when asked (-v)."""
    ref = state.ref
    return f"== {ref.display} ({ref.kind.value}{f', inode {ref.id}' if verbose else ''}) =="


# --- the command ------------------------------------------------------------------------------


def register(subparsers) -> None:
    parser = subparsers.add_parser("show", help=SUMMARIES["show"])
    parser.add_argument("section", nargs="?",
                        choices=(*SECTIONS, "docker", "connections", "conntrack"),
                        metavar="SECTION",
                        help=f"one of: {', '.join(SECTIONS)}, docker (each Docker engine's "
                             "intent: daemon, networks, containers, services), connections "
                             "(established TCP and connected UDP, with processes and who is "
                             "at the other end), conntrack (tracked connections and their "
                             "NAT, read now) (default: an overview)")
    add_namespace_args(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--addr", metavar="ADDRESS",
                        help="conntrack: only connections with this address at an end; e.g. "
                             "--addr 10.0.0.2")
    parser.add_argument("--port", type=int, metavar="N",
                        help="conntrack: only connections with this port at an end; e.g. "
                             "--port 8080")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also each namespace's inode (the id `inode:N` refers to)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netdiag import render

    if args.section == "conntrack":
        from netdiag.commands import conntrack_view

        return conntrack_view.run(args)
    if args.section == "connections" and not (args.addr or args.port is not None):
        from netdiag.commands import connections_view

        return connections_view.run(args)
    if args.addr or args.port is not None:
        raise UsageError("--addr and --port filter `show conntrack` only")
    snapshot = get_snapshot(args)
    look = terminal.look(args.color)
    if args.section == "docker":
        return _show_docker(snapshot, args.json, look)
    states = _chosen(snapshot, args.ns) if args.from_file else list(snapshot.namespaces)
    if args.json:
        print_json(as_json(states, args.section))
    else:
        print_tables(states, args.section, render.context(snapshot), look, args.verbose)
    concerned = {state.ref.id for state in states}
    if not args.from_file:  # what was read live is what was asked for, also what failed
        concerned |= {gap.namespace for gap in snapshot.gaps}
    report_gaps(snapshot, concerned, args.section)
    unread = not states and any(gap.collector == "namespace" for gap in snapshot.gaps)
    return EXIT_COLLECT if unread or timed_out(snapshot) else 0


def _show_docker(snapshot: Snapshot, as_json: bool, look: terminal.Look) -> int:
    from netdiag import render
    from netdiag.model.serialize import to_data

    if as_json:
        print_json([to_data(engine) for engine in snapshot.docker])
    else:
        labels = {state.ref.path: state.ref.display for state in snapshot.namespaces}
        for number, engine in enumerate(snapshot.docker):
            if number:
                print()
            print(look.paint(f"== {render.docker_heading(engine)} ==", "heading"))
            for table in render.docker_tables(engine, labels):
                print(look.paint(f"-- {table.title}", "bold"))
                if table.rows:
                    print_table(table.columns, [row.cells for row in table.rows], look)
                else:
                    print("(none)")
        if not snapshot.docker:
            print("no Docker engine found (DOCKER_HOST, /var/run/docker.sock, a running "
                  "dockerd); --docker unix:///PATH names one")
    for gap in snapshot.gaps:
        if gap.collector == "docker":
            print(f"netdiag: note: {gap.message}", file=sys.stderr)
    return EXIT_COLLECT if timed_out(snapshot) else 0


def _chosen(snapshot: Snapshot, refs: Sequence[str]) -> list[NamespaceState]:
    """With --from, --ns picks namespaces from the file (by name, label, path or inode:N)."""
    from netdiag.collect import namespace_refs

    if not refs:
        return list(snapshot.namespaces)
    known = [state.ref for state in snapshot.namespaces]
    wanted = {ref.id for ref in namespace_refs.resolve_all(refs, known, snapshot.docker)}
    states = [state for state in snapshot.namespaces if state.ref.id in wanted]
    if not states:
        raise NotFound(f"the snapshot holds none of {', '.join(refs)}")
    return states


def print_tables(states: Sequence[NamespaceState], section: str | None,
                 ctx: render.RenderContext, look: terminal.Look = terminal.PLAIN,
                 verbose: bool = False) -> None:
    for number, state in enumerate(states):
        if number:
            print()
        print(look.paint(heading(state, verbose), "heading"))
        for table in tables(state, section, ctx):
            if table.title:
                print(look.paint(f"-- {table.title}", "bold"))
            if table.rows:
                print_table(table.headers, table.rows, look)
            else:
                print("(none)")


def as_json(states: Sequence[NamespaceState], section: str | None) -> list[dict]:
    from netdiag.model.serialize import to_data

    if section is None:
        return [to_data(state) for state in states]
    fields = SECTIONS[section][1]
    return [{"namespace": to_data(state.ref), **{f: to_data(getattr(state, f)) for f in fields}}
            for state in states]


def _relevant(gap: Gap, section: str | None) -> bool:
    """Whether a gap concerns what is shown: a section's own collectors, or the namespace."""
    if section is None or gap.collector == "namespace":
        return True
    collectors = set(SECTIONS[section][1]) | ({"nftables"} if section == "firewall" else set())
    return gap.collector in collectors


def report_gaps(snapshot: Snapshot, concerned: set[int], section: str | None) -> None:
    # On stderr, so that the tables on stdout stay clean for grep and pipes.
    labels = {state.ref.id: state.ref.display for state in snapshot.namespaces}
    said = []
    for gap in snapshot.gaps:
        if not _relevant(gap, section):
            continue
        if gap.namespace is None or gap.namespace in concerned:
            label = labels.get(gap.namespace, f"inode:{gap.namespace}")
            where = f" in {label}" if gap.namespace else ""
            print(f"netdiag: note: {gap.collector}{where} not read ({gap.kind}): {gap.message}",
                  file=sys.stderr)
            said.append(gap.needs)
    for advice in capabilities.advice(said):
        print(f"netdiag: note: {advice}", file=sys.stderr)
