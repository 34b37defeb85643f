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
from pathlib import Path
from typing import Protocol, runtime_checkable

from netdiag.errors import DriverError, NetdiagError
from netdiag.findings.finding import Finding
from netdiag.model import NamespaceRef, NsKind
from netdiag.netns import inode_of
from netdiag.store.records import Endpoint, Network, Pool, Scope


@dataclass(frozen=True, slots=True)
class Capability:
    scope: Scope = Scope.LOCAL


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


def namespace_ref(path: str) -> NamespaceRef:
    named = path.startswith("/run/netns/")
    name = Path(path).name if named else ""
    return NamespaceRef(id=inode_of(path), kind=NsKind.NAMED if named else NsKind.PID,
                        path=path, name=name, label=name or path)


# --- named steps with rollback --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetupStep:
    """One named piece of a driver operation, with what undoes it (None: nothing to undo)."""

    name: str
    do: Callable[[], object]
    undo: Callable[[], object] | None = None


def run_steps(what: str, steps: Sequence[SetupStep]) -> None:
    """Run steps in order; if one fails, undo the finished ones in reverse and raise.

    The error keeps its kind (a Conflict stays a Conflict) and names the step that failed;
    anything that is not a NetdiagError becomes a DriverError. An error that already names
    its step (from steps run inside a step) passes through unchanged.
    """
    done: list[SetupStep] = []
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


def _undo(done: list[SetupStep]) -> None:
    for step in reversed(done):
        if step.undo is None:
            continue
        try:
            step.undo()
        except Exception:  # noqa: BLE001 - best effort: the original error is what matters
            pass
