"""The resolver's table source backed by the driver store, so it always sees live endpoints.

A sandbox resolves every endpoint and service of the networks it has an endpoint on. Building
that table reads and decodes every endpoint of those networks, so it is kept per sandbox and
rebuilt only when the database changed. A connection of its own asks SQLite's `data_version`,
which moves whenever any other connection commits — the store's, or another process's — and
costs microseconds, so every query still sees the current names.
"""

from __future__ import annotations

import sqlite3
import threading

from netdiag.drivers.dns.records import NamedEndpoint, NamedService, NameTable, build_table
from netdiag.drivers.store import Store, Tx


def _table(tx: Tx, sandbox: str) -> NameTable:
    endpoints, services = [], []
    network_ids = dict.fromkeys(e.network_id for e in tx.endpoints(sandbox=sandbox))
    for network in (n for n in tx.networks() if n.id in network_ids):
        members = tx.endpoints(network.id)
        endpoints += [NamedEndpoint(network.name, e.name, e.ip, e.aliases)
                      for e in members if e.address]
        by_id = {e.id: e.ip for e in members}
        services += [NamedService(network.name, s.name,
                                  s.vip.split("/")[0] if s.mode == "vip" else "",
                                  tuple(by_id[b] for b in s.backends if b in by_id))
                     for s in tx.services(network.id)]
    return build_table(endpoints, services)


class StoreNames:
    """Callable: sandbox path → the NameTable of the networks that sandbox is attached to."""

    def __init__(self, store: Store):
        self.store = store
        self._watch = sqlite3.connect(store.path, check_same_thread=False)
        self._watch_lock = threading.Lock()
        self._cache: dict[str, tuple[int, NameTable]] = {}

    def _version(self) -> int:
        with self._watch_lock:
            return self._watch.execute("PRAGMA data_version").fetchone()[0]

    def __call__(self, sandbox: str) -> NameTable:
        version = self._version()
        cached = self._cache.get(sandbox)
        if cached is not None and cached[0] == version:
            return cached[1]
        with self.store.transaction(write=False) as tx:
            table = _table(tx, sandbox)
        self._cache[sandbox] = (version, table)
        return table

    def close(self) -> None:
        self._watch.close()
