"""The lab's resolver process: embedded DNS (127.0.0.11) for every container of the lab.

    python -m netdiag.lab.resolver --store LAB.db

It serves every sandbox that has an endpoint in the driver store, answering from the store (so
containers joining later are seen), and re-reads the list of sandboxes every half second. It
prints "ready" on stdout once the sandboxes present at start are served — `lab up` waits for
that before starting programs that need names — and undoes its NAT rules and resolv.conf files
when stopped with SIGTERM. Lab containers get no upstream servers: a lab never sends queries out
of the machine, so names that are not local get SERVFAIL.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from netdiag.drivers.dns.server import EmbeddedDns
from netdiag.drivers.dns.store_names import StoreNames
from netdiag.drivers.store import Store
from netdiag.errors import NetdiagError

RESYNC_SECONDS = 0.5
WORKERS = 4  # sandboxes attached (and detached) at a time


def sandboxes(store: Store) -> set[str]:
    with store.transaction(write=False) as tx:
        return {e.sandbox for e in tx.endpoints() if e.sandbox and os.path.exists(e.sandbox)}


def serve(store: Store, stop: threading.Event) -> None:
    names = StoreNames(store)
    with EmbeddedDns(names) as dns, \
            ThreadPoolExecutor(WORKERS, thread_name_prefix="resolver-attach") as pool:
        served: set[str] = set()
        announced = False
        while not stop.is_set():
            wanted = sandboxes(store)
            # Several sandboxes at a time: attaching one is mostly waiting for iptables-save
            # and iptables-restore (~20 ms), so a 100-container lab would wait seconds.
            new = sorted(wanted - served)
            for path, error in zip(new, pool.map(lambda p: _quietly(dns.attach, p), new)):
                if error is None:
                    served.add(path)
                else:  # a sandbox that vanished meanwhile: next round
                    print(f"resolver: {path}: {error}", file=sys.stderr)
            for path in served - wanted:
                dns.detach(path)
                served.discard(path)
            if not announced:
                print("ready", flush=True)
                sys.stdout = open(os.devnull, "w")  # `lab up` stops reading after this line
                announced = True
            stop.wait(RESYNC_SECONDS)
        # Stopping: undo NAT rules and resolv.conf files several sandboxes at a time too
        # (`lab down` gives the resolver STOP_GRACE seconds before SIGKILL).
        gone = sorted(served)
        for path, error in zip(gone, pool.map(lambda p: _quietly(dns.detach, p), gone)):
            if error is not None:
                print(f"resolver: {path}: {error}", file=sys.stderr)
    names.close()


def _quietly(action, path: str) -> NetdiagError | None:
    try:
        action(path)
    except NetdiagError as exc:
        return exc
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netdiag.lab.resolver")
    parser.add_argument("--store", required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Store(args.store) as store:
        serve(store, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
