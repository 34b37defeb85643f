"""`netdiag capture SRC DST[:PORT]`: the flow captured on every interface of its hops at once.

The hops are `netdiag path`'s (the same SRC and DST syntax, the same flow engine); each hop's
interfaces are watched in their namespaces (netdiag/probe/capture.py), the flow is sent once
as `path --probe` sends it — or, with `--wait`, the user's own traffic is awaited — and the
output says at which hop the packet was last seen, beside where the model expects it.
`-w FILE` writes the flow's frames as pcapng, each interface named `namespace:ifname`.
Bounded by `--timeout` and `--count`; nothing stays behind (also on Ctrl-C).

Exit codes: 0 the capture agrees with the model, 1 it does not (or the flow could not be
sent), 2 bad input, 3 nothing could be collected.

JSON: {"flow": {"src", "dst", "proto", "dport", "size"}, "disposition", "points": [{"name",
"hop", "direction", "forward", "reply"}], "unwatched": [{"name", "reason"}], "expected",
"last_seen" (point names or null), "agrees", "probe": {"sent", "outcome", "reason"} | null,
"packets", "truncated", "file"}.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

from netdiag import terminal
from netdiag.cli import SUMMARIES
from netdiag.commands.common import add_docker_arg, print_json, read_with_progress, seconds
from netdiag.errors import EXIT_FINDINGS, EXIT_OK, CollectError, UsageError
from netdiag.probe import CAPTURE_COUNT, CAPTURE_WAIT_SECONDS

MAX_COUNT = 100_000


def register(subparsers) -> None:
    parser = subparsers.add_parser("capture", help=SUMMARIES["capture"],
                                   description=__doc__.splitlines()[0])
    parser.add_argument("src", metavar="SRC", help="the namespace the flow starts in, as for "
                                                   "path (e.g. container:web, lab/node)")
    parser.add_argument("dst", metavar="DST",
                        help="ADDR, ADDR:PORT, [IPV6]:PORT, NAME:PORT or a namespace, as for "
                             "path (e.g. db:6379, 10.0.0.2)")
    parser.add_argument("-6", "--ipv6", dest="family", action="store_const", const=6,
                        default=4, help="a name is its IPv6 address")
    parser.add_argument("--proto", choices=("tcp", "udp", "icmp"),
                        help="default: tcp with a port, icmp without")
    parser.add_argument("--size", type=int, metavar="BYTES",
                        help="IP packet size, sent with DF; e.g. --size 1500")
    parser.add_argument("--wait", action="store_true",
                        help="send nothing: wait (--timeout) for the flow's own traffic")
    parser.add_argument("-w", dest="write", metavar="FILE",
                        help="write the flow's frames as pcapng, interfaces named "
                             "namespace:ifname (e.g. -w flow.pcapng)")
    parser.add_argument("--count", type=int, metavar="N", default=CAPTURE_COUNT,
                        help=f"stop after N frames of the flow (default {CAPTURE_COUNT}); e.g. "
                             "--count 20")
    parser.add_argument("--timeout", type=seconds, metavar="SECONDS",
                        default=CAPTURE_WAIT_SECONDS,
                        help=f"with --wait, how long to wait (default "
                             f"{CAPTURE_WAIT_SECONDS:g}); e.g. --timeout 30")
    parser.add_argument("--probe-external", action="store_true",
                        help="also send to targets no namespace netdiag read holds")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for a person, json for tools (default: text)")
    add_docker_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netdiag.collect import scope
    from netdiag.commands.path import DEFAULT_SPORT, _check_size
    from netdiag.flows import names
    from netdiag.flows.packet import Packet
    from netdiag.flows.walk import Engine
    from netdiag.probe import capture
    from netdiag.probe.path import probe
    from netdiag.progress import Progress

    target, port = names.split_port(args.dst)
    if not 0 < args.count <= MAX_COUNT:
        raise UsageError(f"--count {args.count}: between 1 and {MAX_COUNT}")
    proto = args.proto or ("tcp" if port else "icmp")
    if proto != "icmp" and not port:
        raise UsageError(f"--proto {proto} needs a port: DST:PORT")
    if proto == "icmp" and port:
        raise UsageError("icmp has no port: drop :PORT, or give --proto tcp|udp")
    _check_size(args.size, proto, 6 if ":" in target else args.family)
    if args.write:
        _check_writable(args.write)
    chosen = scope.select([args.src], engines=args.docker)
    snapshot = read_with_progress(chosen.read, None, chosen.docker)
    source = next(iter(chosen.chosen))
    if snapshot.namespace(source) is None:
        raise CollectError(f"{args.src} could not be read")
    gc.freeze()
    address, _how = names.resolve(snapshot, source, target, args.family)
    packet = Packet("", address, proto, DEFAULT_SPORT if proto != "icmp" else 0, port or 0,
                    size=args.size or 0)
    result = Engine(snapshot).path(source, packet)
    send = None if args.wait else (lambda: probe(snapshot, result, args.probe_external))
    with Progress() as progress:
        def ready(watched: int) -> None:
            what = f"waiting {args.timeout:g} s for the flow" if args.wait else "sending"
            progress.update(f"capturing on {watched} interfaces: {what}")

        found = capture.capture(result, send, args.timeout, args.count, ready)
    tracked = capture.flow_entries(result, found)
    if args.write:
        try:
            capture.write_pcapng(args.write, found)
        except OSError as exc:
            raise UsageError(f"-w {args.write}: {exc.strerror or exc}") from None
    if args.format == "json":
        print_json(as_json(result, found, args.write, tracked))
    else:
        sys.stdout.write(as_text(result, found, args.write, terminal.look(args.color), tracked))
    return EXIT_OK if capture.judged(found) and found.agrees else EXIT_FINDINGS


def _check_writable(path: str) -> None:
    """Before the capture, not after it: a file that cannot be written is bad input."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"-w {path}: no folder {folder}")
    if os.path.isdir(path) or not os.access(folder, os.W_OK):
        raise UsageError(f"-w {path}: not a file that can be written")


def as_json(result, found, written: str | None, tracked=()) -> dict:
    from netdiag.commands.conntrack_view import as_json_entry
    from netdiag.probe.capture import judged, point_name

    packet = result.flow.packet
    sent = found.sent
    return {
        "flow": {"src": result.flow.source.display, "dst": packet.dst, "proto": packet.proto,
                 "dport": packet.dport or None, "size": packet.size or None},
        "disposition": result.disposition,
        "points": [{"name": p.name, "hop": p.hop or None, "direction": p.direction,
                    "forward": f, "reply": r}
                   for p, (f, r) in zip(found.points, found.counts or
                                        [(0, 0)] * len(found.points), strict=True)],
        "unwatched": [{"name": n, "reason": why} for n, why in found.unopened],
        "expected": point_name(found, found.expected),
        "last_seen": point_name(found, found.last_seen),
        "agrees": found.agrees if judged(found) else None,
        "probe": None if sent is None else {"sent": sent.sent, "outcome": sent.outcome or None,
                                            "reason": sent.reason or None},
        "packets": len(found.frames),
        "truncated": found.truncated,
        "file": written,
        "conntrack": [{"namespace": ref.display, **as_json_entry(entry)}
                      for ref, entry in tracked],
    }


def as_text(result, found, written: str | None, look: terminal.Look, tracked=()) -> str:
    from netdiag.commands.conntrack_view import HEADERS, rows
    from netdiag.probe.capture import summary

    lines = summary(result, found, look)
    if tracked:
        lines.append("conntrack entries of the captured packets, now:")
        table = [(ref.display, *row) for (ref, _), row in
                 zip(tracked, rows([entry for _, entry in tracked]), strict=True)]
        lines.append(terminal.table(("NAMESPACE", *HEADERS), table, look).rstrip("\n"))
    if found.truncated:
        lines.append(f"stopped at {len(found.frames)} frames (--count)")
    if written:
        lines.append(f"wrote {len(found.frames)} frames on {len(found.points)} interfaces "
                     f"to {written}")
    return "\n".join(lines) + "\n"
