"""The flows that should work, derived from Docker's intent, and what the engine says of them.

For each engine that can be placed (its namespace was read), by equivalence class rather than
every pair:

* every running container on a bridge network reaches its gateway (ICMP);
* on each bridge network with inter-container communication on, its first two running
  containers reach each other (ICMP, both ways);
* every container on a user-defined network reaches Docker's embedded DNS (udp 127.0.0.11:53);
* every published TCP or UDP port bound on all addresses answers a client beyond the host:
  a SYN (or a datagram, `-p 5353:5353/udp`) arriving on the interface of the host's default
  route, to that interface's address;
* and it answers the publishing container itself at that address, as the daemon is
  configured: with the userland proxy, docker-proxy's socket on the host takes it; without,
  the hairpin DNAT sends it back into the container through its own bridge port;
* on a Swarm node, each peer node of its overlay networks reaches this node's VXLAN port
  (the peer's VTEP address to the node's, udp 4789 or the overlay's port, arriving by the
  interface the node routes to the peer by), and the node's own VXLAN packets leave for the
  peer by that interface with the answers let back in;
* on each bridge network that is masqueraded or routed (not internal, not a NAT-mode network
  with masquerading off), its first running container reaches beyond the host: the packet
  leaves by the interface of the host's default route, and the reply to it comes back in by
  that interface and reaches the container.

IPv6, where Docker says IPv6 is meant to work (a network with IPv6 enabled and an IPv6
subnet, a container with an IPv6 address on it): the same promises again over IPv6 — the
gateway (the IPv6 subnet's gateway, its first address unless one was configured; none on an
internal or `gateway_mode_ipv6=isolated` network), the two containers to each other, and,
when the host has an IPv6 default route, a container of the network beyond the host and a
client beyond the host to each published TCP or UDP port (bound on `::`) of a container with
an IPv6 address, at the uplink's global IPv6 address. Beyond the host only where IPv6 is meant to
leave: Docker masquerades IPv6 (NAT66) only with its ip6tables on — Docker's chains are in the
host's ip6tables, or Docker 29's `ip6 docker-bridges` table is there; without, a container's
IPv6 packets would leave with an address nobody routes back — or when the network's IPv6
gateway mode is `routed` (the prefix is routed to the host). With Docker's ip6tables, each
container with an IPv6 address also reaches its own published ports at the uplink's IPv6
address (the hairpin: docker-proxy on `::` takes it, or without the proxy the hairpin DNAT —
the kernel delivers both). The embedded DNS has no IPv6 twin: it listens on 127.0.0.11 alone
(a proposal to add ::1 was declined upstream) and answers AAAA queries there, so a dual-stack
container's names travel by the IPv4 loopback flow above.

A flow that fails only because nothing listens at its end is left to port-contention (the
publish leads nowhere) rather than reported twice.

Docker versions: the expectations follow 20.10 and 28 alike, with 27+'s gateway modes (a
routed network reaches beyond the host unmasqueraded; an isolated one, like an internal one,
does not, and Docker gives its containers no gateway to reach). Whether a flow passes is the
flow engine's walk (netdiag/flows/), which runs both iptables layouts in the kernel's hook
order — Docker 28's raw-table direct-routing drops before conntrack undoes a reply's NAT —
and native nftables: Docker 29's tables as moby documents them are walked too, but no
Docker 29 engine has run under these expectations.

A netdiag lab's (its intent, netdiag/model/lab.py): every program with a backend reaches it
(`web` with `backend: db:6379` connects to db's address as the lab's DNS gives it, a
service's VIP included), and every program answers on its port a node that shares a network
with it (the first other one, by name); on a dual-stack network (`subnet6`, which gives the
node a global IPv6 address beside its IPv4 one) that node also reaches it over IPv6
(ICMPv6, one per node); and every port a node publishes (TCP or UDP) answers the lab's
underlay switch at the host's underlay address, and over IPv6 at the host's IPv6 one where the
driver publishes it there (a dual-stack bridge network: the bridge driver DNATs it in ip6tables
too, as Docker 28 does; an overlay publishes through docker_gwbridge, IPv4 only).

A fleet's (netdiag/fleet/): each node of a VXLAN overlay reaches the VXLAN port of every
other node it sends the overlay to, across the network between the nodes; and on each Docker
overlay network, a container of each node reaches one of the next node (a ring over the
nodes), through both nodes' overlay namespaces and the underlay between them.

And the user's (`expect:` in the check config file): from a namespace, to an address, a name
as that namespace resolves it or a namespace, with a port and protocol, that must reach — or
must be blocked (`reach: false`), which fails when the flow is delivered.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

from netdiag.errors import NotFound, UsageError
from netdiag.findings.rule import FlowExpectation
from netdiag.flows import names, routing
from netdiag.flows.packet import DELIVERED, NO_LISTENER, Packet, PathResult
from netdiag.flows.walk import Engine, interface_address
from netdiag.model import Snapshot, intent
from netdiag.model.docker import (
    DockerContainer,
    DockerEndpoint,
    DockerEngine,
    DockerIpam,
    DockerNetwork,
)
from netdiag.model.index import index, is_link_local_ipv6, remote_vteps
from netdiag.model.lab import LabApp, LabIntent
from netdiag.topology.journal import UNDERLAY_NODE

CLIENT = "198.51.100.7"  # TEST-NET-2: the client beyond the host (simulated, never sent)
CLIENTS = {4: CLIENT, 6: "3fff::7"}  # and its IPv6 twin (3fff::/20: RFC 9637 documentation)
CLIENT_PORT = 43210
VXLAN_PORT = 4789  # Docker's default data path port


@dataclass(frozen=True, slots=True)
class Expectation:
    what: str  # "web reaches its gateway 172.18.0.1 on network front"
    why: str  # the promise: "containers reach their network's gateway"
    said: str  # Docker's word for it: "Docker: web is on network front, gateway 172.18.0.1"
    source: int  # the namespace the flow starts in
    packet: Packet
    user: bool = False  # from the check configuration's `expect:`, not from Docker
    arrive_on: str = ""  # from beyond the snapshot: the interface it comes in by
    exit_at: tuple[int, str] | None = None  # to beyond: (namespace, interface) it leaves by
    reach: bool = True  # False: the flow must not be delivered
    one_way: bool = False  # datagrams nobody answers (VXLAN): only the way there counts
    listener: int = 0  # the namespace meant to answer: nothing listening elsewhere fails it
    lab: str = ""  # the lab whose intent promises it (no other rule of `check` reads a lab's)


@dataclass(frozen=True, slots=True)
class ExpectedOutcome:
    expectation: Expectation
    result: PathResult | None  # None when the expectation could not be placed
    problem: str = ""  # why not (a namespace or name the snapshot does not know)


def expectations(snapshot: Snapshot) -> Iterator[Expectation]:
    read = {state.ref.id for state in snapshot.namespaces}
    for engine, host in intent.engines(snapshot):
        running = [c for c in engine.containers if c.running and c.netns
                   and not c.shares and c.network_mode != "host" and c.netns in read]
        uplink = _uplink(snapshot, host.ref.id)  # (address, interface) or None
        uplink6 = _uplink(snapshot, host.ref.id, 6)
        ip6tables = intent.ipv6_firewall(engine, host)
        for network in intent.bridge_networks(engine):
            members = [(c, e) for c in running for e in c.endpoints
                       if e.ip and (e.network_id == network.id or e.network == network.name)]
            yield from _gateway(network, [(c, e, e.gateway) for c, e in members])
            yield from _peers(network, members)
            if uplink is not None and members and _leaves(engine, network):
                yield _way_out(network, members[0], host.ref.id, uplink, 4)
            yield from _ipv6(engine, network, running, host.ref.id, uplink6, ip6tables)
        yield from _dns(running)
        yield from _published(host.ref.id, uplink, running)
        yield from _hairpin(uplink, running)
        yield from _vteps(snapshot, engine, host.ref.id)


def _ipv6(engine: DockerEngine, network: DockerNetwork, running: list[DockerContainer],
          host: int, uplink: tuple[str, str] | None, ip6tables: bool
          ) -> Iterator[Expectation]:
    """The IPv6 twins of a network's flows, when Docker says the network has IPv6."""
    subnet = _ipv6_subnet(network)
    if not network.ipv6 or subnet is None:
        return
    members = [(c, e) for c in running for e in c.endpoints
               if _address(e, 6) and (e.network_id == network.id or e.network == network.name)]
    gateway = "" if network.internal or intent.gateway_mode(network, 6) == "isolated" else \
        subnet.gateway or _first_address(subnet.subnet)
    yield from _gateway(network, [(c, e, gateway) for c, e in members], 6)
    yield from _peers(network, members, 6)
    if uplink is None or not members or not _leaves(engine, network, 6, ip6tables):
        return
    yield _way_out(network, members[0], host, uplink, 6, subnet.subnet)
    if not ip6tables:
        return  # no DNAT for a published port without Docker's ip6tables
    address, device = uplink
    for container, _ in members:
        for port in _published_ports(container, 6):
            yield Expectation(
                f"a client beyond the host reaches {container.name}'s published port "
                f"[{address}]:{port.host_port}{_udp(port.protocol)} over IPv6",
                "published ports answer from outside the host, over IPv6 too",
                f"{_who(container)} publishes {port.protocol} {port.host_port} → "
                f"{port.container_port} on every IPv6 address, and has an IPv6 address on "
                f"network {network.name}",
                host, Packet(CLIENTS[6], address, port.protocol, CLIENT_PORT, port.host_port),
                arrive_on=device)
    yield from _hairpin(uplink, [c for c, _ in members], 6)


def _way_out(network: DockerNetwork, member: tuple[DockerContainer, DockerEndpoint],
             host: int, uplink: tuple[str, str], family: int, subnet: str = ""
             ) -> Expectation:
    """The first member of a network that is not internal reaches beyond the host by the
    uplink, over IPv4 or (`family` 6, the network's `subnet`) IPv6."""
    container, endpoint = member
    six = " over IPv6" if family == 6 else ""
    network_text = f"IPv6 network {network.name} ({subnet})" if family == 6 else \
        f"network {network.name}"
    return Expectation(f"{container.name} reaches beyond the host{six} (by {uplink[1]}) "
                       f"from network {network.name}",
                       f"containers on a{'n IPv6' if six else ''} network that is not internal "
                       f"reach the outside{six}",
                       f"{_who(container)} is on {network_text}, which is not internal",
                       container.netns,
                       Packet(_address(endpoint, family), CLIENTS[family], "tcp", CLIENT_PORT,
                              443),
                       exit_at=(host, uplink[1]))


def _ipv6_subnet(network: DockerNetwork) -> DockerIpam | None:
    return next((ipam for ipam in network.ipam if ":" in ipam.subnet), None)


def _first_address(subnet: str) -> str:
    """Docker's default IPAM's gateway: the subnet's first address."""
    try:
        return str(ipaddress.ip_network(subnet, strict=False).network_address + 1)
    except ValueError:
        return ""


def _address(endpoint: DockerEndpoint, family: int) -> str:
    return endpoint.ip if family == 4 else endpoint.ipv6.split("/")[0]


def _leaves(engine: DockerEngine, network: DockerNetwork, family: int = 4,
            ip6tables: bool = True) -> bool:
    """Whether the network's containers are meant to reach beyond the host on their own:
    masqueraded, or routed (the outside routes back to them). A NAT-mode network without
    masquerading depends on routes beyond the host, which Docker 28 blocks besides; so does
    an IPv6 one without Docker's ip6tables, which masquerade IPv6."""
    masqueraded = intent.masqueraded(engine, network, family) and (family == 4 or ip6tables)
    return not network.internal and (masqueraded
                                      or intent.gateway_mode(network, family) == "routed")


def _gateway(network: DockerNetwork, members, family: int = 4) -> Iterator[Expectation]:
    """(container, endpoint, gateway) → each container to its gateway, if it has one."""
    over = " over IPv6" if family == 6 else ""
    for container, endpoint, gateway in members:
        if gateway:
            address = _address(endpoint, family)
            yield Expectation(f"{container.name} reaches its gateway {gateway} on "
                              f"network {network.name}",
                              f"a container reaches its network's gateway{over}",
                              f"{_who(container)} is on network {network.name} as "
                              f"{address}, gateway {gateway}", container.netns,
                              Packet(address, gateway, "icmp"))


def _peers(network: DockerNetwork, members, family: int = 4) -> Iterator[Expectation]:
    if not intent.flag(network.option(intent.ICC)) or len(members) < 2:
        return
    over = " over IPv6" if family == 6 else ""
    (a, ea), (b, eb) = members[0], members[1]
    for (one, e1), (two, e2) in (((a, ea), (b, eb)), ((b, eb), (a, ea))):
        one_at, two_at = _address(e1, family), _address(e2, family)
        yield Expectation(f"{one.name} reaches {two.name} ({two_at}) on network "
                          f"{network.name}",
                          f"containers on one network reach each other{over} (icc is on)",
                          f"Docker: {one.name} ({one_at}) and {two.name} ({two_at}) are on "
                          f"network {network.name}, icc on", one.netns,
                          Packet(one_at, two_at, "icmp"))


def _dns(running: list[DockerContainer]) -> Iterator[Expectation]:
    for container in running:
        if container.network_mode in ("default", "bridge", "none", ""):
            continue  # the default bridge has no embedded DNS
        yield Expectation(f"{container.name} reaches Docker's DNS at 127.0.0.11:53",
                          "containers on user networks resolve names through Docker's "
                          "embedded DNS", f"{_who(container)} is on user network "
                          f"{container.network_mode}", container.netns,
                          Packet("127.0.0.1", "127.0.0.11", "udp", CLIENT_PORT, 53))


def _uplink(snapshot: Snapshot, host: int, family: int = 4) -> tuple[str, str] | None:
    """(address, interface) of the host's `family` default route: its way to beyond (for
    IPv6, the global address the kernel would pick for a client beyond, as a route learnt
    from router advertisements goes via the router's link-local address)."""
    found = index(snapshot).default_egress(host, family)
    if found is None:
        return None
    route, link = found
    state = snapshot.namespace(host)
    address = interface_address(state, link.name, route.gateway) if family == 4 else \
        interface_address(state, link.name, CLIENTS[6], 6)
    if family == 6 and (not address or is_link_local_ipv6(address)):
        return None  # no global address to be reached at
    return (address, link.name) if address else None


def _published(host: int, uplink: tuple[str, str] | None, running: list[DockerContainer]
               ) -> Iterator[Expectation]:
    if uplink is None:
        return  # no way in from beyond the host to speak of
    address, device = uplink
    for container in running:
        for port in _published_ports(container, 4):
            yield Expectation(
                f"a client beyond the host reaches {container.name}'s published port "
                f"{address}:{port.host_port}{_udp(port.protocol)}",
                "published ports answer from outside the host",
                f"{_who(container)} publishes {port.protocol} {port.host_port} → "
                f"{port.container_port} on every address", host,
                Packet(CLIENT, address, port.protocol, CLIENT_PORT, port.host_port),
                arrive_on=device)


_EVERY_ADDRESS = {4: ("", "0.0.0.0"), 6: ("", "::")}


def _published_ports(container: DockerContainer, family: int):
    """Its published TCP and UDP ports bound on every address of the host of `family`
    (Docker DNATs both, and its userland proxy listens on both; SCTP is not followed)."""
    return [p for p in container.bound if p.protocol in ("tcp", "udp") and p.host_port
            and p.host_ip in _EVERY_ADDRESS[family]]


def _udp(protocol: str) -> str:
    """How a published port's protocol is written after it: "/udp", or nothing for TCP."""
    return "/udp" if protocol == "udp" else ""


def _hairpin(uplink: tuple[str, str] | None, running: list[DockerContainer],
             family: int = 4) -> Iterator[Expectation]:
    """Each container to its own published ports at the host's uplink address — over IPv6
    (`family` 6) from its IPv6 address to the host's IPv6 one, where the caller found
    Docker's ip6tables (its DNAT, or docker-proxy on `::`, takes it back to the container:
    tests/integration/test_ipv6_hairpin.py proves the kernel delivers it)."""
    if uplink is None:
        return
    address, _ = uplink
    at = f"[{address}]" if family == 6 else address
    over = " over IPv6" if family == 6 else ""
    for container in running:
        endpoint = next((e for e in container.endpoints if _address(e, family)), None)
        for port in _published_ports(container, family) if endpoint else ():
            yield Expectation(
                f"{container.name} reaches its own published port {at}:{port.host_port}"
                f"{_udp(port.protocol)}{over}",
                f"a published port answers the containers too, at the host's address{over}",
                f"{_who(container)} publishes {port.protocol} {port.host_port} → "
                f"{port.container_port} on every{' IPv6' if family == 6 else ''} address",
                container.netns, Packet(_address(endpoint, family), address, port.protocol,
                                        CLIENT_PORT, port.host_port))


def _vteps(snapshot: Snapshot, engine: DockerEngine, host: int) -> Iterator[Expectation]:
    own = engine.swarm.node_addr
    if engine.swarm.state != "active" or not own:
        return
    topo = index(snapshot)
    ports = {network.id: link.vxlan.dstport
             for ns, (_, network) in intent.overlay_namespaces(snapshot).items()
             for link in snapshot.namespace(ns).links if link.vxlan is not None}
    seen = set()
    for network in (n for n in engine.networks if n.driver == "overlay"):
        port = ports.get(network.id, VXLAN_PORT)
        for peer in network.peers:
            if peer.address in ("", own) or (peer.address, port) in seen:
                continue
            seen.add((peer.address, port))
            decision = routing.decide(topo, host, peer.address, own, "lo")
            if decision.kind != "unicast" or not decision.dev:
                continue  # no way to the peer at all: missing-default-route and its kin
            said = (f"{intent.who(engine)}: node {peer.name or peer.address} ({peer.address}) "
                    f"is a peer of overlay {network.name}; this node's VTEP is {own}")
            why = f"the nodes of an overlay reach each other's VXLAN port (udp {port})"
            yield Expectation(f"peer node {peer.address} reaches this node's VXLAN port "
                              f"{own}:{port} (overlay {network.name})", why, said, host,
                              Packet(peer.address, own, "udp", port, port),
                              arrive_on=decision.dev)
            yield Expectation(f"this node's VXLAN packets reach peer node {peer.address}:"
                              f"{port} (overlay {network.name})", why, said, host,
                              Packet(own, peer.address, "udp", port, port),
                              exit_at=(host, decision.dev))


def fleet_expectations(snapshot: Snapshot) -> Iterator[Expectation]:
    """In a fleet snapshot, each node of a VXLAN overlay reaches the VXLAN port of each other
    node it sends the overlay to (Docker's overlays are `_vteps`'): the packet leaves the
    node's underlay, crosses to the other node (flows/walk.py's wire between nodes) and must
    get through its firewall to the port."""
    if len(snapshot.machines) < 2:
        return
    yield from _across_overlays(snapshot)
    topo = index(snapshot)
    docker_made = intent.overlay_namespaces(snapshot)
    seen = set()
    for state in snapshot.namespaces:
        here = state.ref.machine
        for link in state.links:
            info = link.vxlan
            if info is None or state.ref.id in docker_made:
                continue
            underlay = topo.underlay(state.ref.id, link)
            if underlay is None or topo.namespace(underlay) is None:
                continue
            for remote in remote_vteps(state, link):
                holders = {topo.ref(h).machine for h, _ in topo.owners_of(remote)} - {"", here}
                if len(holders) != 1 or (underlay, remote, info.dstport) in seen:
                    continue
                seen.add((underlay, remote, info.dstport))
                there = holders.pop()
                source = info.local or ""
                yield Expectation(
                    f"node {here} reaches node {there}'s VXLAN port {remote}:{info.dstport} "
                    f"(VNI {info.vni})",
                    f"the nodes of an overlay reach each other's VXLAN port (udp "
                    f"{info.dstport})",
                    f"{here}: {link.name} sends VNI {info.vni} to VTEP {remote}, node {there}'s",
                    underlay, Packet(source, remote, "udp", info.dstport, info.dstport),
                    one_way=True)


def _across_overlays(snapshot: Snapshot) -> Iterator[Expectation]:
    """A Docker overlay network's containers reach each other across nodes: on each network,
    the first running container of each node reaches the first of the next node (a ring:
    every node is a source once and a destination once)."""
    placed: dict[str, dict[str, tuple[DockerContainer, DockerEndpoint]]] = {}
    names: dict[str, str] = {}
    for engine in snapshot.docker:
        for network in (n for n in engine.networks if n.driver == "overlay"):
            names[network.id] = network.name
        for container in engine.containers:
            state = snapshot.namespace(container.netns) if container.running and \
                container.netns else None
            if state is None or not state.ref.machine:
                continue
            for endpoint in container.endpoints:
                if endpoint.ip and endpoint.network_id in names:
                    placed.setdefault(endpoint.network_id, {}).setdefault(
                        state.ref.machine, (container, endpoint))
    for network_id, by_machine in placed.items():
        machines = sorted(by_machine)
        if len(machines) < 2:
            continue
        for here, there in zip(machines, machines[1:] + machines[:1]):
            (one, e1), (two, e2) = by_machine[here], by_machine[there]
            network = names[network_id]
            yield Expectation(
                f"{one.name} on node {here} reaches {two.name} ({e2.ip}) on node {there} "
                f"over overlay {network}",
                "containers on one overlay network reach each other across nodes",
                f"Docker: {one.name} ({e1.ip}) on {here} and {two.name} ({e2.ip}) on {there} "
                f"are on overlay {network}", one.netns, Packet(e1.ip, e2.ip, "icmp"))


def _who(container: DockerContainer) -> str:
    return f"Docker: {container.name}"


def lab_expectations(snapshot: Snapshot) -> Iterator[Expectation | ExpectedOutcome]:
    nodes = {(state.ref.lab, state.ref.node): state.ref.id for state in snapshot.namespaces
             if state.ref.lab}
    placed = [(lab, app, nodes[(lab.name, app.node)]) for lab in snapshot.labs
              for app in lab.apps if (lab.name, app.node) in nodes]
    seen = set()  # (source, packet): a neighbour's flow that a backend's already is
    for lab, app, source in placed:
        if app.backend:
            found = _backend(snapshot, lab, app, source)
            if isinstance(found, Expectation):
                seen.add((found.source, found.packet))
            yield found
    for lab, app, _ in placed:
        found = _neighbour(lab, app, nodes)
        if found is not None and (found.source, found.packet) not in seen:
            yield found
        twin = _neighbour6(snapshot, lab, app, nodes)
        if twin is not None and (twin.source, twin.packet) not in seen:
            seen.add((twin.source, twin.packet))  # two programs of one node: one ping
            yield twin
    for lab in snapshot.labs:
        yield from _lab_published(snapshot, lab, nodes)


def _lab_published(snapshot: Snapshot, lab: LabIntent, nodes: dict[tuple[str, str], int]
                   ) -> Iterator[Expectation]:
    """Each port a lab's node publishes, TCP or UDP, answers a client on the lab's underlay
    (its switch, a real namespace of the lab) at the host's underlay address — over IPv6 too
    where the driver publishes it there (LabPort.ipv6: the bridge driver DNATs the IPv6 host
    port to the node's IPv6 address, as Docker 28 does) and the host has an IPv6 way out."""
    switch = nodes.get((lab.name, UNDERLAY_NODE))
    for port in lab.published:
        host = nodes.get((lab.name, port.host))
        if switch is None or host is None:
            continue
        dual = port.ipv6 and bool(_lab_ipv6(snapshot, lab, port.node, port.network, nodes))
        for family in (4, 6) if dual else (4,):
            uplink = _uplink(snapshot, host, family)
            if uplink is None:
                continue
            address = f"[{uplink[0]}]" if family == 6 else uplink[0]
            six = " over IPv6" if family == 6 else ""
            yield Expectation(
                f"the lab's underlay reaches {port.node}'s published port {address}:"
                f"{port.host_port}{_udp(port.protocol)} on {port.host}{six}",
                f"published ports answer from beyond the host{six}",
                f"lab {lab.name}: {port.node} publishes {port.protocol} {port.host_port} → "
                f"{port.container_port} on {port.host}, from network {port.network}",
                switch, Packet("", uplink[0], port.protocol, CLIENT_PORT, port.host_port),
                listener=nodes.get((lab.name, port.node), 0), lab=lab.name)


def _said(lab: LabIntent, app: LabApp) -> str:
    return f"lab {lab.name}: {app.node} runs {app.app} on {app.protocol} {app.port}"


def _backend(snapshot: Snapshot, lab: LabIntent, app: LabApp, source: int
             ) -> Expectation | ExpectedOutcome:
    name, port = names.split_port(app.backend)
    what = f"{app.node} reaches its backend {app.backend}"
    why = "a lab's program reaches the backend it is configured with"
    said = f"{_said(lab, app)}, backend {app.backend}"
    try:
        address, _ = names.resolve(snapshot, source, name)
    except UsageError as exc:
        return ExpectedOutcome(Expectation(what, why, said, 0, Packet("", name, "tcp"),
                                           lab=lab.name), None, str(exc))
    return Expectation(f"{what} ({address})", why, said, source,
                       Packet("", address, "tcp", CLIENT_PORT, port or 80), lab=lab.name)


def _neighbour(lab: LabIntent, app: LabApp, nodes: dict[tuple[str, str], int]
               ) -> Expectation | None:
    client = _lab_client(lab, app.node, nodes)
    if client is None:
        return None
    peer, network = client
    record = next((n for n in lab.names if n.name == app.node and n.network == network), None)
    if record is None:
        return None
    return Expectation(f"{peer} reaches {app.node}'s {app.app} on {record.address}:{app.port} "
                       f"({app.protocol})", "a lab's program answers on its port the nodes "
                       "on its networks", f"{_said(lab, app)}, on network {network}",
                       nodes[(lab.name, peer)],
                       Packet("", record.address, app.protocol, CLIENT_PORT, app.port),
                       lab=lab.name)


def _neighbour6(snapshot: Snapshot, lab: LabIntent, app: LabApp,
                nodes: dict[tuple[str, str], int]) -> Expectation | None:
    """The IPv6 twin of a neighbour's flow, on a dual-stack network: ICMPv6 to the global
    IPv6 address beside the IPv4 one the lab's DNS gives."""
    client = _lab_client(lab, app.node, nodes)
    if client is None:
        return None
    peer, network = client
    found = _lab_ipv6(snapshot, lab, app.node, network, nodes)
    if not found:
        return None
    ipv4, ipv6 = found
    return Expectation(f"{peer} reaches {app.node} at {ipv6} over IPv6 (ICMPv6) on network "
                       f"{network}", "the nodes on a dual-stack network reach each other "
                       "over IPv6", f"lab {lab.name}: {app.node} is on network {network} "
                       f"with {ipv4} and {ipv6}", nodes[(lab.name, peer)],
                       Packet("", ipv6, "icmp"), lab=lab.name)


def _lab_ipv6(snapshot: Snapshot, lab: LabIntent, node: str, network: str,
              nodes: dict[tuple[str, str], int]) -> tuple[str, str] | None:
    """(IPv4, IPv6) of `node` on `network` when the network is dual stack: the global IPv6
    address beside the IPv4 one the lab's DNS gives (a network's `subnet6` is what gives the
    interface that address)."""
    record = next((n for n in lab.names if n.name == node and n.network == network), None)
    state = snapshot.namespace(nodes.get((lab.name, node), 0))
    if record is None or state is None:
        return None
    ipv6 = names.ipv6_beside(state, record.address)
    return (record.address, ipv6) if ipv6 else None


def _lab_client(lab: LabIntent, node: str, nodes: dict[tuple[str, str], int]
                ) -> tuple[str, str] | None:
    """The first other node (by name) on one of `node`'s networks, and that network."""
    for network in lab.networks_of(node):
        for other, networks in lab.attached:
            if other != node and network in networks and (lab.name, other) in nodes:
                return other, network
    return None


def user_expectations(snapshot: Snapshot, wanted: Sequence[FlowExpectation]
                      ) -> Iterator[Expectation | ExpectedOutcome]:
    """The config file's flows as Expectations — or, for one that cannot be placed, an
    ExpectedOutcome saying why."""
    if not wanted:
        return
    # Imported here: importing any collect module loads every collector, which a check
    # without flows of its own (`check --from`) does not need.
    from netdiag.collect import namespace_refs

    refs = [state.ref for state in snapshot.namespaces]
    for flow in wanted:
        promise = "the check configuration expects it" + ("" if flow.reach else " blocked")
        placeholder = Expectation(flow.text, promise, f"expect: {flow.text}", 0,
                                  Packet("", flow.to, flow.protocol), reach=flow.reach,
                                  user=True)
        try:
            source = namespace_refs.resolve(flow.source, refs).id
            address, _ = names.resolve(snapshot, source, flow.to)
        except (NotFound, UsageError) as exc:
            yield ExpectedOutcome(placeholder, None, str(exc))
            continue
        sport = CLIENT_PORT if flow.protocol != "icmp" else 0
        yield Expectation(flow.text, promise, f"expect: {flow.text}", source,
                          Packet("", address, flow.protocol, sport, flow.port),
                          reach=flow.reach, user=True)


def judge(snapshot: Snapshot, wanted: Sequence[FlowExpectation] = (),
          engine: Engine | None = None) -> Iterator[ExpectedOutcome]:
    """Each expectation (Docker's, a lab's, then the user's) whose flow does not do as
    promised."""
    engine = engine or Engine(snapshot)
    for expectation in chain(expectations(snapshot), fleet_expectations(snapshot),
                             lab_expectations(snapshot), user_expectations(snapshot, wanted)):
        if isinstance(expectation, ExpectedOutcome):
            yield expectation
            continue
        if expectation.arrive_on:
            result = engine.arriving(expectation.source, expectation.arrive_on,
                                     expectation.packet)
        else:
            result = engine.path(expectation.source, expectation.packet, expectation.exit_at)
        if expectation.exit_at is not None:
            if not (result.leaves_and_returns and
                    result.forward.exited[:2] == expectation.exit_at):
                yield ExpectedOutcome(expectation, result)
            continue
        if expectation.one_way:
            if result.forward.disposition not in (DELIVERED, NO_LISTENER):
                yield ExpectedOutcome(expectation, result)
            continue
        if not expectation.reach:
            if result.delivered:
                yield ExpectedOutcome(expectation, result)
            continue
        if result.delivered or (not expectation.user and result.disposition == NO_LISTENER
                                and _at_listener(expectation, result)):
            continue  # a publish that leads nowhere is port-contention's
        yield ExpectedOutcome(expectation, result)


def _at_listener(expectation: Expectation, result: PathResult) -> bool:
    """Did the flow find nobody listening where it was meant to be answered? A published
    port whose DNAT is gone ends at the host instead, with nothing listening there."""
    drop = result.forward.drop
    return not expectation.listener or (drop is not None
                                        and drop.namespace.id == expectation.listener)
