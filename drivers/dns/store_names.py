"""The resolver's table source backed by the driver store, so it always sees live endpoints.

A sandbox resolves every endpoint and service of the networks it has an endpoint on. The store
is asked on each query; SQLite answers these small reads in tens of microseconds, which keeps
the resolver simple (no cache to invalidate) and well above Docker's throughput.
"""

from __future__ import annotations

from netdiag.drivers.dns.records import NamedEndpoint, NamedService, NameTable, build_table
from netdiag.drivers.store import Store


class StoreNames:
    """Callable: sandbox path → the NameTable of the networks that sandbox is attached to."""

    def __init__(self, store: Store):
        self.store = store

    def __call__(self, sandbox: str) -> NameTable:
        endpoints, services = [], []
        with self.store.transaction(write=False) as tx:
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
