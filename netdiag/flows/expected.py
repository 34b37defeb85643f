"""The flows that should work, derived from Docker's intent, and what the engine says of them.

For each engine that can be placed (its namespace was read), by equivalence class rather than
every pair:

* every running container on a bridge network reaches its gateway (ICMP);
* on each bridge network with inter-container communication on, its first two running
  containers reach each other (ICMP, both ways);
* every container on a user-defined network reaches Docker's embedded DNS (udp 127.0.0.11:53);
* every published TCP port bound on all addresses answers a client beyond the host: a SYN
  arriving on the interface of the host's default route, to that interface's address;
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
with it (the first other one, by name).

A fleet's (netdiag/fleet/): each node of a VXLAN overlay reaches the VXLAN port of every
other node it sends the overlay to, across the network between the nodes; and on each Docker
overlay network, a container of each node reaches one of the next node (a ring over the
nodes), through both nodes' overlay namespaces and the underlay between them.

And the user's (`expect:` in the check config file): from a namespace, to an address, a name
as that namespace resolves it or a namespace, with a port and protocol, that must reach — or
must be blocked (`reach: false`), which fails when the flow is delivered.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

from netdiag.collect import namespace_refs
from netdiag.errors import NotFound, UsageError
from netdiag.findings.rule import FlowExpectation
from netdiag.flows import names, routing
from netdiag.flows.packet import DELIVERED, NO_LISTENER, Packet, PathResult
from netdiag.flows.walk import Engine, interface_address
from netdiag.model import Snapshot, intent
from netdiag.model.docker import DockerContainer, DockerEndpoint, DockerEngine, DockerNetwork
from netdiag.model.index import index, remote_vteps
from netdiag.model.lab import LabApp, LabIntent

CLIENT = "198.51.100.7"  # TEST-NET-2: the client beyond the host (simulated, never sent)
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


@dataclass(frozen=True, slots=True)
class ExpectedOutcome:
    expectation: Expectation
    result: PathResult | None  # None when the expectation could not be placed
    problem: str = ""  # why not (a namespace or name the snapshot does not know)


def expectations(snapshot: Snapshot) -> Iterator[Expectation]:
    for engine, host in intent.engines(snapshot):
        running = [c for c in engine.containers if c.running and c.netns
                   and not c.shares and c.network_mode != "host"
                   and snapshot.namespace(c.netns) is not None]
        uplink = _uplink(snapshot, host.ref.id)  # (address, interface) or None
        for network in intent.bridge_networks(engine):
            members = [(c, e) for c in running for e in c.endpoints
                       if e.ip and (e.network_id == network.id or e.network == network.name)]
            yield from _gateway(network, members)
            yield from _peers(network, members)
            if uplink is not None and members and _leaves(engine, network):
                container, endpoint = members[0]
                yield Expectation(f"{container.name} reaches beyond the host (by {uplink[1]}) "
                                  f"from network {network.name}",
                                  "containers on a network that is not internal reach the "
                                  "outside", f"{_who(container)} is on network "
                                  f"{network.name}, which is not internal", container.netns,
                                  Packet(endpoint.ip, CLIENT, "tcp", CLIENT_PORT, 443),
                                  exit_at=(host.ref.id, uplink[1]))
        yield from _dns(running)
        yield from _published(host.ref.id, uplink, running)
        yield from _hairpin(uplink, running)
        yield from _vteps(snapshot, engine, host.ref.id)


def _leaves(engine: DockerEngine, network: DockerNetwork) -> bool:
    """Whether the network's containers are meant to reach beyond the host on their own:
    masqueraded, or routed (the outside routes back to them). A NAT-mode network without
    masquerading depends on routes beyond the host, which Docker 28 blocks besides."""
    return not network.internal and (intent.masqueraded(engine, network)
                                      or intent.gateway_mode(network) == "routed")


def _gateway(network: DockerNetwork, members) -> Iterator[Expectation]:
    for container, endpoint in members:
        if endpoint.gateway:
            yield Expectation(f"{container.name} reaches its gateway {endpoint.gateway} on "
                              f"network {network.name}",
                              "a container reaches its network's gateway",
                              f"{_who(container)} is on network {network.name} as "
                              f"{endpoint.ip}, gateway {endpoint.gateway}", container.netns,
                              Packet(endpoint.ip, endpoint.gateway, "icmp"))


def _peers(network: DockerNetwork, members) -> Iterator[Expectation]:
    if not intent.flag(network.option(intent.ICC)) or len(members) < 2:
        return
    (a, ea), (b, eb) = members[0], members[1]
    for (one, e1), (two, e2) in (((a, ea), (b, eb)), ((b, eb), (a, ea))):
        yield Expectation(f"{one.name} reaches {two.name} ({e2.ip}) on network {network.name}",
                          "containers on one network reach each other (icc is on)",
                          f"Docker: {one.name} ({e1.ip}) and {two.name} ({e2.ip}) are on "
                          f"network {network.name}, icc on", one.netns,
                          Packet(e1.ip, e2.ip, "icmp"))


def _dns(running: list[DockerContainer]) -> Iterator[Expectation]:
    for container in running:
        if container.network_mode in ("default", "bridge", "none", ""):
            continue  # the default bridge has no embedded DNS
        yield Expectation(f"{container.name} reaches Docker's DNS at 127.0.0.11:53",
                          "containers on user networks resolve names through Docker's "
                          "embedded DNS", f"{_who(container)} is on user network "
                          f"{container.network_mode}", container.netns,
                          Packet("127.0.0.1", "127.0.0.11", "udp", CLIENT_PORT, 53))


def _uplink(snapshot: Snapshot, host: int) -> tuple[str, str] | None:
    """(address, interface) of the host's default route: its way to beyond."""
    found = index(snapshot).default_egress(host)
    if found is None:
        return None
    route, link = found
    address = interface_address(snapshot.namespace(host), link.name, route.gateway)
    return (address, link.name) if address else None


def _published(host: int, uplink: tuple[str, str] | None, running: list[DockerContainer]
               ) -> Iterator[Expectation]:
    if uplink is None:
        return  # no way in from beyond the host to speak of
    address, device = uplink
    for container in running:
        for port in _published_ports(container):
            yield Expectation(
                f"a client beyond the host reaches {container.name}'s published port "
                f"{address}:{port.host_port}", "published ports answer from outside the host",
                f"{_who(container)} publishes tcp {port.host_port} → {port.container_port} "
                "on every address", host,
                Packet(CLIENT, address, "tcp", CLIENT_PORT, port.host_port),
                arrive_on=device)


def _published_ports(container: DockerContainer):
    """Its published TCP ports bound on every address of the host."""
    return [p for p in container.bound if p.protocol == "tcp" and p.host_port
            and p.host_ip in ("", "0.0.0.0")]


def _hairpin(uplink: tuple[str, str] | None, running: list[DockerContainer]
             ) -> Iterator[Expectation]:
    if uplink is None:
        return
    address, _ = uplink
    for container in running:
        endpoint = next((e for e in container.endpoints if e.ip), None)
        for port in _published_ports(container) if endpoint else ():
            yield Expectation(
                f"{container.name} reaches its own published port {address}:{port.host_port}",
                "a published port answers the containers too, at the host's address",
                f"{_who(container)} publishes tcp {port.host_port} → {port.container_port} "
                "on every address", container.netns,
                Packet(endpoint.ip, address, "tcp", CLIENT_PORT, port.host_port))


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
        return ExpectedOutcome(Expectation(what, why, said, 0, Packet("", name, "tcp")), None,
                               str(exc))
    return Expectation(f"{what} ({address})", why, said, source,
                       Packet("", address, "tcp", CLIENT_PORT, port or 80))


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
                       Packet("", record.address, app.protocol, CLIENT_PORT, app.port))


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
        if result.delivered or (not expectation.user and result.disposition == NO_LISTENER):
            continue  # a publish that leads nowhere is port-contention's
        yield ExpectedOutcome(expectation, result)
