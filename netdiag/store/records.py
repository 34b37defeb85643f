"""The drivers' records, as the store keeps them: networks, endpoints, services, pools and
published ports. Records are frozen: a driver verb returns an updated copy
(dataclasses.replace) and the controller writes it to the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Scope(str, Enum):
    LOCAL = "local"  # the network exists on one host namespace (bridge, macvlan, host, none)
    GLOBAL = "global"  # the network spans host namespaces (overlay)


@dataclass(frozen=True, slots=True)
class PortBinding:
    """A published port: host_ip:host_port on the host namespace → the endpoint's port."""

    container_port: int
    proto: str = "tcp"
    host_port: int = 0  # 0: the driver picks a free port from the ephemeral range
    host_ip: str = ""  # "": the network's default binding address (0.0.0.0 unless set)

    def __str__(self) -> str:
        return f"{self.host_ip or '0.0.0.0'}:{self.host_port}->{self.container_port}/{self.proto}"


@dataclass(frozen=True, slots=True)
class Network:
    id: str  # 64 hex characters, like Docker's
    name: str
    driver: str
    host: str  # path of the namespace that plays the host (the first one, for global scope)
    scope: Scope = Scope.LOCAL
    subnet: str = ""  # "172.18.0.0/16"; "" for networks without IPAM (host, none)
    gateway: str = ""  # "172.18.0.1"
    ip_range: str = ""
    pool_id: str = ""
    internal: bool = False
    options: tuple[tuple[str, str], ...] = ()  # driver options as given (Docker-style keys)
    labels: tuple[tuple[str, str], ...] = ()  # who made it: ("netdiag.lab", "demo")...
    created: str = ""  # ISO 8601, UTC

    def option(self, key: str, default: str = "") -> str:
        return dict(self.options).get(key, default)

    def label(self, key: str, default: str = "") -> str:
        return dict(self.labels).get(key, default)

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    network_id: str
    name: str  # the container (sandbox) name the endpoint belongs to
    host: str  # path of the host namespace the endpoint lives on
    sandbox: str = ""  # path of the container namespace, "" until joined
    address: str = ""  # "172.18.0.2/16"; "" for host/none
    mac: str = ""
    ifname: str = ""  # inside the sandbox: eth0, eth1...
    host_ifname: str = ""  # the host-side device: veth + 7 hex
    ports: tuple[PortBinding, ...] = ()
    aliases: tuple[str, ...] = ()
    data: tuple[tuple[str, str], ...] = ()  # driver-specific facts worth keeping

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]

    def datum(self, key: str, default: str = "") -> str:
        return dict(self.data).get(key, default)


@dataclass(frozen=True, slots=True)
class Service:
    """A service VIP with its backends (endpoint ids); used by the load-balancing driver."""

    id: str
    name: str
    network_id: str
    vip: str = ""
    mode: str = "vip"  # vip or dnsrr
    ports: tuple[PortBinding, ...] = ()
    backends: tuple[str, ...] = ()
    data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Pool:
    """An IPAM pool: a subnet (and optional sub-range) taken from one address space."""

    id: str
    space: str  # "local:<host path>" for local scope, "global" for global scope
    subnet: str
    ip_range: str = ""
