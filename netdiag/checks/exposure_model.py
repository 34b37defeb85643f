"""Exposure: who can reach each listening socket of a snapshot, and how — from the flow engine.

For every TCP listener and bound UDP socket in every namespace, the flow engine
(netdiag/flows/walk.py) is asked whether a connection gets to it:

* **from beyond the host, on each uplink.** The hosts are the namespace of pid 1, each
  Docker engine's namespace and each netdiag lab's host nodes (those with a veth to the
  lab's underlay switch, which is the world beyond them). An uplink is an interface of a
  host that carries its default route (IPv4 or IPv6), or that holds a global address outside
  the container networks' subnets (macvlan and ipvlan networks aside, which share the
  uplink's: so docker0 and br-* are not uplinks, a NIC or a KVM bridge with the host's
  address is). The client (one per family) is the default route's gateway on that uplink
  (not a link-local one: a client beyond connects from a global address), else the first
  other address of its subnet. It tries the uplink's own addresses (each published port,
  each host socket), the host's other addresses and the containers' (a client whose network
  routes them to this host: for containers, "direct"; their own ports, and the ports of a
  DNAT that prerouting takes for any address — Debian's nat example, firewalld's
  forward-port), and the addresses of macvlans whose lower device is the uplink ("on the
  wire");
* **from the host itself** (its own addresses, 127.0.0.1, the containers' addresses — the
  containers of a host being its engine's and any namespace whose default route's gateway is
  one of the host's addresses — their own ports and those of a DNAT that output takes for
  any address);
* **from other networks on the host**: one running container of each Docker network (on a
  host without an engine, one namespace behind each of the host's links that the namespaces
  route by: a lab's or a runtime's bridges), to the host's own addresses (its sockets, the
  ports published there) and to the other networks' containers' own addresses (their own
  ports and those of a DNAT that prerouting takes for any address).

Each way in names how it got there: a published port (the DNAT rule), direct routing to the
container's address, a macvlan address on the wire, the userland proxy (docker-proxy's own
socket), or the host's own socket. Intent decides the risk: a port published on every address
that an uplink reaches while the host's INPUT hook would drop the same connection is a
*bypass* (the ufw/firewalld surprise: DNAT sends it through FORWARD, never INPUT) — a warning;
a container port reached from an uplink that no `-p` publishes (a routed network's other ports
as routing allows, a macvlan's listener, a NAT network's container routed to directly) is
*unpublished*; the rest reached from an uplink is *public*; reached only from the host or its
networks, *internal*; from nowhere, *closed*. IPv6 is modelled as IPv4 (ip6tables, `ip6` and
`inet` nftables chains, the INPUT of the packet's family); link-local addresses are not
tried.

Each entry names the benchmark controls it corresponds to (CONTROLS), numbered as the
sources number them: the CIS Docker Benchmark v1.6.0 as docker/docker-bench-security checks it
(tests/2_docker_daemon_configuration.sh, tests/5_container_runtime.sh: 2.2 icc, 2.4 iptables,
2.16 userland proxy, 5.8 privileged ports, 5.9 only needed ports, 5.10 host network namespace,
5.14 incoming traffic bound to a host interface — CIS 1.2 to 1.5 numbered these 5.7, 5.8, 5.9
and 5.13), and OWASP's Container Security Verification Standard 1.0
(OWASP/Container-Security-Verification-Standard, en/0x16-V07-Network.md: 7.3 userland proxy,
7.6 inter-container traffic, 7.8 published ports assigned to one interface).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from netdiag.checks.dnat import Publish, publishes
from netdiag.checks.docker_bridges import expressions_of, table_dnats
from netdiag.findings.finding import Evidence
from netdiag.findings.severity import Severity
from netdiag.flows.netfilter import ACCEPT, DROP, PacketPlace
from netdiag.flows.packet import Packet, PathResult, StepKind
from netdiag.flows.walk import Engine
from netdiag.model import (
    Address,
    NamespaceRef,
    NamespaceState,
    NsKind,
    Snapshot,
    Socket,
    intent,
)
from netdiag.model.docker import DockerContainer, DockerEngine
from netdiag.topology.journal import UNDERLAY_NODE

CLIENT_PORT = 43210
WILDCARDS = ("0.0.0.0", "::", "*", "")

# How a connection got to the socket.
PUBLISHED, DIRECT, MACVLAN, PROXY, HOST = "published", "direct", "macvlan", "proxy", "host"
# Where it came from.
UPLINK, FROM_HOST, NETWORK = "uplink", "host", "network"
# The risks, most serious first.
BYPASS, UNPUBLISHED, PUBLIC, INTERNAL, CLOSED = (
    "bypass", "unpublished", "public", "internal", "closed")
RISKS = (BYPASS, UNPUBLISHED, PUBLIC, INTERNAL, CLOSED)
SEVERITY = {BYPASS: Severity.WARNING, UNPUBLISHED: Severity.INFO, PUBLIC: Severity.INFO}


@dataclass(frozen=True, slots=True)
class Control:
    """A benchmark control an exposure corresponds to."""

    benchmark: str  # "CIS Docker Benchmark v1.6.0", "OWASP CSVS 1.0"
    id: str  # "5.14"
    title: str

    @property
    def name(self) -> str:
        return f"{'CIS' if self.benchmark.startswith('CIS') else 'CSVS'} {self.id}"

    def evidence(self) -> Evidence:
        """How a finding carries it (the SARIF report turns it into a taxon)."""
        return Evidence(f"{self.benchmark} {self.id}: {self.title}", None, "control",
                        f"{self.benchmark}#{self.id}")


CIS = "CIS Docker Benchmark v1.6.0"
CSVS = "OWASP CSVS 1.0"
CONTROLS = {
    "icc": Control(CIS, "2.2", "Ensure network traffic is restricted between containers on "
                               "the default bridge"),
    "iptables": Control(CIS, "2.4", "Ensure Docker is allowed to make changes to iptables"),
    "userland-proxy": Control(CIS, "2.16", "Ensure Userland Proxy is Disabled"),
    "privileged-port": Control(CIS, "5.8", "Ensure privileged ports are not mapped within "
                                           "containers"),
    "needed-ports": Control(CIS, "5.9", "Ensure that only needed ports are open on the "
                                        "container"),
    "host-network": Control(CIS, "5.10", "Ensure that the host's network namespace is not "
                                         "shared"),
    "bound-interface": Control(CIS, "5.14", "Ensure that incoming container traffic is bound "
                                            "to a specific host interface"),
    "csvs-proxy": Control(CSVS, "7.3", "Verify that the Docker userland proxy is disabled"),
    "csvs-icc": Control(CSVS, "7.6", "Verify that dockerd is configured in a way that network "
                                     "communication between different containers is not "
                                     "possible by default"),
    "csvs-bound": Control(CSVS, "7.8", "Verify that published ports are assigned to a specific "
                                       "network interface of a node"),
}


@dataclass(frozen=True, slots=True)
class Uplink:
    host: int  # the host namespace
    link: str
    addresses: tuple[str, ...]  # its global addresses, IPv4 and IPv6
    client: str  # the IPv4 address the simulated client beyond it has ("": none)
    client6: str = ""  # and its IPv6 address

    def client_for(self, address: str) -> str:
        """The client that connects to `address`: of its family."""
        return self.client6 if ":" in address else self.client


@dataclass(frozen=True, slots=True)
class Door:
    """One way to the socket: from where, to which address and port, and how."""

    source: str  # UPLINK, FROM_HOST, NETWORK
    where: str  # the uplink ("up0"), the host's label, the network's name
    address: str  # what the client connects to
    port: int
    protocol: str
    via: str  # PUBLISHED, DIRECT, MACVLAN, PROXY, HOST
    rule: str = ""  # the DNAT rule, as iptables-save prints it (PUBLISHED)
    rule_name: str = ""  # "nat/DOCKER/3"
    input_drop: str = ""  # what the host's INPUT hook does to the same connection, if it drops
    host: int = 0  # the host namespace it comes through (uplinks, the host)

    def evidence(self) -> tuple[Evidence, ...]:
        """The DNAT rule it came through and the INPUT rule or policy it bypasses, as
        Evidence the firewall's rows are marked by (`check`'s finding, the TUI's view)."""
        found = []
        if self.rule_name:
            found.append(Evidence(f"DNAT: {self.rule}", self.host, "firewall",
                                  firewall_key(self.rule_name)))
        if self.input_drop:
            found.append(Evidence(f"INPUT: {self.input_drop}", self.host, "firewall",
                                  firewall_key(self.input_drop)))
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Exposure:
    namespace: NamespaceRef  # where the socket is
    socket: Socket
    owner: str  # "container web", "process sshd (pid 1)"
    doors: tuple[Door, ...]
    risk: str
    controls: tuple[Control, ...]

    @property
    def severity(self) -> Severity | None:
        return SEVERITY.get(self.risk)

    @property
    def subject(self) -> str:
        return f"{self.socket.protocol} {self.socket.address or '*'}:{self.socket.port}"


def exposures(snapshot: Snapshot, engine: Engine | None = None, inside: bool = True,
              hosts: Iterable[int] = (), unpublished_only: bool = False) -> list[Exposure]:
    """Every listening socket of the snapshot with the ways to it, most at risk first.
    `inside` False: only the ways from beyond the host; `unpublished_only`: only the ways
    from beyond to container ports no `-p` publishes (what `check` asks: each is quicker);
    `hosts`: host namespaces that are neither pid 1's, an engine's nor a lab's (a bench's)."""
    engine = engine or Engine(snapshot)
    model = _Model(snapshot, engine, hosts)
    model.unpublished_only = unpublished_only
    inside = inside and not unpublished_only
    return sorted(model.entries(inside), key=lambda e: (RISKS.index(e.risk), e.namespace.display,
                                                  e.socket.protocol, e.socket.port))


def bypasses(snapshot: Snapshot, engine: Engine | None = None, hosts: Iterable[int] = ()
             ) -> Iterator[tuple[Uplink, Door, int]]:
    """Only the ufw-style bypasses (what `check` warns about), without walking the rest:
    (uplink, door, namespace the connection is delivered in) for each port published on every
    address that an uplink reaches while the host's INPUT hook would drop it."""
    engine = engine or Engine(snapshot)
    model = _Model(snapshot, engine, hosts)
    for host in model.hosts:
        state = engine.topo.namespace(host)
        wide = [p for p in published_ports(state) if not p.destination]
        for uplink in model.uplinks(host):
            for publish in wide:
                for address in uplink.addresses:
                    client = uplink.client_for(address)
                    if _family(address) != publish.family or not client:
                        continue
                    packet = Packet(client, address, publish.protocol, CLIENT_PORT,
                                    publish.port)
                    if not model.input_drops(uplink, packet):
                        continue
                    found = model.through_uplink(uplink, packet)
                    if found is not None and found[1].via == PUBLISHED and found[1].input_drop:
                        yield uplink, found[1], found[0]


# Where a connection was delivered (namespace), by which door, and as which packet (after NAT).
Reached = tuple[int, Door, Packet]


class _Model:
    def __init__(self, snapshot: Snapshot, engine: Engine, hosts: Iterable[int] = ()):
        self.snapshot, self.engine, self.topo = snapshot, engine, engine.topo
        self.engines = {state.ref.id: docker for docker, state in intent.engines(snapshot)}
        self.hosts = list(dict.fromkeys(
            [s.ref.id for s in snapshot.namespaces if s.ref.kind is NsKind.HOST] +
            list(self.engines) + list(hosts) + self._lab_hosts()))
        # The container networks' subnets, but a macvlan or ipvlan network's: it shares the
        # uplink's subnet, and the uplink stays one.
        self.docker_subnets = [ipam.subnet for docker in snapshot.docker
                               for network in docker.networks
                               if network.driver not in ("macvlan", "ipvlan")
                               for ipam in network.ipam]
        self.containers = {c.netns: (docker, c) for docker in snapshot.docker
                           for c in docker.containers if c.running and c.netns}
        self._input: dict[tuple, str] = {}
        self.unpublished_only = False

    def _lab_hosts(self) -> list[int]:
        """A netdiag lab's host nodes: its namespaces with a veth to the lab's underlay switch
        (the containers hang off a host's bridges; the switch is the world beyond)."""
        switches = {s.ref.lab: s.ref.id for s in self.snapshot.namespaces
                    if s.ref.lab and s.ref.node == UNDERLAY_NODE}
        return [state.ref.id for state in self.snapshot.namespaces
                if state.ref.lab in switches and state.ref.node != UNDERLAY_NODE
                and any((peer := self.topo.peer(state.ref.id, link)) is not None
                        and peer[0] == switches[state.ref.lab] for link in state.links)]

    # --- the way in --------------------------------------------------------------------------

    def uplinks(self, host: int) -> list[Uplink]:
        state = self.topo.namespace(host)
        default = self.topo.default_egress(host)
        default6 = self.topo.default_egress(host, 6)
        found = []
        routable: dict[str, list[str]] = {}  # by device: a host has 1000s of addresses
        for a in state.addresses:
            if a.scope == "global" and _routable(a):
                routable.setdefault(a.ifname, []).append(a.address)
        for link in state.links:
            if link.kind == "loopback" or link.master:
                continue
            addresses = tuple(routable.get(link.name, ()))
            carries = {family: route is not None and route[1].name == link.name
                       for family, route in ((4, default), (6, default6))}
            carries_default = carries[4] or carries[6]
            if not carries_default and not any(not self._docker_address(a) for a in addresses):
                continue
            if not carries_default and self._containers_bridge(host, link):
                continue
            addresses = tuple(a for a in addresses if not self._docker_address(a))
            if addresses:
                gateway = default[0].gateway if carries[4] else ""
                # a client beyond connects from a global address: not the router's fe80::
                gateway6 = default6[0].gateway if carries[6] and not ipaddress.ip_address(
                    default6[0].gateway or "::").is_link_local else ""
                found.append(Uplink(host, link.name, addresses,
                                    gateway or _neighbour_address(state, link.name),
                                    gateway6 or _neighbour_address(state, link.name, 6)))
        return found

    def _containers_bridge(self, host: int, link) -> bool:
        """A bridge whose every port is a veth to another namespace of the snapshot: a
        network of containers (Docker's read without its intent, a lab's), not a way in from
        outside — which a bridge enslaving the host's NIC would be."""
        if link.kind != "bridge":
            return False
        ports = self.topo.bridge_ports(host, link.name)
        return bool(ports) and all(
            port.kind == "veth" and (peer := self.topo.peer(host, port)) is not None
            and peer[0] != host for port in ports)

    def _docker_address(self, address: str) -> bool:
        return any(ipaddress.ip_address(address) in ipaddress.ip_network(s, strict=False)
                   for s in self.docker_subnets)

    def input_drops(self, uplink: Uplink, packet: Packet) -> str:
        """What drops `packet` in the host's INPUT hook had it stayed for the host ("" when
        INPUT accepts it, or cannot say): the admin's intent for the port."""
        key = (uplink.host, uplink.link, packet.dst, packet.proto, packet.dport)
        if key not in self._input:
            state = self.topo.namespace(uplink.host)
            place = PacketPlace(in_if=uplink.link, local=self.engine.local_addresses(state),
                                in_address=self.engine.interface_address(
                                    state, uplink.link, family=packet.family),
                                fib_dev=self.engine.fib(uplink.host))
            outcome = self.engine.netfilter.run_hook(state, "INPUT", packet, place)
            self._input[key] = (outcome.where or outcome.rule or "INPUT") \
                if outcome.verdict == DROP else ""
            if outcome.verdict not in (ACCEPT, DROP):
                self._input[key] = ""  # unknown: no claim about the admin's intent
        return self._input[key]

    def through_uplink(self, uplink: Uplink, packet: Packet) -> Reached | None:
        result = self.engine.arriving(uplink.host, uplink.link, packet)
        return self._door(result, UPLINK, uplink.link, uplink.host, packet)

    def _door(self, result: PathResult, source: str, where: str, host: int, packet: Packet,
              via: str = "") -> Reached | None:
        if not result.delivered:
            return None
        forward = result.forward
        nat = next(((hop, step) for hop in forward.hops for step in hop.steps
                    if step.kind == StepKind.NAT and _is_dnat(step.detail)), None)
        ns_id = forward.namespace
        rule = rule_name = ""
        if nat is not None:
            via, rule, rule_name = PUBLISHED, nat[1].rule, nat[1].detail.split(":")[0]
        elif ns_id == host:
            sock = socket_for(self.topo.namespace(ns_id), forward.delivered_as)
            via = PROXY if sock is not None and sock.process == "docker-proxy" else HOST
        else:
            via = via or DIRECT
        drop = ""
        # INPUT is the admin's intent for the host's own addresses, not for a container's
        # that a DNAT for any address also takes
        if source == UPLINK and via == PUBLISHED and \
                packet.dst in self.engine.local_addresses(self.topo.namespace(host)):
            drop = self.input_drops(Uplink(host, where, (), packet.src), packet)
            if _one_table(rule_name, drop):
                drop = ""  # one firewall forwards the port and closes INPUT: on purpose
        return ns_id, Door(source, where, packet.dst, packet.dport, packet.proto, via, rule,
                           rule_name, drop, host), forward.delivered_as

    # --- the doors, per socket ---------------------------------------------------------------

    def entries(self, inside: bool = True) -> Iterator[Exposure]:
        doors: dict[tuple[int, int], list[Door]] = {}

        def record(found: Reached | None) -> None:
            if found is None:
                return
            ns_id, door, delivered = found
            state = self.topo.namespace(ns_id)
            sock = socket_for(state, delivered)
            if sock is not None:
                doors.setdefault((ns_id, state.sockets.index(sock)), []).append(door)

        for host in self.hosts:
            for uplink in self.uplinks(host):
                for packet, entry in self._uplink_probes(uplink):
                    if entry is None:
                        record(self.through_uplink(uplink, packet))
                    else:  # a macvlan's address, straight off the wire
                        ns_id, link = entry
                        result = self.engine.arriving(ns_id, link, packet)
                        record(self._door(result, UPLINK, uplink.link, host, packet, MACVLAN))
            if not inside:
                continue
            for packet in self._host_probes(host):
                result = self.engine.path(host, packet)
                record(self._door(result, FROM_HOST, self.topo.ref(host).display, host,
                                  packet))
            for name, source, packet in self._network_probes(host):
                result = self.engine.path(source, packet)
                record(self._door(result, NETWORK, name, host, packet, DIRECT))
        for state in self.snapshot.namespaces:
            for position, sock in enumerate(state.sockets):
                if not _listening(sock):
                    continue
                found = tuple(dict.fromkeys(doors.get((state.ref.id, position), ())))
                yield self._entry(state, sock, found)

    def _uplink_probes(self, uplink: Uplink) -> Iterator[tuple[Packet, tuple[int, str] | None]]:
        host = self.topo.namespace(uplink.host)
        # The uplink's own addresses first, then the host's others (docker0's...), which a
        # client reaches when its network routes them to this host, as the containers'.
        addresses = list(dict.fromkeys(uplink.addresses + tuple(_own_addresses(host))))
        published = [p for p in published_ports(host)
                     if not p.destination or p.destination in addresses]
        for address in () if self.unpublished_only else addresses:
            client = uplink.client_for(address)
            wanted = {(p.protocol, p.port) for p in published
                      if p.family == _family(address)} | \
                {(s.protocol, s.port) for s in host.sockets
                 if _listening(s) and _binds(s, address)}
            for protocol, port in sorted(wanted) if client else ():
                yield Packet(client, address, protocol, CLIENT_PORT, port), None
        # A DNAT that prerouting takes for any address also takes a connection to a
        # container's (Debian's nat example, firewalld's forward-port): tried there too.
        anywhere = [] if self.unpublished_only else [p for p in published if p.anywhere]
        for state, _, container in self._containers_of(uplink.host):
            for address in _own_addresses(state):
                client = uplink.client_for(address)
                wanted = set(self._wanted(state, container, address)) | {
                    (p.protocol, p.port) for p in anywhere if p.family == _family(address)}
                for protocol, port in sorted(wanted) if client else ():
                    yield Packet(client, address, protocol, CLIENT_PORT, port), None
        for state in self.snapshot.namespaces:
            for link in state.links:
                lower = self.topo.lower(state.ref.id, link) if link.kind == "macvlan" else None
                if lower is None or (lower.namespace, lower.link) != (uplink.host, uplink.link):
                    continue
                for address in (a.address for a in state.addresses if a.ifname == link.name
                                and _routable(a)):
                    client = uplink.client_for(address)
                    if client in ("", address):
                        client = _neighbour_address(state, link.name, _family(address))
                    container = self.containers.get(state.ref.id, (None, None))[1]
                    for protocol, port in self._wanted(state, container, address):
                        yield (Packet(client, address, protocol, CLIENT_PORT, port),
                               (state.ref.id, link.name))

    def _wanted(self, state: NamespaceState, container: DockerContainer | None, address: str
                ) -> list[tuple[str, int]]:
        """The ports to try at a container's address (with `unpublished_only`, those its
        container does not publish)."""
        return [(protocol, port) for protocol, port in _ports(state, address)
                if not self.unpublished_only or not _published(container, port, protocol)]

    def _host_probes(self, host: int) -> Iterator[Packet]:
        state = self.topo.namespace(host)
        published = published_ports(state)
        # IPv4: every address, 127.0.0.1 too; IPv6: ::1 and the global ones (a link-local
        # address needs its interface, which "from the host itself" has none of)
        for address in [a.address for a in state.addresses if a.address == "::1"
                        or _routable(a)]:
            wanted = {(p.protocol, p.port) for p in published
                      if p.family == _family(address)} | \
                {(s.protocol, s.port) for s in state.sockets
                 if _listening(s) and _binds(s, address)}
            for protocol, port in sorted(wanted):
                yield Packet("", address, protocol, CLIENT_PORT, port)
        # A DNAT that output takes for any address also takes the host's own connection to
        # a container's address: tried there too.
        anywhere = [p for p in published if p.anywhere_out]
        for container, _, _ in self._containers_of(host):
            for address in _own_addresses(container):
                wanted = set(_ports(container, address)) | {
                    (p.protocol, p.port) for p in anywhere if p.family == _family(address)}
                for protocol, port in sorted(wanted):
                    yield Packet("", address, protocol, CLIENT_PORT, port)

    def _network_probes(self, host: int) -> Iterator[tuple[str, int, Packet]]:
        sources, members = self._networks(host)
        host_state = self.topo.namespace(host)
        published = published_ports(host_state)
        # The host's own addresses: its sockets and the ports published there (the way a
        # container reaches another network's published port).
        for address in _own_addresses(host_state):
            wanted = {(p.protocol, p.port) for p in published if p.family == _family(address)
                      and p.destination in ("", address)} | set(_ports(host_state, address))
            for name, source in sources.items():
                for protocol, port in sorted(wanted):
                    yield name, source, Packet("", address, protocol, CLIENT_PORT, port)
        # A DNAT that prerouting takes for any address also takes a connection from another
        # network to a container's address: tried there too.
        anywhere = [p for p in published if p.anywhere]
        for state, _, _ in self._containers_of(host):
            if state.ref.id not in members:
                continue
            for name, source in sources.items():
                if source == state.ref.id or name in members[state.ref.id]:
                    continue  # its own networks: same-network traffic is the network's point
                for address in _own_addresses(state):
                    wanted = set(_ports(state, address)) | {
                        (p.protocol, p.port) for p in anywhere if p.family == _family(address)}
                    for protocol, port in sorted(wanted):
                        yield name, source, Packet("", address, protocol, CLIENT_PORT, port)

    def _networks(self, host: int) -> tuple[dict[str, int], dict[int, set[str]]]:
        """The networks behind `host`, each with a namespace to connect from, and the
        networks each namespace is on: an engine's Docker networks (one running container of
        each); else the host's links that the namespaces behind it route by (their default
        gateway's: a lab's bridges, a runtime's Docker does not know)."""
        sources: dict[str, int] = {}  # network name → a namespace on it
        members: dict[int, set[str]] = {}
        docker = self.engines.get(host)
        if docker is not None:
            for container in docker.containers:
                if container.running and container.netns and not container.shares:
                    for endpoint in container.endpoints:
                        sources.setdefault(endpoint.network, container.netns)
            for container in docker.containers:  # one sharing its namespace adds none
                if container.running and container.netns:
                    members.setdefault(container.netns, set()).update(
                        e.network for e in container.endpoints)
            return sources, members
        links = {a.address: a.ifname for a in self.topo.namespace(host).addresses}
        for state, _, _ in self._containers_of(host):
            for family in (4, 6):
                route = self.topo.default_route(state.ref.id, family)
                link = links.get(route.gateway) if route is not None else None
                if link:
                    sources.setdefault(link, state.ref.id)
                    members.setdefault(state.ref.id, set()).add(link)
        return sources, members

    def _containers_of(self, host: int) -> Iterator[tuple[NamespaceState, DockerEngine | None,
                                                          DockerContainer | None]]:
        """The namespaces behind `host`: its engine's running containers, and any other
        namespace whose default route's gateway is one of the host's addresses."""
        docker = self.engines.get(host)
        own = self.engine.local_addresses(self.topo.namespace(host))
        for state in self.snapshot.namespaces:
            ns_id = state.ref.id
            if ns_id in self.hosts:
                continue
            owner, container = self.containers.get(ns_id, (None, None))
            default = self.topo.default_route(ns_id)
            if (docker is not None and owner is docker) or (
                    default is not None and default.gateway in own):
                yield state, owner, container

    # --- risk and controls ----------------------------------------------------------------------

    def _entry(self, state: NamespaceState, sock: Socket, doors: tuple[Door, ...]) -> Exposure:
        docker, container = self.containers.get(state.ref.id, (None, None))
        outside = [d for d in doors if d.source == UPLINK]
        if any(d.via == PUBLISHED and d.input_drop and not _bound(d) for d in outside):
            risk = BYPASS
        elif any(_unintended(docker, container, d) for d in outside):
            risk = UNPUBLISHED
        elif outside:
            risk = PUBLIC
        else:
            risk = INTERNAL if doors else CLOSED
        host_network = state.ref.id in self.engines and _host_network_container(
            self.engines[state.ref.id], sock)
        if container is not None:
            owner = f"container {container.name}"
        elif host_network:
            owner = f"{sock.process or 'a process'} (a --network host container)"
        else:
            owner = f"{sock.process or 'a socket'}" + (f" (pid {sock.pid})" if sock.pid else "")
        controls = _controls(doors, risk, host_network, docker)
        return Exposure(state.ref, sock, owner, doors, risk, controls)


def _controls(doors: tuple[Door, ...], risk: str, host_network: bool,
              docker: DockerEngine | None) -> tuple[Control, ...]:
    keys: list[str] = []
    outside = [d for d in doors if d.source == UPLINK]
    if any(d.via == PUBLISHED and not _bound(d) for d in outside):
        keys += ["bound-interface", "csvs-bound"]
    if any(d.via == PUBLISHED and d.port < 1024 for d in doors):
        keys.append("privileged-port")
    if any(d.via == PROXY for d in doors):
        keys += ["userland-proxy", "csvs-proxy"]
    if risk == UNPUBLISHED or (docker is not None and outside):
        keys.append("needed-ports")
    if docker is not None and not docker.daemon.iptables and outside:
        keys.append("iptables")  # Docker writes no filter for what it exposes
    if docker is not None and any(d.source == NETWORK for d in doors):
        keys += ["icc", "csvs-icc"]
    if host_network and outside:
        keys.append("host-network")
    return tuple(CONTROLS[k] for k in dict.fromkeys(keys))


def _bound(door: Door) -> bool:
    """A published port bound to one address (its DNAT rule matches a destination:
    iptables' `-d`, nftables' `ip daddr` other than `!=`)."""
    return " -d " in f" {door.rule}" or re.search(r"\bdaddr (?!!=)", door.rule) is not None


def _one_table(dnat: str, drop: str) -> bool:
    """Whether a DNAT and the INPUT rule or policy that would drop the same connection are
    in one nftables table ("nft inet firewalld nat_PRE_public_allow handle 12", "nft inet
    firewalld filter_INPUT handle 7"): one firewall's port forward — firewalld's
    forward-port — which its author meant, not Docker's or another runtime's beside it."""
    return dnat.startswith("nft ") and drop.startswith("nft ") and \
        dnat.split()[1:3] == drop.split()[1:3]


def _is_dnat(detail: str) -> bool:
    """A NAT step of the flow engine that is a DNAT: "nat/DOCKER/3: DNAT tcp …" (iptables),
    "nft ip docker-bridges … handle 25: dnat tcp …" (nftables)."""
    return detail.partition(": ")[2].split(" ")[0] in ("DNAT", "dnat")


@dataclass(frozen=True, slots=True)
class PublishedPort:
    """A host port a DNAT rule takes elsewhere, of iptables (checks/dnat.py) or native
    nftables (Docker 29's `table ip docker-bridges`, a hand-written `dnat to`)."""

    protocol: str
    port: int
    destination: str  # the one address it is published on, "" on every address
    family: int
    # its DNAT takes what prerouting forwards too, to any address (docker_bridges.table_dnats)
    anywhere: bool = False
    # and what the host itself sends, to any address (a DNAT that output reaches unbound)
    anywhere_out: bool = False


def published_ports(state: NamespaceState) -> list[PublishedPort]:
    found = [PublishedPort(p.protocol, p.port, p.destination.value.split("/")[0]
                           if p.destination else "", p.rule.family, *_iptables_anywhere(p))
             for p in publishes(state)]
    tables = dict.fromkeys((r.family, r.table) for r in state.firewall.nft_rules
                           if '"dnat"' in r.expr or '"redirect"' in r.expr)
    for family, table in tables:
        for dnat, hooks in table_dnats(state, family, table):
            if dnat.to_address.startswith("127."):  # 127.x: Docker's DNS
                continue
            found += [PublishedPort(dnat.protocol, dnat.port, dnat.host_ip, each,
                                    "prerouting" in hooks, "output" in hooks)
                      for each in _nat_families(family, dnat.to_address,
                                                expressions_of(dnat.rule))]
    return list(dict.fromkeys(found))


def _iptables_anywhere(publish: Publish) -> tuple[bool, bool]:
    """Whether an iptables DNAT takes any address, in prerouting and in output: written in
    the base chain itself (a hand-written port forward, ufw's before.rules'; Docker's sit in
    DOCKER, behind `-m addrtype --dst-type LOCAL`) with no destination match of its own (`-d`,
    `--dst-type`). One in a user chain counts as the host's only: the way to it is not read."""
    rule = publish.rule
    unbound = publish.destination is None and rule.match("dst-type") is None
    return unbound and rule.chain == "PREROUTING", unbound and rule.chain == "OUTPUT"


def _nat_families(table_family: str, to_address: str, expressions: list[dict]
                  ) -> tuple[int, ...]:
    """The families a native nftables DNAT publishes in: its table's (`ip`, `ip6`), its
    target address's, else — a `redirect` in an `inet` table — its `meta nfproto`'s, else
    both."""
    if table_family in ("ip", "ip6") or to_address:
        return (6,) if table_family == "ip6" or ":" in to_address else (4,)
    nfproto = {e["match"].get("right") for e in expressions if isinstance(e.get("match"), dict)
               and e["match"].get("left") == {"meta": {"key": "nfproto"}}
               and e["match"].get("op", "==") == "=="}
    return tuple(f for f, name in ((4, "ipv4"), (6, "ipv6")) if not nfproto or name in nfproto)


def _unintended(docker: DockerEngine | None, container: DockerContainer | None,
                door: Door) -> bool:
    """A door to a container that no `-p` opens: its macvlan address (Docker publishes
    nothing there), or its own address on a NAT network (publishing means the host's port),
    or on a routed network a port it does not publish. A namespace Docker does not run has
    no intent to contradict."""
    if container is None or door.via not in (DIRECT, MACVLAN):
        return False
    if door.via == MACVLAN:
        return True
    endpoint = next((e for e in container.endpoints if door.address in (e.ip, e.ipv6)), None)
    network = docker.network(endpoint.network_id) if docker and endpoint else None
    routed = network is not None and intent.gateway_mode(
        network, _family(door.address)) == "routed"
    return not (routed and _published(container, door.port, door.protocol))


def _published(container: DockerContainer | None, port: int, protocol: str) -> bool:
    return container is not None and any(
        b.container_port == port and b.protocol == protocol for b in container.bound)


def _host_network_container(docker: DockerEngine, sock: Socket) -> bool:
    return any(c.running and c.network_mode == "host" and c.pid and c.pid == sock.pid
               for c in docker.containers)


def socket_for(state: NamespaceState, packet: Packet | None) -> Socket | None:
    """The socket a packet delivered in `state` goes to, as the flow engine picks it."""
    if packet is None:
        return None
    return next((s for s in state.sockets if s.protocol == packet.proto and s.port ==
                 packet.dport and _binds(s, packet.dst)), None)


def _listening(sock: Socket) -> bool:
    return (sock.protocol == "tcp" and sock.state == "listen") or \
        (sock.protocol == "udp" and sock.state in ("unconn", ""))


def _binds(sock: Socket, address: str) -> bool:
    """Whether a connection to `address` reaches `sock`, as the flow engine's listener
    (netdiag/flows/walk.py) picks it: bound to it or to a wildcard; an IPv6 address only an
    IPv6 socket, an IPv4 one either (`::` takes IPv4 too, unless IPV6_V6ONLY)."""
    if _family(address) != sock.family and (sock.family == 4 or sock.v6only):
        return False
    return sock.address in WILDCARDS or sock.address.partition("%")[0] == address


def _family(address: str) -> int:
    return 6 if ":" in address else 4


def _own_addresses(state: NamespaceState) -> list[str]:
    """Its addresses a client elsewhere connects to: IPv4 but loopback's, IPv6 global."""
    return [a.address for a in state.addresses if not a.address.startswith("127.")
            and _routable(a)]


def _routable(address: Address) -> bool:
    """An address a client connects to without naming an interface: any IPv4 one; an IPv6
    one of global scope (not fe80::/10, not ::1). Whether the kernel has taken it up (an
    address on a link without carrier has no local route, and nothing reaches it) is the
    flow engine's to say."""
    if address.family == 4:
        return True
    return address.scope == "global" and address.address != "::1" and \
        not ipaddress.ip_address(address.address).is_link_local


def _ports(state: NamespaceState, address: str) -> list[tuple[str, int]]:
    return sorted({(s.protocol, s.port) for s in state.sockets
                   if _listening(s) and _binds(s, address)})


def _neighbour_address(state: NamespaceState, link: str, family: int = 4) -> str:
    """A client on `link`'s subnet: its first address that the namespace does not hold."""
    own = {a.address for a in state.addresses}
    for address in (a for a in state.addresses if a.ifname == link and a.family == family
                    and _routable(a)):
        network = ipaddress.ip_interface(address.cidr).network
        for host in network.hosts() if network.num_addresses > 2 else ():
            if str(host) not in own:
                return str(host)
    return ""


def firewall_key(where: str) -> str:
    """The firewall row a rule or policy the flow engine names is shown in (netdiag/render.py's
    keys): "filter (legacy)/INPUT/3" → "filter/INPUT/3", "filter/INPUT policy DROP" →
    "filter/INPUT", "nft inet filter input handle 7" → "inet/filter/input/7", "nft inet
    filter input policy" → "inet/filter/input"."""
    where = where.replace(" (legacy)", "")
    if where.startswith("nft "):
        words = where.split()[1:]
        return "/".join(words[:3] + (words[4:5] if words[3:4] == ["handle"] else []))
    return where.split(" policy ")[0]


def focus_filter(found: Iterable[Exposure], focus: frozenset[int]) -> list[Exposure]:
    """The entries of the namespaces asked for (all when `focus` is empty)."""
    return [e for e in found if not focus or e.namespace.id in focus
            or any(d.host in focus for d in e.doors)]

