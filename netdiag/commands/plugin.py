"""`netdiag plugin serve`: the bundled drivers as a Docker engine's network and IPAM plugin.

Docker finds a legacy plugin by its socket, /run/docker/plugins/NAME.sock; then `docker
network create -d NAME --ipam-driver NAME ...` makes networks with netdiag's bridge driver and
netdiag's IPAM, and `docker run --network ...` attaches containers to them. The engine's
network namespace is the networks' host namespace: where the running `dockerd` is (on an
ordinary host, the root namespace), or the one `--host-ns` names when several engines run.
State is kept in the driver store
(`--store FILE`, or `--store etcd://HOST:PORT`), so a restarted plugin knows the networks and
addresses it handed out.

With `--scope global` it serves overlay networks across engines that share a cluster store:
each engine runs its plugin, all of them on one etcd `--store`, and each plugin is also its
host's overlay agent (a thread). The plugin talks to its store from inside the engine's
namespace: an etcd the engine reaches is one its plugin reaches.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from netdiag.cli import SUMMARIES
from netdiag.commands.fleet import add_etcd_access_args
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
    serve.add_argument("--host-ns", metavar="NS",
                       help="the engine's network namespace (name or path; default: the "
                            "namespace the running dockerd is in); e.g. --host-ns "
                            "/run/netns/engine")
    serve.add_argument("--scope", choices=("local", "global"), default="local",
                       help="local: bridge and macvlan networks of this engine (default); "
                            "global: overlay networks across engines that share a cluster "
                            "store, every engine's plugin on one etcd --store")
    serve.add_argument("--socket", metavar="PATH",
                       help=f"where to listen (default: {PLUGIN_DIR}/NAME.sock); e.g. --socket "
                            "/run/docker/plugins/ndnet.sock")
    serve.add_argument("--store", metavar="FILE|URL",
                       help="driver state: a SQLite file or an etcd URL (default: "
                            "$NETDIAG_STORE or /var/lib/netdiag/plugin-NAME.db); e.g. --store "
                            "etcd://10.0.0.5:2379")
    add_etcd_access_args(serve)
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import threading

    from netdiag import netns
    from netdiag.drivers.common.namespaces import namespace_path
    from netdiag.drivers.overlay.etcd_plane import run_agent
    from netdiag.drivers.plugin import Plugin, serve
    from netdiag.store import open_store
    from netdiag.store.etcd import EtcdStore
    from netdiag.store.records import Scope

    if not args.name.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"plugin name {args.name!r}: letters, digits, '-' and '_' only")
    engine = args.host_ns or engine_namespace()
    host = namespace_path(engine, serving=engine)  # the engine's, even the root namespace
    socket_path = args.socket or f"{PLUGIN_DIR}/{args.name}.sock"
    store_path = args.store or os.environ.get("NETDIAG_STORE") \
        or f"/var/lib/netdiag/plugin-{args.name}.db"

    scope = Scope(args.scope)

    # SIGTERM ends it as Ctrl-C does: through serve's finally, so the socket goes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with open_store(store_path) as store:
        if scope is Scope.GLOBAL and not isinstance(store, EtcdStore):
            raise UsageError("--scope global needs the store the engines' plugins share: "
                             "--store etcd://HOST:PORT")
        # where every call is answered from (see netdiag/drivers/plugin.py)
        with netns.entered(host):
            store.networks()  # an unreachable etcd or an unreadable file fails now
        plugin = Plugin(store, host, args.name, scope)
        ended, agent_ready = threading.Event(), threading.Event()
        agent = None
        if scope is Scope.GLOBAL:  # this host's overlay agent, beside the API
            def log(line: str) -> None:
                print(f"netdiag plugin {args.name}: {line}", file=sys.stderr, flush=True)

            def serve_agent() -> None:
                with netns.entered(host):
                    run_agent(store, host, plugin.driver("overlay").deliver, ended,
                              ready=agent_ready.set, log=log)

            agent = threading.Thread(target=serve_agent, name="overlay-agent", daemon=True)
            agent.start()
            if not agent_ready.wait(10):
                raise UsageError(f"the overlay agent for {host} did not start")
        try:
            serve(plugin, socket_path,
                  ready=lambda: print(f"netdiag plugin {args.name}: serving on {socket_path} "
                                      f"(store {store_path}, scope {scope.value})",
                                      file=sys.stderr, flush=True))
        except KeyboardInterrupt:
            pass
        finally:
            ended.set()
            if agent is not None:
                agent.join(5)  # it revokes its lease: this host's endpoints leave at once
    return EXIT_OK


def engine_namespace() -> str:
    """The network namespace of the one running dockerd, as a path that outlives it where
    there is one (the root namespace's, or a /run/netns name); several or none: say so."""
    from netdiag import docker_api, netns
    from netdiag.drivers.common.namespaces import ROOT_NS_PATHS

    engines = [(pid, f"/proc/{pid}/ns/net") for pid, _ in docker_api.dockerd_processes()]
    by_inode = {netns.namespace_inode(path): (pid, path) for pid, path in engines}
    by_inode.pop(None, None)
    if not by_inode:
        raise UsageError("no dockerd is running: start the engine first, or name its network "
                         "namespace with --host-ns")
    if len(by_inode) > 1:
        listed = ", ".join(f"pid {pid} in {path}" for pid, path in sorted(by_inode.values()))
        raise UsageError(f"several Docker engines run ({listed}): name the one to serve with "
                         "--host-ns")
    inode, (_, path) = next(iter(by_inode.items()))
    stable = [*ROOT_NS_PATHS, *(str(p) for p in sorted(netns.NAMED_DIR.glob("*")))]
    return next((candidate for candidate in stable
                 if netns.namespace_inode(candidate) == inode), path)
