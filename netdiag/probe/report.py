"""`netdiag path`'s two outputs: text for a person, JSON (stable, versioned) for tools.

JSON: {"schema_version", "flow": {"src": {namespace}, "dst", "proto", "sport", "dport",
"size", "resolved" (how a name in DST became its address, or null)}, "disposition",
"hops": [{"namespace": {"id", "kind", "label"}, "in", "out", "steps": [{"kind", "detail",
"rule"?}], "conntrack"?: [entry]}], "drop": {"namespace", "where", "rule", "reason",
"cause"} | null, "reply": {"disposition", "hops", "drop"} | null, "probe": {"sent",
"outcome", "reason", "delivered", "agrees", "listener" (the temporary listener put up where
nothing listened, or null), "trace"?: {"events", "drop", "agrees", "note", "drops":
[{"reason", "location"}], "drops_note"}} | null (null without --probe; trace with --trace).
`cause` is one of netdiag.flows.packet.CAUSES; `drops` are the kernel's kfree_skb drop
reasons seen while the probe was out. A hop's `conntrack`, read live only, holds the flow's
entries in the first hop of each namespace where conntrack decides, each as `show conntrack
--format json` gives it.
"""

from __future__ import annotations

from collections.abc import Mapping

from netdiag.flows.packet import DELIVERED, Drop, Hop, PathResult, Trace
from netdiag.model import NamespaceRef
from netdiag.probe import tracked
from netdiag.probe.path import ProbeResult
from netdiag.probe.trace import KernelTrace
from netdiag.terminal import PLAIN, Look

SCHEMA_VERSION = 1


def _ref(ref: NamespaceRef) -> dict:
    return {"id": ref.id, "kind": ref.kind.value, "label": ref.display}


def _hops(hops: tuple[Hop, ...], conntrack: Mapping[int, list[dict]] | None = None
          ) -> list[dict]:
    """`conntrack`: a hop's position → the flow's conntrack entries read there."""
    conntrack = conntrack or {}
    return [{"namespace": _ref(h.namespace), "in": h.into, "out": h.out,
             "steps": [{"kind": s.kind, "detail": s.detail, **({"rule": s.rule} if s.rule
                                                              else {})} for s in h.steps],
             **({"conntrack": conntrack[number]} if number in conntrack else {})}
            for number, h in enumerate(hops)]


def _drop(drop: Drop | None) -> dict | None:
    if drop is None:
        return None
    return {"namespace": _ref(drop.namespace), "where": drop.where, "rule": drop.rule or None,
            "reason": drop.reason, "cause": drop.cause}


def _probe(sent: ProbeResult | None, kernel: KernelTrace | None) -> dict | None:
    if sent is None:
        return None
    found = {"sent": sent.sent, "outcome": sent.outcome or None, "reason": sent.reason or None,
             "delivered": sent.delivered if sent.sent else None, "agrees": sent.agrees,
             "listener": sent.listener or None}
    if kernel is not None:
        found["trace"] = {"events": [{"namespace": ns, "event": e} for ns, e in kernel.events],
                          "drop": None if kernel.drop is None else
                          {"namespace": kernel.drop[0], "event": kernel.drop[1]},
                          "agrees": kernel.agrees, "note": kernel.note or None,
                          "drops": [{"reason": r, "location": at} for r, at in kernel.drops],
                          "drops_note": kernel.drops_note or None}
    return found


def as_json(result: PathResult, sent: ProbeResult | None = None,
            kernel: KernelTrace | None = None, resolved: str = "",
            conntrack: Mapping[tuple[str, int], list[dict]] | None = None) -> dict:
    """`conntrack`: (direction, hop position) → the flow's conntrack entries read there, as
    JSON (probe/tracked.py's hop_entries), for a live run."""
    packet = result.flow.packet
    reply = result.reply
    entries = {direction: {number: found for (way, number), found in (conntrack or {}).items()
                           if way == direction} for direction in ("forward", "reply")}
    return {
        "schema_version": SCHEMA_VERSION,
        "flow": {"src": {**_ref(result.flow.source), "address": packet.src}, "dst": packet.dst,
                 "proto": packet.proto, "sport": packet.sport or None,
                 "dport": packet.dport or None, "size": packet.size or None,
                 "resolved": resolved or None},
        "disposition": result.disposition,
        "hops": _hops(result.forward.hops, entries["forward"]),
        "drop": _drop(result.forward.drop),
        "reply": None if reply is None else {"disposition": reply.disposition,
                                             "hops": _hops(reply.hops, entries["reply"]),
                                             "drop": _drop(reply.drop)},
        "probe": _probe(sent, kernel),
    }


def _trace_lines(trace: Trace, notes: Mapping[int, str] | None = None) -> list[str]:
    """The hops and their steps; `notes`: a hop's position → the kernel's conntrack entry of
    the flow there (probe/tracked.py), printed under the step where conntrack decides."""
    lines = []
    for number, hop in enumerate(trace.hops):
        ways = " ".join(part for part in (f"in {hop.into}" if hop.into else "",
                                          f"out {hop.out}" if hop.out else "") if part)
        lines.append(f"  [{hop.namespace.display}] {ways}".rstrip())
        note = (notes or {}).get(number)
        after = tracked.deciding_step(hop) if note else -1
        for position, step in enumerate(hop.steps):
            lines.append(f"      {step.kind:<10} {step.detail}")
            if position == after:
                lines.append(f"      {'kernel':<10} conntrack holds {note}")
    return lines


def _verdict(trace: Trace, what: str) -> str:
    if trace.disposition == DELIVERED:
        return f"{what}: delivered"
    drop = trace.drop
    where = f" in {drop.namespace.display} at {drop.where}" if drop else ""
    line = f"{what}: {trace.disposition.upper()}{where}: {drop.reason if drop else ''}"
    if drop and drop.rule and drop.rule not in drop.reason:
        line += f"\n    rule: {drop.rule}"
    return line


def as_text(result: PathResult, sent: ProbeResult | None = None,
            kernel: KernelTrace | None = None, resolved: str = "", look: Look = PLAIN,
            tracked: Mapping[tuple[str, int], str] | None = None) -> str:
    """`tracked`: (direction, hop position) → the flow's conntrack entry read there
    (probe/tracked.py's hop_notes), for a live run."""
    tracked = tracked or {}
    notes = {direction: {number: text for (way, number), text in tracked.items()
                         if way == direction} for direction in ("forward", "reply")}
    packet = result.flow.packet
    lines = [f"path from {result.flow.source.display}: {packet.text}"
             + (f", {packet.size} bytes DF" if packet.size else "")
             + (f" — {resolved}" if resolved else "")]
    lines += _trace_lines(result.forward, notes["forward"])
    lines.append(_verdict(result.forward, "forward"))
    if result.reply is not None:
        lines.append("reply:")
        lines += _trace_lines(result.reply, notes["reply"])
        lines.append(_verdict(result.reply, "reply"))
    lines.append(look.paint(f"=> {result.disposition.upper()}",
                            "ok" if result.delivered else "error"))
    if sent is not None and not sent.sent:
        lines.append(f"probe: not sent: {sent.reason}")
    elif sent is not None:
        verdict = "the kernel agrees" if sent.agrees else \
            f"the kernel DISAGREES with the model ({result.disposition})"
        if sent.listener:
            got = "it arrived" if sent.delivered else "it did not arrive"
            lines.append(f"probe: {sent.outcome} — nothing listened, so a temporary listener "
                         f"on {sent.listener} waited for it: {got}; {verdict} (the way up to "
                         "the socket is " + ("open" if sent.delivered else "closed") + ")")
        else:
            lines.append(f"probe: {sent.outcome}: {verdict}")
    if kernel is not None:
        lines.append("kernel trace (nftables):")
        lines += [f"  [{ns}] {event}" for ns, event in kernel.events] or ["  (no events)"]
        lines.append("kernel drop reasons while the probe was out (skb:kfree_skb, any "
                     "namespace):")
        lines += [f"  {reason} in {at or '?'}" for reason, at in kernel.drops] or \
            [f"  ({kernel.drops_note or 'none'})"]
        if kernel.agrees is not None:
            lines.append("trace: " + ("the kernel's trace agrees" if kernel.agrees else
                                      f"the kernel's trace DISAGREES: {kernel.note}"))
        elif kernel.note:
            lines.append(f"trace: {kernel.note}")
    return "\n".join(lines) + "\n"
