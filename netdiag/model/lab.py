"""What a netdiag lab meant, beside what the kernel shows: its programs and the names its DNS
answers — read from the lab's journal, topology file and driver store when a snapshot holds
the lab's namespaces (netdiag/collect/lab_intent.py), for the flows the lab promises
(netdiag/flows/expected.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LabName:
    """A name the lab's DNS answers on one network: a container (or alias), or a service."""

    network: str
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class LabApp:
    """One of the lab's programs, in the container (lab node) it runs in."""

    node: str
    app: str  # web, kv, echo, udp-echo, http, sleep
    port: int
    protocol: str = "tcp"
    backend: str = ""  # web: "NAME:PORT" it calls


@dataclass(frozen=True, slots=True)
class LabPort:
    """A container's (lab node's) port published on its host, on every address of both
    families where `ipv6` says so."""

    node: str
    network: str  # the network of the endpoint it is published from
    host: str  # the lab host (node) that publishes it
    host_port: int
    container_port: int
    protocol: str = "tcp"
    # Published over IPv6 too: the driver DNATs the host's IPv6 port to the node's IPv6
    # address (the bridge driver on a dual-stack network, for a port bound on every address;
    # an overlay publishes through docker_gwbridge, IPv4 only).
    ipv6: bool = False


@dataclass(frozen=True, slots=True)
class LabIntent:
    name: str
    topology: str = ""  # the file it was built from
    attached: tuple[tuple[str, tuple[str, ...]], ...] = ()  # node → the networks it is on
    names: tuple[LabName, ...] = ()
    apps: tuple[LabApp, ...] = ()
    published: tuple[LabPort, ...] = ()  # from the driver store: host ports as allocated
    problem: str = ""  # what could not be read, when something could not

    def networks_of(self, node: str) -> tuple[str, ...]:
        return next((networks for name, networks in self.attached if name == node), ())
