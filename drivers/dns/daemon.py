"""The resolver as a long-running service for the driver store: `python -m netdiag.drivers.dns`.

A lab or the `netdiag net` commands build networks and exit; the resolver has to outlive them.
The daemon serves every sandbox that has an endpoint on a network with embedded DNS, attaching
sandboxes as they appear in the store and detaching them as they leave (or their namespace
vanishes); it looks again whenever SQLite's `data_version` says the store changed. Like Docker,
every user-defined network has embedded DNS but the default `bridge` network and the host and
none drivers do not, and names are forwarded to the host namespace's non-loopback nameservers.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

from netdiag.drivers.api import Network
from netdiag.drivers.dns.forward import MAX_UPSTREAMS, Upstream
from netdiag.drivers.dns.server import EmbeddedDns
from netdiag.drivers.dns.store_names import StoreNames
from netdiag.drivers.ipam.host import nameservers
from netdiag.drivers.store import Store
from netdiag.errors import NetdiagError

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2
NO_DNS_DRIVERS = ("host", "none")


def has_dns(network: Network) -> bool:
    return network.driver not in NO_DNS_DRIVERS and not (
        network.driver == "bridge" and network.name == "bridge")


def upstreams_for(host: str) -> tuple[Upstream, ...]:
    """The host's nameservers, without loopback ones (unreachable from a sandbox)."""
    return tuple(Upstream(a) for a in nameservers(host)
                 if not a.startswith("127."))[:MAX_UPSTREAMS]


class ResolverDaemon:
    def __init__(self, store: Store):
        self.store = store
        self.names = StoreNames(store)
        self.server = EmbeddedDns(self.names)
        self._watch = sqlite3.connect(store.path, check_same_thread=False)

    def wanted(self) -> dict[str, tuple[Upstream, ...]]:
        """sandbox path → upstreams, for every live sandbox on a network with DNS."""
        found: dict[str, tuple[Upstream, ...]] = {}
        with self.store.transaction(write=False) as tx:
            networks = {n.id: n for n in tx.networks() if has_dns(n)}
            for endpoint in tx.endpoints():
                network = networks.get(endpoint.network_id)
                if network and endpoint.sandbox and os.path.exists(endpoint.sandbox):
                    found.setdefault(endpoint.sandbox, upstreams_for(network.host))
        return found

    def sync(self) -> None:
        wanted = self.wanted()
        served = {a.path for a in self.server.attachments()}
        for path in served - set(wanted):
            self.server.detach(path)
        for path in set(wanted) - served:
            try:
                self.server.attach(path, wanted[path])
            except NetdiagError as exc:  # a sandbox that vanished meanwhile: next round
                log.warning("cannot serve %s: %s", path, exc)

    def run(self, stop: threading.Event, poll: float = POLL_SECONDS) -> None:
        """Serve until `stop` is set, re-syncing whenever the store changed."""
        seen = None
        while not stop.is_set():
            version = self._watch.execute("PRAGMA data_version").fetchone()[0]
            if version != seen:
                self.sync()
                seen = version
            stop.wait(poll)

    def close(self) -> None:
        self.server.close()
        self.names.close()
        self._watch.close()
