"""Topology → Plan: the ordered steps that build a lab, printable before anything is built.

Describing a topology (schema.py) is kept apart from building it (build.py): the plan is pure
and is what `netdiag lab plan` prints. Every namespace a lab makes is `<lab>-<node>`; the
underlay switch that joins the hosts (and plays "the outside world" for them) is `<lab>-ul`.
Hosts take underlay addresses from the first one up, in the order the file lists them; the
switch takes the last address of the underlay subnet and is every host's default gateway.

`plan(topology, host=NAME)` is one host's part, for labs whose hosts are built by processes of
their own on a store they share (`lab up FILE --etcd URL --host NAME`): that host's namespaces
and containers; the underlay switch made by whichever host comes first; the host's overlay
agent before its first join; each network made by its first host and awaited by the others;
a resolver for that host's containers only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from netdiag.errors import TopologyError
from netdiag.topology.journal import UNDERLAY_NODE
from netdiag.topology.schema import Command, Fault, NetworkSpec, PublishSpec, ServiceSpec, Topology

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
    shared: bool = False  # one host's part: made by the first host, kept until the last
    address6: str = ""  # "fd00:99::fe/64" when the underlay is dual stack

    def describe(self) -> str:
        shared = ", shared by the lab's hosts (made if missing)" if self.shared else ""
        also = f" {self.address6}" if self.address6 else ""
        return (f"underlay switch br0 {self.address}{also} mtu {self.mtu} in {self.netns}"
                f"{shared}")


@dataclass(frozen=True, slots=True)
class ConnectHost:
    host: str
    netns: str
    address: str
    gateway: str
    mtu: int
    address6: str = ""  # dual-stack underlay: the host's IPv6 address and default gateway
    gateway6: str = ""

    def describe(self) -> str:
        also = f" {self.address6}" if self.address6 else ""
        via6 = f" and via {self.gateway6}" if self.gateway6 else ""
        return (f"host {self.host}: eth0 {self.address}{also} mtu {self.mtu}, default via "
                f"{self.gateway}{via6}")


@dataclass(frozen=True, slots=True)
class CreateNetwork:
    network: NetworkSpec
    hosts: tuple[str, ...]

    def describe(self) -> str:
        subnet = self.network.subnet or "subnet from IPAM"
        hosts = ", ".join(self.hosts)
        return f"{self.network.driver} network {self.network.name} ({subnet}) on {hosts}"


@dataclass(frozen=True, slots=True)
class AwaitNetwork:
    network: NetworkSpec
    maker: str  # the host whose `lab up` makes it

    def describe(self) -> str:
        return f"{self.network.driver} network {self.network.name}, made by {self.maker}'s " \
               "lab up"


@dataclass(frozen=True, slots=True)
class StartAgent:
    host: str

    def describe(self) -> str:
        return f"overlay agent for {self.host} on the shared store (a lab process)"


@dataclass(frozen=True, slots=True)
class Connect:
    container: str
    host: str
    network: str
    ip: str | None
    aliases: tuple[str, ...]
    publish: tuple[PublishSpec, ...]

    def describe(self) -> str:
        ports = "".join(f", publish {p.host_port}:{p.container_port}/{p.protocol}"
                        for p in self.publish)
        return f"connect {self.container} to {self.network} on {self.host} " \
               f"({self.ip or 'address from IPAM'}{ports})"


@dataclass(frozen=True, slots=True)
class StartResolver:
    host: str = ""  # only this host's containers (one host's part of a lab)

    def describe(self) -> str:
        where = f" on {self.host}" if self.host else ""
        return f"embedded DNS on 127.0.0.11 in every container{where} of a user-defined network"


@dataclass(frozen=True, slots=True)
class CreateService:
    service: ServiceSpec
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


PlanStep = (CreateNamespace | CreateUnderlay | ConnectHost | CreateNetwork | AwaitNetwork
            | StartAgent | Connect | StartResolver | CreateService | Run | InjectFault)


def host_addresses(topology: Topology) -> dict[str, str]:
    """host name → its underlay address with prefix, numbered from the subnet's first."""
    subnet = ipaddress.ip_network(topology.underlay.subnet)
    hosts = list(subnet.hosts())
    return {h.name: f"{hosts[i]}/{subnet.prefixlen}" for i, h in enumerate(topology.hosts)}


def underlay_gateway(topology: Topology) -> str:
    subnet = ipaddress.ip_network(topology.underlay.subnet)
    return f"{subnet.broadcast_address - 1}/{subnet.prefixlen}"


def underlay_ipv6(topology: Topology, address: str) -> str:
    """The IPv6 address (CIDR) on a dual-stack underlay of the node with IPv4 `address`: the
    same host number in the IPv6 subnet (10.99.0.254 → fd00:99::fe), as the bridge driver
    numbers dual-stack networks (netdiag/drivers/ipam: ipv6_companion); "" when the underlay
    is IPv4 only."""
    if not topology.underlay.subnet6:
        return ""
    net4 = ipaddress.ip_network(topology.underlay.subnet)
    net6 = ipaddress.ip_network(topology.underlay.subnet6)
    host = int(ipaddress.ip_interface(address).ip) - int(net4.network_address)
    return f"{net6.network_address + host}/{net6.prefixlen}"


def task_names(service: ServiceSpec) -> tuple[str, ...]:
    return tuple(f"{service.name}-{i}" for i in range(1, service.replicas + 1))


def host_nodes(topology: Topology, host: str) -> tuple[str, ...]:
    """The nodes one host's part of the lab makes: the host and its containers."""
    return (host, *(c.name for c in topology.containers if topology.host_of(c) == host))


def plan(topology: Topology, host: str = "") -> tuple[PlanStep, ...]:
    return _host_plan(topology, host) if host else _plan(topology)


def _host_plan(topology: Topology, host: str) -> tuple[PlanStep, ...]:
    """The steps of `_plan` that build `host`'s part, and what sharing the lab takes."""
    if host not in {h.name for h in topology.hosts}:
        known = ", ".join(h.name for h in topology.hosts)
        raise TopologyError(f"lab {topology.name} has no host {host!r} (its hosts: {known})")
    if topology.services:
        names = ", ".join(s.name for s in topology.services)
        raise TopologyError(f"lab {topology.name}: services ({names}) are not built per host "
                            "yet; build the lab in one process (`netdiag lab up` without --host)")
    mine = set(host_nodes(topology, host))
    steps: list[PlanStep] = []
    for step in _plan(topology):
        match step:
            case CreateNamespace(node=node) if node in mine:
                steps.append(step)
            case CreateUnderlay():
                steps.append(replace(step, shared=True))
            case ConnectHost(host=name) if name == host:
                steps.append(step)
                if any(n.driver == "overlay" and host in topology.hosts_of(n)
                       for n in topology.networks):
                    steps.append(StartAgent(host))
            case CreateNetwork(hosts=hosts) if host in hosts:
                steps.append(step if hosts[0] == host else AwaitNetwork(step.network, hosts[0]))
            case Connect(host=name) if name == host:
                steps.append(step)
            case StartResolver() if any(c.host == host for c in steps if isinstance(c, Connect)):
                steps.append(StartResolver(host))
            case Run(container=node) if node in mine:
                steps.append(step)
            case InjectFault(fault=fault) if fault.node in mine:
                steps.append(step)
    return tuple(steps)


def _plan(topology: Topology) -> tuple[PlanStep, ...]:
    lab = topology.name
    steps: list[PlanStep] = [CreateNamespace(UNDERLAY_NODE, namespace_name(lab, UNDERLAY_NODE))]
    steps += [CreateNamespace(h.name, namespace_name(lab, h.name)) for h in topology.hosts]
    containers = [c.name for c in topology.containers]
    containers += [t for s in topology.services for t in task_names(s)]
    steps += [CreateNamespace(c, namespace_name(lab, c)) for c in containers]

    gateway = underlay_gateway(topology)
    gateway6 = underlay_ipv6(topology, gateway)
    steps.append(CreateUnderlay(namespace_name(lab, UNDERLAY_NODE), gateway, topology.underlay.mtu,
                                address6=gateway6))
    addresses = host_addresses(topology)
    steps += [ConnectHost(h.name, namespace_name(lab, h.name), addresses[h.name],
                          gateway.split("/")[0], h.mtu or topology.underlay.mtu,
                          underlay_ipv6(topology, addresses[h.name]), gateway6.split("/")[0])
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
