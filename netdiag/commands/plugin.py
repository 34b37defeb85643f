"""`netdiag plugin serve`: the bundled drivers as a Docker engine's network and IPAM plugin.

Docker finds a legacy plugin by its socket, /run/docker/plugins/NAME.sock; then `docker
network create -d NAME --ipam-driver NAME ...` makes networks with netdiag's bridge driver and
netdiag's IPAM, and `docker run --network ...` attaches containers to them. The engine's
network namespace is the networks' host namespace (`--host-ns`, never the root namespace:
netdiag's drivers only build inside namespaces you name). State is kept in the driver store
(`--store FILE`, or `--store etcd://HOST:PORT`), so a restarted plugin knows the networks and
addresses it handed out.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from netdiag.cli import SUMMARIES
from netdiag.errors import EXIT_OK, UsageError

PLUGIN_DIR = "/run/docker/plugins"


def register(subparsers) -> None:
    parser = subparsers.add_parser("plugin", help=SUMMARIES["plugin"],
                                   description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    serve = verbs.add_parser("serve", help="answer the engine on /run/docker/plugins/NAME.sock")
    serve.add_argument("--name", default="netdiag",
                       help="the driver name Docker knows it by (default: netdiag); e.g. "
                            "--name ndnet")
    serve.add_argument("--host-ns", required=True, metavar="NS",
                       help="the engine's network namespace (name or path); e.g. --host-ns "
                            "/run/netns/engine")
    serve.add_argument("--socket", metavar="PATH",
                       help=f"where to listen (default: {PLUGIN_DIR}/NAME.sock); e.g. --socket "
                            "/run/docker/plugins/ndnet.sock")
    serve.add_argument("--store", metavar="FILE|URL",
                       help="driver state: a SQLite file or an etcd URL (default: "
                            "$NETDIAG_STORE or /var/lib/netdiag/plugin-NAME.db); e.g. --store "
                            "etcd://10.0.0.5:2379")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from netdiag.drivers.common.namespaces import namespace_path
    from netdiag.drivers.plugin import Plugin, serve
    from netdiag.drivers.store import open_store

    if not args.name.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"plugin name {args.name!r}: letters, digits, '-' and '_' only")
    host = namespace_path(args.host_ns)
    socket_path = args.socket or f"{PLUGIN_DIR}/{args.name}.sock"
    store_path = args.store or os.environ.get("NETDIAG_STORE") \
        or f"/var/lib/netdiag/plugin-{args.name}.db"

    # SIGTERM ends it as Ctrl-C does: through serve's finally, so the socket goes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with open_store(store_path) as store:
        store.networks()  # an unreachable etcd or an unreadable file fails now, not per call
        try:
            serve(Plugin(store, host, args.name), socket_path,
                  ready=lambda: print(f"netdiag plugin {args.name}: serving on {socket_path} "
                                      f"(store {store_path})", file=sys.stderr, flush=True))
        except KeyboardInterrupt:
            pass
    return EXIT_OK
