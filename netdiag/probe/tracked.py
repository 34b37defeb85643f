"""The kernel's conntrack entries of the flow `netdiag path` explains, in the hops where
conntrack decides: where the model tracked a NAT (DNAT, SNAT, MASQUERADE) or gave a reply its
un-NATed addresses.

Snapshots keep only the tables' counts (netdiag/collect/conntrack.py), so the entries are read
live, over ctnetlink, in those namespaces alone, and only when `path` reads the kernel (not
with `--from`). An entry belongs to the flow when its first packet is one of the flow's as the
model sends it, before or after a NAT on the way, whatever its source port (path's is a
stand-in, a real client's is its own): capture's Matcher (probe/capture.py) decides. A
namespace that cannot be read is left without entries: the model's answer stands alone, as it
does from a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from netdiag.flows.packet import Hop, PathResult, StepKind

if TYPE_CHECKING:
    from netdiag.collect.conntrack import Tracked

DECIDING = (StepKind.CONNTRACK, StepKind.NAT)


def deciding_hops(result: PathResult) -> list[tuple[str, int, Hop]]:
    """(direction, position, hop) of the hops, forward and back ("forward", "reply"), where
    conntrack decides (the model tracked a NAT there)."""
    traces = {"forward": result.forward, "reply": result.reply}
    return [(direction, number, hop) for direction, trace in traces.items() if trace
            for number, hop in enumerate(trace.hops)
            if any(step.kind in DECIDING for step in hop.steps)]


def deciding_step(hop: Hop) -> int:
    """The position of the step where conntrack decides in a hop: its conntrack step, else the
    NAT that made the binding; -1 for none."""
    for kind in DECIDING:
        for position, step in enumerate(hop.steps):
            if step.kind == kind:
                return position
    return -1


def flow_entries(result: PathResult) -> dict[int, list[Tracked]]:
    """Namespace id → the flow's entries there, for the namespaces where conntrack decides:
    those whose first packet capture's Matcher takes for the flow's, going forward."""
    from netdiag import netns
    from netdiag.collect import conntrack
    from netdiag.errors import NetdiagError
    from netdiag.probe.capture import Matcher, first_packet

    matcher = Matcher.of(result)
    found: dict[int, list[Tracked]] = {}
    for _direction, _number, hop in deciding_hops(result):
        ref = hop.namespace
        if ref.id in found:
            continue
        try:
            with netns.entered(ref.path):
                entries = conntrack.read_entries()
        except NetdiagError:  # not ours to read, or ctnetlink absent: no entries to show
            continue
        found[ref.id] = [entry for entry in entries
                         if matcher.direction(first_packet(entry)) == "forward"]
    return found


def entry_line(entries: list[Tracked]) -> str:
    """`tcp 10.0.0.1:51234 → 10.0.0.9:8080 ESTABLISHED, DNAT to 10.1.0.2:80, replied`."""
    from netdiag.collect.conntrack import endpoint

    first = entries[0]
    parts = [f"{first.proto} {first.original.text}" +
             (f" {first.state}" if first.state else "")]
    if first.dnat:
        parts.append(f"DNAT to {endpoint(first.dnat.dst, first.dnat.dport)}")
    if first.snat:
        parts.append(f"SNAT to {endpoint(first.snat.dst, first.snat.dport)}")
    parts.append("replied" if first.replied else "not replied")
    more = f" (and {len(entries) - 1} more of this flow)" if len(entries) > 1 else ""
    return ", ".join(parts) + more


def hop_entries(result: PathResult, entries: Mapping[int, list[Tracked]]
                ) -> dict[tuple[str, int], list[Tracked]]:
    """(direction, position) of a hop → the flow's entries read in its namespace (perhaps
    none): once per namespace read, in the first hop where conntrack decides there."""
    found: dict[tuple[str, int], list[Tracked]] = {}
    said: set[int] = set()
    for direction, number, hop in deciding_hops(result):
        ns_id = hop.namespace.id
        if ns_id in entries and ns_id not in said:
            said.add(ns_id)
            found[direction, number] = entries[ns_id]
    return found


def hop_notes(result: PathResult, entries: Mapping[int, list[Tracked]]
              ) -> dict[tuple[str, int], str]:
    """(direction, position) of a hop → the conntrack line to print under it (hop_entries'
    hops that hold an entry of the flow)."""
    return {where: entry_line(found)
            for where, found in hop_entries(result, entries).items() if found}
