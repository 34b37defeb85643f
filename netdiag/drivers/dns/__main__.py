"""`python -m netdiag.drivers.dns [--store PATH|URL] [--host-ns HOST]`: serve the embedded DNS
of the store's sandboxes (of one host's, with --host-ns) until SIGTERM or SIGINT, then remove
every NAT rule and resolv.conf it installed."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from netdiag.drivers.common.namespaces import namespace_path
from netdiag.drivers.dns.daemon import ResolverDaemon
from netdiag.errors import NetdiagError
from netdiag.store import DEFAULT_PATH, open_store


def _announce() -> None:
    print("ready", flush=True)
    sys.stdout = open(os.devnull, "w")  # whoever waited for the line may stop reading


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m netdiag.drivers.dns",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(DEFAULT_PATH),
                        help="the driver store: a SQLite file or etcd://HOST:PORT")
    parser.add_argument("--host-ns", default="",
                        help="serve only the sandboxes of this host namespace's endpoints")
    parser.add_argument("--no-forward", action="store_true",
                        help="answer local names only (SERVFAIL for the rest): send nothing out")
    parser.add_argument("--ready", action="store_true",
                        help='print "ready" on stdout once the sandboxes present are served')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="netdiag-dns: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        host = namespace_path(args.host_ns) if args.host_ns else ""
        with open_store(args.store) as store:
            daemon = ResolverDaemon(store, forward=not args.no_forward, host=host)
            try:
                daemon.run(stop, ready=_announce if args.ready else None)
            finally:
                daemon.close()
    except NetdiagError as exc:
        sys.exit(f"netdiag-dns: {exc}")


if __name__ == "__main__":
    main()
