"""`netdiag agent --etcd URL`: publish this machine's snapshot into etcd, at start, on change
and every interval, until stopped (netdiag/fleet/agent.py says how). A node whose agent stops
cleanly leaves the fleet at once; one whose agent dies is gone when its lease runs out."""

from __future__ import annotations

import argparse
import signal

from netdiag.cli import SUMMARIES
from netdiag.commands.common import add_docker_arg, seconds
from netdiag.commands.fleet import add_etcd_arg


def register(subparsers) -> None:
    parser = subparsers.add_parser("agent", help=SUMMARIES["agent"],
                                   description=__doc__.splitlines()[0])
    add_etcd_arg(parser)
    parser.add_argument("--node", default="", metavar="NAME",
                        help="this machine's name in the fleet (default: the --host-ns "
                             "namespace's name, else /etc/machine-id's first 12 characters); "
                             "e.g. --node worker-3")
    parser.add_argument("--interval", type=seconds, metavar="SECONDS",
                        help="publish at least this often (default: 30, or less often where "
                             "a read costs more, so that reading while nothing changes takes "
                             "under 1%% of one core); e.g. --interval 10")
    parser.add_argument("--ttl", type=int, default=0, metavar="SECONDS",
                        help="the lease: a node whose agent died is gone after this long "
                             "(default: 3 intervals, at least 10); e.g. --ttl 60")
    parser.add_argument("--history", type=int, default=3, metavar="N",
                        help="earlier snapshots kept besides the latest (default: 3); e.g. "
                             "--history 0")
    parser.add_argument("--host-ns", default="", metavar="REF",
                        help="the namespace that is this machine (default: the root "
                             "namespace and everything in it); e.g. --host-ns node1")
    parser.add_argument("--ns", dest="also", action="append", default=[], metavar="REF",
                        help="with --host-ns: this namespace is part of the machine too "
                             "(repeatable); e.g. --ns web")
    parser.add_argument("--debounce", type=seconds, default=1.0, metavar="SECONDS",
                        help="after a change, wait until the kernel is quiet this long "
                             "(default: 1); e.g. --debounce 3")
    add_docker_arg(parser)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say so on stderr each time a snapshot is published")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netdiag.collect import scope
    from netdiag.errors import UsageError
    from netdiag.fleet.agent import DEFAULT_INTERVAL, IDLE_SHARE, Agent, AgentConfig, node_name

    scope.require_root([args.host_ns or "host"])
    interval = args.interval or DEFAULT_INTERVAL
    if args.ttl and args.ttl < 2 * interval:
        raise UsageError(f"--ttl {args.ttl} is shorter than two intervals "
                         f"({2 * interval:g} s): the node would vanish between publishes")
    if args.also and not args.host_ns:
        raise UsageError("--ns adds namespaces to a --host-ns machine; without --host-ns "
                         "the machine is every namespace already")
    if args.history < 0:
        raise UsageError("--history: give 0 or more")
    config = AgentConfig(etcd=args.etcd, node=node_name(args.node, args.host_ns),
                         interval=interval, ttl=args.ttl, history=args.history,
                         host_ns=args.host_ns, also=tuple(args.also),
                         engines=tuple(args.docker),
                         debounce=args.debounce, verbose=args.verbose,
                         idle_share=IDLE_SHARE if args.interval is None else 0.0)
    agent = Agent(config)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: agent.stop.set())
    return agent.run()
