"""The resolver's table source backed by the driver store, so it always sees live endpoints.

A sandbox resolves every endpoint and service of the networks it has an endpoint on. Building
that table reads and decodes every endpoint of those networks, so it is kept per sandbox and
rebuilt only when the store changed: its version (`Store.versions`: SQLite's `data_version`
on a connection of its own, microseconds; etcd's revision, one round trip) moves whenever
anybody commits, so every query still sees the current names.
"""

from __future__ import annotations

from netdiag.drivers.dns.records import NamedEndpoint, NamedService, NameTable, build_table
from netdiag.drivers.ipam import IPV6_ADDRESS
from netdiag.store import Store, Tx


def _table(tx: Tx, sandbox: str) -> NameTable:
    endpoints, services = [], []
    network_ids = dict.fromkeys(e.network_id for e in tx.endpoints(sandbox=sandbox))
    for network in (n for n in tx.networks() if n.id in network_ids):
        members = tx.endpoints(network.id)
        endpoints += [NamedEndpoint(network.name, e.name, e.ip, e.aliases,
                                    e.datum(IPV6_ADDRESS).split("/")[0])
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
        self._versions = store.versions()
        self._cache: dict[str, tuple[int, NameTable]] = {}

    def __call__(self, sandbox: str) -> NameTable:
        version = self._versions.current()
        cached = self._cache.get(sandbox)
        if cached is not None and cached[0] == version:
            return cached[1]
        with self.store.transaction(write=False) as tx:
            table = _table(tx, sandbox)
        self._cache[sandbox] = (version, table)
        return table

    def close(self) -> None:
        self._versions.close()
