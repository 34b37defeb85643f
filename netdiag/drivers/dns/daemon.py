"""The resolver as a long-running service for the driver store: `python -m netdiag.drivers.dns`.

A lab or the `netdiag net` commands build networks and exit; the resolver has to outlive them.
The daemon serves every sandbox that has an endpoint on a network with embedded DNS, attaching
sandboxes as they appear in the store and detaching them as they leave (or their namespace
vanishes); it looks again whenever the store's version says somebody wrote. Given a `host`,
it serves only the sandboxes of that host's endpoints (on a store other hosts share, each
host runs its own resolver), and answers every name of their networks. Like Docker,
every user-defined network has embedded DNS but the default `bridge` network and the host and
none drivers do not, and names are forwarded to the host namespace's non-loopback nameservers
(unless `forward` is off: a lab never sends queries out of the machine).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from netdiag.drivers.dns.forward import MAX_UPSTREAMS, Upstream
from netdiag.drivers.dns.server import EmbeddedDnsServer
from netdiag.drivers.dns.store_names import StoreNames
from netdiag.drivers.ipam.host import nameservers
from netdiag.errors import NetdiagError
from netdiag.store import Store
from netdiag.store.records import Network

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2
NO_DNS_DRIVERS = ("host", "none")
# Sandboxes attached (and detached) at a time: each is mostly waiting for iptables-save and
# iptables-restore (~20 ms), so a 100-container lab would otherwise wait seconds.
WORKERS = 4


def has_dns(network: Network) -> bool:
    return network.driver not in NO_DNS_DRIVERS and not (
        network.driver == "bridge" and network.name == "bridge")


def upstreams_for(host: str) -> tuple[Upstream, ...]:
    """The host's nameservers, without loopback ones (unreachable from a sandbox)."""
    return tuple(Upstream(a) for a in nameservers(host)
                 if not a.startswith("127."))[:MAX_UPSTREAMS]


class ResolverDaemon:
    def __init__(self, store: Store, forward: bool = True, host: str = ""):
        self.store = store
        self.forward = forward
        self.host = host
        self.names = StoreNames(store)
        self.server = EmbeddedDnsServer(self.names)
        self._versions = store.versions()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="netdiag-dns-attach")

    def wanted(self) -> dict[str, tuple[Upstream, ...]]:
        """sandbox path → upstreams, for every live sandbox on a network with DNS."""
        found: dict[str, tuple[Upstream, ...]] = {}
        with self.store.transaction(write=False) as tx:
            networks = {n.id: n for n in tx.networks() if has_dns(n)}
            for endpoint in tx.endpoints(host=self.host or None):
                network = networks.get(endpoint.network_id)
                if network and endpoint.sandbox and os.path.exists(endpoint.sandbox):
                    upstreams = upstreams_for(network.host) if self.forward else ()
                    found.setdefault(endpoint.sandbox, upstreams)
        return found

    def sync(self) -> None:
        wanted = self.wanted()
        served = {a.path for a in self.server.attachments()}
        self._each(self.server.detach, sorted(served - set(wanted)))
        self._each(lambda path: self.server.attach(path, wanted[path]),
                   sorted(set(wanted) - served))

    def _each(self, action: Callable[[str], object], paths: list[str]) -> None:
        def quietly(path: str) -> None:
            try:
                action(path)
            except NetdiagError as exc:  # a sandbox that vanished meanwhile: next round
                log.warning("%s: %s", path, exc)
        list(self._pool.map(quietly, paths))

    def run(self, stop: threading.Event, poll: float = POLL_SECONDS,
            ready: Callable[[], None] | None = None) -> None:
        """Serve until `stop` is set, re-syncing whenever the store changed; `ready` is called
        once the sandboxes present at start are served."""
        seen = None
        while not stop.is_set():
            version = self._versions.current()
            if version != seen:
                self.sync()
                seen = version
                if ready is not None:
                    ready()
                    ready = None
            stop.wait(poll)

    def close(self) -> None:
        self._each(self.server.detach, [a.path for a in self.server.attachments()])
        self._pool.shutdown()
        self.server.close()
        self.names.close()
        self._versions.close()
