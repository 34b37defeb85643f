"""A netdiag lab's intent, for the snapshots that hold its namespaces.

Read from what the lab itself keeps: its journal (/run/netdiag/labs/NAME.json: the topology
it was built from, its store), the topology (each container's program: `command`, and each
service's on its tasks) and the driver store (the networks each node is on, the
names the lab's DNS answers there: endpoints and their aliases, services and their VIPs; and
the ports each node publishes, as allocated). A
lab that cannot be read in full is still listed, with what went wrong: the flows that need
the missing part are then not checked, and the check says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from netdiag.errors import NetdiagError
from netdiag.model import NamespaceRef
from netdiag.model.lab import LabApp, LabIntent, LabName, LabPort


def _published6(driver: str, endpoint, host_ip: str) -> bool:
    """Does the driver publish this port over IPv6 too? The bridge driver does for a port
    bound on every address of a dual-stack endpoint (netdiag/drivers/common/firewall.py), whose
    IPv6 address is its `ipv6_address` datum (drivers/ipam.IPV6_ADDRESS, a layer above this)."""
    return driver == "bridge" and host_ip == "0.0.0.0" and bool(endpoint.datum("ipv6_address"))


def read(refs: Iterable[NamespaceRef]) -> tuple[LabIntent, ...]:
    labs = sorted({ref.lab for ref in refs if ref.lab})
    return tuple(_read(name) for name in labs)


def _read(name: str) -> LabIntent:
    from netdiag.topology import journal as journals  # the lab's code only when a lab is in view
    from netdiag.topology import plan, schema

    try:
        journal = journals.load(name)
        topology = schema.Topology.model_validate_json(journal.definition) \
            if journal.definition else schema.load(journal.topology) if journal.topology \
            else None
    except (NetdiagError, OSError, ValueError) as exc:
        return LabIntent(name, problem=str(exc))
    apps = []
    if topology is not None:
        for step in plan.plan(topology):
            if isinstance(step, plan.Run) and step.command.app != "sleep":
                command = step.command
                apps.append(LabApp(step.container, command.app, command.port,
                                   "udp" if command.app == "udp-echo" else "tcp",
                                   command.backend or ""))
    try:
        attached, names, published = _from_store(journal.store, journal.nodes)
    except (NetdiagError, OSError) as exc:
        return LabIntent(name, journal.topology, apps=tuple(apps),
                         problem=f"its store {journal.store}: {exc}")
    return LabIntent(name, journal.topology, attached, names, tuple(apps), published)


def _from_store(path: str, nodes: dict[str, str]
                ) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[LabName, ...],
                           tuple[LabPort, ...]]:
    import sqlite3

    from netdiag.store import SqliteStore

    if not path:
        return (), (), ()
    if not Path(path).exists():  # opening it would make an empty one
        raise OSError("it is gone")
    by_path = {f"/run/netns/{namespace}": node for node, namespace in nodes.items()}
    attached: dict[str, list[str]] = {}
    names: list[LabName] = []
    published: list[LabPort] = []
    try:
        with SqliteStore(path) as store, store.transaction(write=False) as tx:
            for network in tx.networks():
                members = tx.endpoints(network.id)
                for endpoint in members:
                    node = by_path.get(endpoint.sandbox, endpoint.name)
                    attached.setdefault(node, []).append(network.name)
                    if endpoint.ip:
                        names += [LabName(network.name, alias, endpoint.ip)
                                  for alias in (endpoint.name, *endpoint.aliases)]
                    published += [LabPort(node, network.name, by_path.get(endpoint.host, ""),
                                          p.host_port, p.container_port, p.proto,
                                          _published6(network.driver, endpoint, p.host_ip))
                                  for p in endpoint.ports if p.host_port]
                by_id = {e.id: e.ip for e in members}
                for service in tx.services(network.id):
                    vip = service.vip.split("/")[0]
                    if vip and service.mode == "vip":
                        names.append(LabName(network.name, service.name, vip))
                    else:  # dnsrr: the name answers with its tasks' addresses
                        names += [LabName(network.name, service.name, by_id[b])
                                  for b in service.backends if by_id.get(b)]
    except sqlite3.Error as exc:
        raise OSError(str(exc)) from None
    return (tuple((node, tuple(networks)) for node, networks in sorted(attached.items())),
            tuple(names), tuple(published))
