"""Topology → Plan: the ordered steps that build a lab, printable before anything is built.

Describing a topology (schema.py) is kept apart from building it (build.py): the plan is pure
and is what `netdiag lab plan` prints. Every namespace a lab makes is `<lab>-<node>`; the
underlay switch that joins the hosts (and plays "the outside world" for them) is `<lab>-ul`.
Hosts take underlay addresses from the first one up, in the order the file lists them; the
switch takes the last address of the underlay subnet and is every host's default gateway.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netdiag.lab.schema import Command, Fault, Network, Publish, Service, Topology

UNDERLAY_NODE = "ul"
DNS_DRIVERS = ("bridge", "overlay", "macvlan")  # user-defined networks have embedded DNS


def namespace_name(lab: str, node: str) -> str:
    return f"{lab}-{node}"


@dataclass(frozen=True, slots=True)
class CreateNamespace:
    node: str
    netns: str

    def describe(self) -> str:
        return f"namespace {self.netns} for {self.node}"


@dataclass(frozen=True, slots=True)
class CreateUnderlay:
    netns: str
    address: str  # "10.99.0.254/24"
    mtu: int

    def describe(self) -> str:
        return f"underlay switch br0 {self.address} mtu {self.mtu} in {self.netns}"


@dataclass(frozen=True, slots=True)
class ConnectHost:
    host: str
    netns: str
    address: str
    gateway: str
    mtu: int

    def describe(self) -> str:
        return f"host {self.host}: eth0 {self.address} mtu {self.mtu}, default via {self.gateway}"


@dataclass(frozen=True, slots=True)
class CreateNetwork:
    network: Network
    hosts: tuple[str, ...]

    def describe(self) -> str:
        subnet = self.network.subnet or "subnet from IPAM"
        hosts = ", ".join(self.hosts)
        return f"{self.network.driver} network {self.network.name} ({subnet}) on {hosts}"


@dataclass(frozen=True, slots=True)
class Connect:
    container: str
    host: str
    network: str
    ip: str | None
    aliases: tuple[str, ...]
    publish: tuple[Publish, ...]

    def describe(self) -> str:
        ports = "".join(f", publish {p.host_port}:{p.container_port}/{p.protocol}"
                        for p in self.publish)
        return f"connect {self.container} to {self.network} on {self.host} " \
               f"({self.ip or 'address from IPAM'}{ports})"


@dataclass(frozen=True, slots=True)
class StartResolver:
    def describe(self) -> str:
        return "embedded DNS on 127.0.0.11 in every container of a user-defined network"


@dataclass(frozen=True, slots=True)
class CreateService:
    service: Service
    tasks: tuple[str, ...]  # the task containers' node names

    def describe(self) -> str:
        return (f"service {self.service.name} ({self.service.endpoint_mode}) on "
                f"{self.service.network}: tasks {', '.join(self.tasks)}")


@dataclass(frozen=True, slots=True)
class Run:
    container: str
    command: Command

    def describe(self) -> str:
        backend = f" --backend {self.command.backend}" if self.command.backend else ""
        return f"run in {self.container}: {self.command.app} --port {self.command.port}{backend}"


@dataclass(frozen=True, slots=True)
class InjectFault:
    fault: Fault

    def describe(self) -> str:
        details = self.fault.model_dump(exclude={"kind", "node"})
        text = " ".join(f"{k}={v}" for k, v in details.items())
        return f"fault {self.fault.kind} on {self.fault.node}: {text}"


PlanStep = (CreateNamespace | CreateUnderlay | ConnectHost | CreateNetwork | Connect
            | StartResolver | CreateService | Run | InjectFault)


def host_addresses(topology: Topology) -> dict[str, str]:
    """host name → its underlay address with prefix, numbered from the subnet's first."""
    subnet = ipaddress.ip_network(topology.underlay.subnet)
    hosts = list(subnet.hosts())
    return {h.name: f"{hosts[i]}/{subnet.prefixlen}" for i, h in enumerate(topology.hosts)}


def underlay_gateway(topology: Topology) -> str:
    subnet = ipaddress.ip_network(topology.underlay.subnet)
    return f"{subnet.broadcast_address - 1}/{subnet.prefixlen}"


def task_names(service: Service) -> tuple[str, ...]:
    return tuple(f"{service.name}-{i}" for i in range(1, service.replicas + 1))


def plan(topology: Topology) -> tuple[PlanStep, ...]:
    lab = topology.name
    steps: list[PlanStep] = [CreateNamespace(UNDERLAY_NODE, namespace_name(lab, UNDERLAY_NODE))]
    steps += [CreateNamespace(h.name, namespace_name(lab, h.name)) for h in topology.hosts]
    containers = [c.name for c in topology.containers]
    containers += [t for s in topology.services for t in task_names(s)]
    steps += [CreateNamespace(c, namespace_name(lab, c)) for c in containers]

    gateway = underlay_gateway(topology)
    steps.append(CreateUnderlay(namespace_name(lab, UNDERLAY_NODE), gateway, topology.underlay.mtu))
    addresses = host_addresses(topology)
    steps += [ConnectHost(h.name, namespace_name(lab, h.name), addresses[h.name],
                          gateway.split("/")[0], h.mtu or topology.underlay.mtu)
              for h in topology.hosts]

    steps += [CreateNetwork(n, topology.hosts_of(n)) for n in topology.networks]
    for c in topology.containers:
        for i, att in enumerate(c.networks):
            steps.append(Connect(c.name, topology.host_of(c), att.network, att.ip, att.aliases,
                                 c.publish if i == 0 else ()))
    networks = {n.name: n for n in topology.networks}
    for s in topology.services:
        hosts = s.hosts or topology.hosts_of(networks[s.network])
        for i, task in enumerate(task_names(s)):
            steps.append(Connect(task, hosts[i % len(hosts)], s.network, None, (), ()))
    if any(n.driver in DNS_DRIVERS for n in topology.networks):
        steps.append(StartResolver())
    steps += [CreateService(s, task_names(s)) for s in topology.services]

    steps += [Run(c.name, c.command) for c in topology.containers if c.command]
    steps += [Run(t, s.command) for s in topology.services if s.command for t in task_names(s)]
    steps += [InjectFault(f) for f in topology.faults]
    return tuple(steps)
