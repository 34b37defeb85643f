"""`netdiag net`: create, remove, list, inspect, connect, disconnect and check networks.

Ad-hoc use of the bundled drivers, shaped like `docker network`. Every network lives in a
namespace that plays the host (`--host-ns NAME`, never the root namespace); containers are
namespaces too. State is kept in a SQLite store (`--store FILE`, default
/var/lib/netdiag/drivers.db, or $NETDIAG_STORE), so separate runs see each other's networks, or
in etcd (`--store etcd://HOST:PORT`), so separate machines do.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import asdict

from netdiag import terminal
from netdiag.cli import SUMMARIES
from netdiag.commands.common import print_json, print_table
from netdiag.commands.fleet import add_etcd_access_args
from netdiag.errors import EXIT_FINDINGS, EXIT_OK, UsageError

PORT_RE = re.compile(r"(?:(?P<ip>\d+\.\d+\.\d+\.\d+):)?(?:(?P<host>\d*):)?(?P<container>\d+)"
                     r"(?:/(?P<proto>tcp|udp))?")


def register(subparsers) -> None:
    parser = subparsers.add_parser("net", help=SUMMARIES["net"],
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--store", metavar="FILE|URL", help="driver state: a SQLite file, or "
                        "an etcd URL shared by machines (default: $NETDIAG_STORE or "
                        "/var/lib/netdiag/drivers.db); e.g. --store /tmp/drivers.db, --store "
                        "etcd://10.0.0.5:2379")
    add_etcd_access_args(parser)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    host_ns = "the namespace that plays the host (name or path); e.g. --host-ns lab-host"
    network = "the network's name or id; e.g. front"

    create = verbs.add_parser("create", help="create a network")
    create.add_argument("name", help="the new network's name; e.g. front")
    create.add_argument("--host-ns", required=True, metavar="NS", help=host_ns)
    create.add_argument("-d", "--driver", default="bridge",
                        help="bridge, overlay, macvlan, host or none (default: bridge); e.g. "
                             "-d macvlan")
    create.add_argument("--subnet", default="",
                        help="its IPv4 subnet (default: the next free pool); e.g. "
                             "--subnet 172.30.0.0/24")
    create.add_argument("--gateway", default="",
                        help="the gateway address (default: the subnet's first); e.g. "
                             "--gateway 172.30.0.1")
    create.add_argument("--ip-range", default="",
                        help="hand out addresses only from this part of the subnet; e.g. "
                             "--ip-range 172.30.0.128/25")
    create.add_argument("--internal", action="store_true",
                        help="no way out of the network: no default route, no masquerading")
    create.add_argument("-o", "--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="driver option, e.g. com.docker.network.driver.mtu=1400 or mtu=1400")
    create.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="a label to keep with it (repeatable); e.g. --label team=web")
    create.set_defaults(func=run_create)

    remove = verbs.add_parser("rm", help="remove networks")
    remove.add_argument("names", nargs="+", metavar="NAME", help="networks to remove; e.g. front")
    remove.add_argument("--host-ns", metavar="NS", help=host_ns)
    remove.add_argument("-f", "--force", action="store_true",
                        help="disconnect remaining endpoints first")
    remove.set_defaults(func=run_rm)

    listing = verbs.add_parser("ls", help="list networks")
    listing.add_argument("--host-ns", metavar="NS", help=host_ns + " (default: every host)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_ls)

    inspect = verbs.add_parser("inspect", help="show a network and its endpoints as JSON")
    inspect.add_argument("name", help=network)
    inspect.add_argument("--host-ns", metavar="NS", help=host_ns)
    inspect.set_defaults(func=run_inspect)

    connect = verbs.add_parser("connect", help="connect a container namespace to a network")
    connect.add_argument("name", metavar="NETWORK", help=network)
    connect.add_argument("sandbox", metavar="NS",
                         help="the container's namespace (name or path); e.g. web")
    connect.add_argument("--host-ns", metavar="NS", help=host_ns)
    connect.add_argument("--container", default="",
                         help="endpoint name (default: NS's name); e.g. --container web")
    connect.add_argument("--ip", default="",
                         help="this address instead of the next free one; e.g. --ip 172.30.0.9")
    connect.add_argument("-p", "--publish", action="append", default=[],
                         metavar="[IP:][HOST:]PORT[/PROTO]",
                         help="publish a port on the host (repeatable); e.g. -p 8080:80")
    connect.add_argument("--alias", action="append", default=[],
                         help="another name its DNS answers for it (repeatable); e.g. "
                              "--alias api")
    connect.set_defaults(func=run_connect)

    disconnect = verbs.add_parser("disconnect", help="disconnect a container from a network")
    disconnect.add_argument("name", metavar="NETWORK", help=network)
    disconnect.add_argument("container", help="endpoint name or id; e.g. web")
    disconnect.add_argument("--host-ns", metavar="NS", help=host_ns)
    disconnect.set_defaults(func=run_disconnect)

    check = verbs.add_parser("check", help="compare the kernel with what the drivers built")
    check.add_argument("name", nargs="?", metavar="NETWORK",
                       help=network + " (default: every network)")
    check.add_argument("--host-ns", metavar="NS", help=host_ns)
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=run_check)

    agent = verbs.add_parser("agent", help="a host's overlay agent on an etcd store: keeps its "
                             "endpoints announced, and learns the other hosts'")
    agent.add_argument("--host-ns", required=True, metavar="NS", help=host_ns)
    agent.add_argument("--ttl", type=int, default=5, metavar="SECONDS",
                       help="how long a dead agent's endpoints stay known elsewhere "
                            "(default: 5); e.g. --ttl 10")
    agent.set_defaults(func=run_agent)


def _controller(args: argparse.Namespace):
    # Imported here so that `netdiag --help` does not load pyroute2 and sqlite.
    from netdiag.drivers.controller import Controller
    from netdiag.store import DEFAULT_PATH, open_store

    return Controller(open_store(args.store or os.environ.get("NETDIAG_STORE") or DEFAULT_PATH))


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r} must look like KEY=VALUE")
        out[key] = value
    return out


def parse_publish(spec: str):
    """Docker's -p syntax: [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]."""
    from netdiag.store.records import PortBinding

    match = PORT_RE.fullmatch(spec)
    if match is None:
        raise UsageError(f"invalid port specification {spec!r} "
                         "(expected [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp])")
    ports = [int(match["container"])] + ([int(match["host"])] if match["host"] else [])
    if not all(0 < p < 65536 for p in ports):
        raise UsageError(f"invalid port in {spec!r}")
    return PortBinding(container_port=int(match["container"]), proto=match["proto"] or "tcp",
                       host_port=int(match["host"] or 0), host_ip=match["ip"] or "")


def run_create(args) -> int:
    network = _controller(args).create_network(
        args.name, args.host_ns, args.driver, subnet=args.subnet, gateway=args.gateway,
        ip_range=args.ip_range, internal=args.internal, options=_pairs(args.opt, "option"),
        labels=_pairs(args.label, "label"))
    print(network.id)
    return EXIT_OK


def run_rm(args) -> int:
    controller = _controller(args)
    for name in args.names:
        controller.delete_network(name, args.host_ns, force=args.force)
        print(name)
    return EXIT_OK


def run_ls(args) -> int:
    controller = _controller(args)
    networks = controller.networks(args.host_ns)
    if args.json:
        print_json([_plain(n) for n in networks])
        return EXIT_OK
    rows = [(n.short_id, n.name, n.driver, n.scope.value, n.subnet, _ns_name(n.host),
             len(controller.endpoints(n))) for n in networks]
    print_table(("NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET", "HOST NS", "ENDPOINTS"),
                rows, terminal.look(args.color))
    return EXIT_OK


def run_inspect(args) -> int:
    controller = _controller(args)
    network = controller.network(args.name, args.host_ns)
    data = _plain(network)
    data["endpoints"] = [_plain(e) for e in controller.endpoints(network)]
    print_json(data)
    return EXIT_OK


def run_connect(args) -> int:
    endpoint = _controller(args).connect(
        args.name, args.sandbox, args.container, host=args.host_ns, address=args.ip,
        ports=[parse_publish(p) for p in args.publish], aliases=args.alias)
    print(f"{endpoint.name} {endpoint.ifname} {endpoint.address} "
          + " ".join(str(p) for p in endpoint.ports))
    return EXIT_OK


def run_disconnect(args) -> int:
    _controller(args).disconnect(args.name, args.container, args.host_ns)
    return EXIT_OK


def run_check(args) -> int:
    controller = _controller(args)
    for line in controller.reconcile():
        print(f"reconciled: {line}")
    findings = controller.check(args.name, args.host_ns)
    if args.json:
        print_json([{"code": f.code, "rule": f.rule, "severity": f.severity.value,
                     "namespace": f.namespace.display, "subject": f.subject,
                     "message": f.message,
                     "repair": [s.command(f.namespace.name) for s in f.repair.steps]
                     if f.repair else []} for f in findings])
    else:
        for f in findings:
            print(f"{f.code} {f.severity.value:7} {f.namespace.display}: {f.message}")
            for step in f.repair.steps if f.repair else ():
                print(f"    repair: {step.command(f.namespace.name)}")
        if not findings:
            print("no findings: the kernel matches what the drivers built")
    return EXIT_FINDINGS if findings else EXIT_OK


def _ns_name(path: str) -> str:
    return path.rsplit("/", 1)[-1] if path.startswith("/run/netns/") else path


def _plain(record) -> dict:
    data = asdict(record)
    if "scope" in data:
        data["scope"] = record.scope.value
    for key in ("options", "labels", "data"):
        if key in data:
            data[key] = dict(data[key])
    return data


def run_agent(args) -> int:
    """Serve the host until SIGTERM or Ctrl-C; the lease is revoked on the way out."""
    import signal
    import sys
    import threading

    from netdiag.drivers.common.namespaces import namespace_path
    from netdiag.drivers.overlay.etcd_plane import run_agent as serve
    from netdiag.store.etcd import EtcdStore

    controller = _controller(args)
    store = controller.store
    if not isinstance(store, EtcdStore):
        raise UsageError("net agent needs a store machines share: --store etcd://HOST:PORT")
    host = namespace_path(args.host_ns)
    overlay = controller.driver("overlay")
    stop = threading.Event()

    def log(line: str) -> None:
        print(f"netdiag net agent: {line}", file=sys.stderr, flush=True)

    # SIGTERM ends it as Ctrl-C does: out of a blocked read, through serve's finally.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve(store, host, overlay.deliver, stop, ttl=args.ttl,
              ready=lambda: log(f"serving {host} on {store.path}"), log=log)
    except KeyboardInterrupt:
        stop.set()
    return EXIT_OK
