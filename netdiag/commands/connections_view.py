"""`netdiag show connections [--ns REF] [--json] [--from FILE]`: each namespace's connections
with their processes and who is at the other end — `ss -tunap` in every namespace at once.

One block per namespace, headed as `show` heads it, one row per TCP connection (any state
but listen) or connected UDP socket: local and peer ADDRESS:PORT, state, the process holding
it, and the other end named from the snapshot (netdiag/model/connections.py): the namespace
or container holding the peer's address and, when its socket was read too, its process; the
published port it came through; "outside". A namespace keeps at most CONNECTIONS_KEPT of
them (collect/sockets.py); a line says how many more were counted, and how many are in
time-wait. Every namespace is read, so that the other ends can be named, but only for what
naming them needs (`naming_collectors`: a full read's firewall, DNS, sysctls and conntrack are
most of its cost); `--ns` chooses which are shown. Without `--ns`, only the namespaces holding
a connection are (not only time-wait ones).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from netdiag import terminal
from netdiag.commands.common import print_json, print_table, timed_out
from netdiag.errors import EXIT_COLLECT

if TYPE_CHECKING:
    from netdiag.model import NamespaceState, Snapshot


def run(args: argparse.Namespace) -> int:
    from netdiag.commands.common import collect_scoped, focus_offline
    from netdiag.commands.show import report_gaps
    from netdiag.model.serialize import load

    if args.from_file:
        snapshot = load(args.from_file)
        focus = focus_offline(snapshot, args.ns) if args.ns else frozenset()
    else:
        snapshot, focus = collect_scoped(args.ns, args.timeout, args.docker,
                                         naming_collectors())
    states = [state for state in snapshot.namespaces
              if state.ref.id in focus or (not focus and _talking(state))]
    if args.json:
        print_json(as_json(snapshot, states))
    else:
        print_blocks(snapshot, states, terminal.look(args.color), args.verbose)
        if not states:
            print("no connections")
    report_gaps(snapshot, {state.ref.id for state in states} | set(focus), "sockets")
    return EXIT_COLLECT if timed_out(snapshot) else 0


def naming_collectors() -> tuple:
    """What a namespace's connections and the naming of their other ends need of each
    namespace (netdiag/model/connections.py): its sockets (the connections, and the other
    end's own socket or listener), its addresses (who holds the peer's address), its links,
    routes and policy rules (which of several holders of a private address it reaches: the
    one on the segment its route leaves by) — netlink dumps all."""
    from netdiag.collect import addresses, links, routes, rules, sockets

    return (links, addresses, routes, rules, sockets)


def _talking(state: NamespaceState) -> bool:
    """Whether a namespace holds a connection (time-wait ones are over)."""
    return bool(state.connections) or any(name != "time-wait"
                                          for name, _ in state.connections_omitted)


def omitted_text(state: NamespaceState) -> str:
    """`… and 3000 more (established 2990, syn-recv 10) not kept; 57 in time-wait`."""
    counts = dict(state.connections_omitted)
    waiting = counts.pop("time-wait", 0)
    parts = []
    if counts:
        detail = ", ".join(f"{name} {count}" for name, count in counts.items())
        parts.append(f"… and {sum(counts.values())} more ({detail}) not kept")
    if waiting:
        parts.append(f"{waiting} in time-wait")
    return "; ".join(parts)


def print_blocks(snapshot: Snapshot, states: Sequence[NamespaceState], look: terminal.Look,
                 verbose: bool = False) -> None:
    from netdiag import render
    from netdiag.commands.show import heading

    ctx = render.context(snapshot)
    headers = tuple(column.upper() for column in render.CONNECTION_COLUMNS)
    for number, state in enumerate(states):
        if number:
            print()
        print(look.paint(heading(state, verbose), "heading"))
        rows = [row.cells for row in render.connection_rows(state, ctx)]
        if rows:
            print_table(headers, rows, look)
        elif not state.connections_omitted:
            print("(none)")
        if state.connections_omitted:
            print(omitted_text(state))


def as_json(snapshot: Snapshot, states: Sequence[NamespaceState]) -> list[dict]:
    from netdiag.model.connections import peer_finder
    from netdiag.model.serialize import to_data

    finder = peer_finder(snapshot)
    blocks = []
    for state in states:
        connections = []
        for c in state.connections:
            end = finder.peer_end(state, c)
            other = end.socket
            connections.append({
                "protocol": c.protocol, "family": c.family,
                "local": {"address": c.address, "port": c.port},
                "peer": {"address": c.peer, "port": c.peer_port},
                "state": c.state, "pid": c.pid, "process": c.process or None,
                "other_end": {"label": end.label, "namespace": end.namespace,
                              "pid": other.pid if other else None,
                              "process": other.process or None if other else None,
                              "via": end.via or None}})
        blocks.append({"namespace": to_data(state.ref), "connections": connections,
                       "omitted": dict(state.connections_omitted)})
    return blocks
