"""The driver API: records, the small Driver protocol, optional capabilities, IPAM, and steps.

Modelled on libnetwork and CNI. A driver implements six required verbs — create/delete
network, create/delete endpoint, join a sandbox (a network namespace), leave — plus `check`,
which compares live kernel state with what the driver configured and yields ordinary
Findings (CNI's CHECK verb). Anything more is an optional capability (a runtime-checkable
Protocol) that the controller tests with isinstance() where it needs it.

Records are frozen: a verb returns an updated copy (dataclasses.replace) and the controller
writes it to the store. Every "host" is a network namespace given by path — never the root
namespace — so a whole multi-host topology can live on one machine.

A driver that does several things in a row describes them as named Steps, one small module
per concern, and runs them with run_steps, which undoes the finished ones when a later one fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

from netdiag.checks.api import Rule
from netdiag.checks.finding import Finding, Severity
from netdiag.errors import DriverError, NetdiagError
from netdiag.model import NamespaceRef, NsKind
from netdiag.netns import inode_of


class Scope(str, Enum):
    LOCAL = "local"  # the network exists on one host namespace (bridge, macvlan, host, none)
    GLOBAL = "global"  # the network spans host namespaces (overlay)


@dataclass(frozen=True, slots=True)
class Capability:
    scope: Scope = Scope.LOCAL


# --- records kept in the store ------------------------------------------------------------


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


# --- the driver protocol --------------------------------------------------------------------


class Driver(Protocol):
    """What every driver implements. Drivers are built with the store: DRIVER(store)."""

    name: str
    capability: Capability
    uses_ipam: bool  # networks take a subnet from IPAM and endpoints an address

    def parse_options(self, options: Mapping[str, str]) -> object:
        """Docker-style options → the driver's typed options; UsageError when invalid."""

    def create_network(self, network: Network) -> Network: ...

    def delete_network(self, network: Network) -> None: ...

    def create_endpoint(self, network: Network, endpoint: Endpoint) -> Endpoint: ...

    def delete_endpoint(self, network: Network, endpoint: Endpoint) -> None: ...

    def join(self, network: Network, endpoint: Endpoint, sandbox: str) -> Endpoint: ...

    def leave(self, network: Network, endpoint: Endpoint) -> Endpoint: ...

    def check(self, network: Network, endpoints: Sequence[Endpoint]) -> Iterator[Finding]: ...


@runtime_checkable
class ExternalConnectivity(Protocol):
    """Drivers that publish ports (libnetwork's ProgramExternalConnectivity).

    `program_external_connectivity` allocates the host ports of `endpoint.ports` (filling in
    port 0 and the default host address) and returns the endpoint with them.
    """

    def program_external_connectivity(self, network: Network, endpoint: Endpoint) -> Endpoint: ...

    def revoke_external_connectivity(self, network: Network, endpoint: Endpoint) -> None: ...


@runtime_checkable
class HandsOver(Protocol):
    """Drivers a container engine can drive through its remote-driver API (Docker's plugins):
    `hand_over` makes the endpoint's interface in the host namespace, named `name`, and
    leaves moving it into the sandbox, naming it and addressing it to the engine; it returns
    the endpoint with what it recorded. `take_back` is the driver's part of the engine's
    leave (the engine has taken the interface out of the sandbox)."""

    def hand_over(self, network: Network, endpoint: Endpoint, name: str) -> Endpoint: ...

    def take_back(self, network: Network, endpoint: Endpoint) -> None: ...


# --- IPAM -----------------------------------------------------------------------------------


class Ipam(Protocol):
    """libnetwork's IPAM verbs. `avoid`: networks a new pool must not overlap (host routes)."""

    def request_pool(self, space: str, subnet: str = "", ip_range: str = "",
                     avoid: Sequence[str] = ()) -> Pool: ...

    def release_pool(self, pool_id: str) -> None: ...

    def request_address(self, pool_id: str, address: str = "", owner: str = "") -> str: ...

    def release_address(self, pool_id: str, address: str) -> None: ...


# --- what check() reports: ordinary findings, shared by every driver ------------------------
# Codes ND95x belong to drivers' checks; the rule engine (netdiag/checks) uses the others.

DEVICE_MISSING = Rule("ND951", "driver-device-missing", Severity.ERROR,
                      "a device the network driver created is gone")
MTU_DIFFERS = Rule("ND952", "driver-mtu-differs", Severity.WARNING,
                   "a device's MTU differs from the network's MTU option")
ADDRESS_MISSING = Rule("ND953", "driver-address-missing", Severity.ERROR,
                       "an address the network driver configured is gone")
RULE_MISSING = Rule("ND954", "driver-firewall-rule-missing", Severity.ERROR,
                    "an iptables rule the network driver wrote is gone")
DEVICE_DOWN = Rule("ND955", "driver-device-down", Severity.ERROR,
                   "a device the network driver brought up is down")
RULES = (DEVICE_MISSING, MTU_DIFFERS, ADDRESS_MISSING, RULE_MISSING, DEVICE_DOWN)


def namespace_ref(path: str) -> NamespaceRef:
    named = path.startswith("/run/netns/")
    name = Path(path).name if named else ""
    return NamespaceRef(id=inode_of(path), kind=NsKind.NAMED if named else NsKind.PID,
                        path=path, name=name, label=name or path)


# --- named steps with rollback --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One named piece of a driver operation, with what undoes it (None: nothing to undo)."""

    name: str
    do: Callable[[], object]
    undo: Callable[[], object] | None = None


def run_steps(what: str, steps: Sequence[Step]) -> None:
    """Run steps in order; if one fails, undo the finished ones in reverse and raise.

    The error keeps its kind (a Conflict stays a Conflict) and names the step that failed;
    anything that is not a NetdiagError becomes a DriverError. An error that already names
    its step (from steps run inside a step) passes through unchanged.
    """
    done: list[Step] = []
    for step in steps:
        try:
            step.do()
        except Exception as exc:
            _undo(done)
            if getattr(exc, "names_its_step", False):
                raise
            kind = type(exc) if isinstance(exc, NetdiagError) else DriverError
            error = kind(f"{what}: {step.name} failed: {exc}")
            error.names_its_step = True
            raise error from exc
        done.append(step)


def _undo(done: list[Step]) -> None:
    for step in reversed(done):
        if step.undo is None:
            continue
        try:
            step.undo()
        except Exception:  # noqa: BLE001 - best effort: the original error is what matters
            pass
