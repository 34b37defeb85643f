"""Service VIPs from the driver store: records → what `balancer.program` takes, and draining.

A Service record names its VIP, its ports (container port = service port, host port = the
routing-mesh port) and its backends by endpoint id; the endpoints give the addresses. Draining
is recorded in the service's data (`draining`: endpoint ids with weight 0) and the mark is taken
once from the store's numbers (`fwmark`, from 256 like Docker). `sync` programs one namespace
with every service of every network that namespace has an endpoint on or hosts.
"""

from __future__ import annotations

from dataclasses import replace

from netdiag.drivers.lb.balancer import program
from netdiag.drivers.lb.model import FIRST_MARK, Backend, ServiceVip
from netdiag.errors import NotFound
from netdiag.store import Store, Tx
from netdiag.store.records import Service

MARK_SPACE = "fwmark"
LAST_MARK = 0xFFFF


def _data(service: Service) -> dict[str, str]:
    return dict(service.data)


def put_service(store: Store, service: Service) -> Service:
    """Record a service, taking its mark on first use."""
    with store.transaction() as tx:
        data = _data(service)
        if "mark" not in data:
            data["mark"] = str(tx.take_number(MARK_SPACE, FIRST_MARK, LAST_MARK,
                                              owner=service.id))
        service = replace(service, data=tuple(sorted(data.items())))
        tx.put_service(service)
    return service


def drain(store: Store, service_id: str, endpoint_id: str) -> Service:
    """Give a backend weight 0: no new connections, established ones carry on."""
    with store.transaction() as tx:
        service = _service(tx, service_id)
        data = _data(service)
        draining = set(filter(None, data.get("draining", "").split(","))) | {endpoint_id}
        data["draining"] = ",".join(sorted(draining))
        service = replace(service, data=tuple(sorted(data.items())))
        tx.put_service(service)
    return service


def _service(tx: Tx, service_id: str) -> Service:
    for service in tx.services():
        if service.id == service_id:
            return service
    raise NotFound(f"service {service_id} not found")


def vips(tx: Tx, service: Service) -> list[ServiceVip]:
    """One ServiceVip per port of the service."""
    addresses = {e.id: e.ip for e in tx.endpoints(service.network_id)}
    data = _data(service)
    draining = set(data.get("draining", "").split(","))
    mark = int(data.get("mark", FIRST_MARK))
    found = []  # one mark for all ports of a service, like Docker's fwmark services
    for port in service.ports:
        backends = tuple(Backend(addresses[b], port.container_port, 0 if b in draining else 1)
                         for b in service.backends if b in addresses)
        found.append(ServiceVip(service.name, service.vip.split("/")[0], port.container_port,
                                backends, port.proto, mark, port.host_port))
    return found


def sync(store: Store, path: str) -> list[ServiceVip]:
    """Program the namespace at `path` with the services of the networks it is part of."""
    with store.transaction(write=False) as tx:
        networks = {e.network_id for e in tx.endpoints(sandbox=path)}
        networks |= {n.id for n in tx.networks(host=path)}
        services = [vip for s in tx.services() if s.network_id in networks and s.mode == "vip"
                    and s.vip for vip in vips(tx, s)]
    program(path, services)
    return services
