"""`netdiag path SRC DST`: why can (or can't) SRC reach DST — the packet's way, hop by hop.

SRC is a namespace reference; DST an address (IPv4 or IPv6, `fe80::1%eth0` with its
interface), ADDR:PORT, [IPV6]:PORT, NAME:PORT with a name as SRC would resolve it (Docker's
names on its networks, a namespace; with -6 to its IPv6 address), or a namespace reference. The flow
engine (netdiag/flows/) simulates the packet from a snapshot — read now from every namespace,
or `--from FILE` — through routing, veth pairs, bridges, netfilter of both iptables backends,
NAT and conntrack, then its reply back. Exit codes: 0 the flow and its reply are delivered,
1 they are not, 2 bad input, 3 nothing could be collected.
"""

from __future__ import annotations

import argparse
import gc
import sys

from netdiag import terminal
from netdiag.cli import SUMMARIES
from netdiag.commands.common import add_docker_arg, print_json, read_with_progress, seconds
from netdiag.errors import EXIT_FINDINGS, EXIT_OK, CollectError, UsageError

DEFAULT_SPORT = 43210
IP_HEADER = {4: 20, 6: 40}
HEADERS = {"tcp": 20, "udp": 8, "icmp": 8}  # the least each adds: `--size` is never below


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "path", help=SUMMARIES["path"],
        description=__doc__.splitlines()[0])
    parser.add_argument("src", metavar="SRC", help="the namespace the flow starts in "
                                                   "(host, container:web, lab/node, inode:N; "
                                                   "e.g. container:web)")
    parser.add_argument("dst", metavar="DST", help="ADDR, ADDR:PORT, [IPV6]:PORT, NAME:PORT "
                                                   "or a namespace (e.g. db:6379, 10.0.0.2:80)")
    parser.add_argument("-6", "--ipv6", dest="family", action="store_const", const=6,
                        default=4, help="a name is its IPv6 address (AAAA), as ping -6 takes "
                                        "it; e.g. path web db:80 -6")
    parser.add_argument("--proto", choices=("tcp", "udp", "icmp"),
                        help="default: tcp with a port, icmp without")
    parser.add_argument("--port", type=int, metavar="N", help="destination port (e.g. 443)")
    parser.add_argument("--sport", type=int, metavar="N", default=DEFAULT_SPORT,
                        help=f"source port (default {DEFAULT_SPORT}); e.g. --sport 5353")
    parser.add_argument("--size", type=int, metavar="BYTES",
                        help="IP packet size, sent with DF (e.g. 1500): the path MTU question")
    parser.add_argument("--from", dest="from_file", metavar="SNAPSHOT",
                        help="simulate on a saved snapshot instead of the live kernel; e.g. "
                             "--from snap.json")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for a person, json for tools (default: text); e.g. "
                             "--format json")
    parser.add_argument("--probe", action="store_true",
                        help="also send the flow once for real (TCP connect, UDP datagram or "
                             "ping, 1 s; a temporary listener waits at its end when nothing "
                             "listens there) and say whether the kernel agrees; e.g. path web "
                             "db:6379 --probe")
    parser.add_argument("--trace", action="store_true",
                        help="with the probe, ask the kernel where it went: a temporary "
                             "nftables trace in each namespace on the path and its drop "
                             "reasons (skb:kfree_skb), removed after")
    parser.add_argument("--probe-external", action="store_true",
                        help="with --probe: also to targets no namespace netdiag read holds")
    parser.add_argument("--timeout", type=seconds, metavar="SECONDS",
                        help="bound the collection (e.g. 10)")
    add_docker_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # The path model, the collectors and the probes: for a run, not for `path --help`.
    from netdiag.collect import namespace_refs, scope
    from netdiag.flows import names
    from netdiag.flows.packet import Packet
    from netdiag.flows.walk import Engine
    from netdiag.model.serialize import load
    from netdiag.probe import report, trace, tracked
    from netdiag.probe.path import probe, refusal

    target, port = names.split_port(args.dst)
    if port and args.port is not None:
        raise UsageError(f"two ports given: {args.dst} and --port {args.port}: give one")
    for flag, value in (("--port", args.port), ("--sport", args.sport)):
        if value is not None and not 0 < value < 65536:
            raise UsageError(f"{flag} {value}: ports are between 1 and 65535")
    port = args.port or port
    proto = args.proto or ("tcp" if port else "icmp")
    if proto != "icmp" and not port:
        raise UsageError(f"--proto {proto} needs a port: DST:PORT or --port N")
    if proto == "icmp" and port:
        raise UsageError("icmp has no port: drop :PORT/--port, or give --proto tcp|udp")
    _check_size(args.size, proto, 6 if ":" in target else args.family)
    args.probe = args.probe or args.trace
    if args.probe and args.from_file:
        raise UsageError("--probe sends packets from live namespaces; it cannot be used with "
                         "--from")
    if args.probe_external and not args.probe:
        raise UsageError("--probe-external goes with --probe")
    if args.from_file:
        snapshot = load(args.from_file)
        source = namespace_refs.resolve(args.src, [s.ref for s in snapshot.namespaces],
                                        snapshot.docker).id
    else:
        chosen = scope.select([args.src], engines=args.docker)
        snapshot = read_with_progress(chosen.read, args.timeout, chosen.docker)
        source = next(iter(chosen.chosen))
    if snapshot.namespace(source) is None:
        raise CollectError(f"{args.src} could not be read")
    # The snapshot lives until exit: keep the cyclic GC from walking its records again.
    gc.freeze()
    address, how = names.resolve(snapshot, source, target, args.family)
    _check_size(args.size, proto, 6 if ":" in address else 4)
    resolved = f"{target} is {address} ({how})" if how != "address" else ""
    packet = Packet("", address, proto, args.sport if proto != "icmp" else 0, port,
                    size=args.size or 0)
    result = Engine(snapshot).path(source, packet)
    sent, kernel = None, None
    if args.trace and not refusal(snapshot, result, args.probe_external):
        sent, kernel = trace.trace(result, lambda: probe(snapshot, result,
                                                         args.probe_external))
    elif args.probe:
        sent = probe(snapshot, result, args.probe_external)
    # read after the probe, so that its own connection is among the entries
    entries = {} if args.from_file else tracked.flow_entries(result)
    if args.format == "json":
        from netdiag.commands.conntrack_view import as_json_entry

        conntrack = {where: [as_json_entry(entry) for entry in found]
                     for where, found in tracked.hop_entries(result, entries).items()}
        print_json(report.as_json(result, sent, kernel, resolved, conntrack))
    else:
        sys.stdout.write(report.as_text(result, sent, kernel, resolved,
                                        terminal.look(args.color),
                                        tracked.hop_notes(result, entries)))
    return EXIT_OK if result.delivered else EXIT_FINDINGS


def _check_size(size: int | None, proto: str, family: int) -> None:
    smallest = IP_HEADER[family] + HEADERS[proto]
    if size is not None and not smallest <= size <= 65535:
        raise UsageError(f"--size {size}: an IPv{family} {proto} packet is {smallest} to 65535 "
                         f"bytes (the IP header {IP_HEADER[family]} and the {proto} header "
                         f"{HEADERS[proto]} included)")
