"""docker-endpoint-broken: a running container is not connected the way Docker says it is.

What it finds
    For every running container and each network Docker says it is on: its namespace has
    no interface with the endpoint's address, the interface is down, or — on a bridge
    network — its veth's other end is no longer a port of the network's bridge. And for a
    container started with `--network container:X`: it no longer shares X's namespace,
    because X was restarted (or re-created) and got a new one while the container stayed in
    the old, empty namespace.

    Docker versions: every layout alike (20.10, 28, 29's nftables backend): it reads links,
    addresses and bridge ports, never the firewall.

Why it matters
    `docker inspect` shows an address and a network the container cannot use: its packets go
    nowhere (a veth taken off the bridge by a network manager, an address flushed by a
    process with NET_ADMIN), or — for a sidecar that shared a VPN or proxy container's
    namespace — every connection fails after that container restarted, with nothing in
    Docker's output to say why.

Example
    ND912 docker-endpoint-broken  web: eth0
      web is on network app as 172.18.0.2, but the other end of eth0 (vethab12cd3 in host)
      is not a port of br-5e1c9a2f3b4d: its packets reach no other container and no gateway
      repair (safe): Put the veth back on the bridge
        $ ip link set dev vethab12cd3 master br-5e1c9a2f3b4d

Repair
    A veth off its bridge is put back (safe: it only restores what Docker made). A missing
    or unaddressed interface, or a container left in an old namespace, needs the container
    restarted (`docker restart NAME`), which Docker wires up again.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety, SetMaster
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Link, NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerContainer, DockerEndpoint, DockerEngine
from netdiag.model.index import index

RULE = Rule(code="ND912", name="docker-endpoint-broken", severity=Severity.ERROR,
            summary="a running container lacks the interface, address or bridge port Docker "
                    "gave it, or no longer shares the namespace it joined")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for engine, host in intent.engines(snapshot):
        for container in engine.containers:
            if not container.running:
                continue
            if container.shares:
                yield from _shared(snapshot, engine, host, container)
                continue
            state = intent.namespace_of(snapshot, container)
            if state is None or state.ref.id == host.ref.id:
                continue  # not read, or --network host
            for endpoint in container.endpoints:
                if endpoint.ip:
                    yield from _endpoint(snapshot, engine, host, state, container, endpoint)


def _restart(container: DockerContainer, ns_id: int) -> Repair:
    return Repair("Let Docker connect the container again", Safety.MANUAL, (ManualStep(
        f"docker restart {container.name}", ns_id),))


def _shared(snapshot: Snapshot, engine: DockerEngine, host: NamespaceState,
            container: DockerContainer) -> Iterator[Finding]:
    owner = engine.container(container.shares)
    if owner is None or not owner.running or not owner.netns or not container.netns or \
            owner.netns == container.netns:
        return
    state = intent.namespace_of(snapshot, container)
    if state is None:
        return
    interfaces = [link.name for link in state.links if link.kind != "loopback"]
    left = f"interfaces {', '.join(interfaces)}" if interfaces else "only lo"
    yield RULE.finding(
        state.ref, "network namespace",
        f"{container.name} was started with --network container:{owner.name}, but it is no "
        f"longer in {owner.name}'s namespace: {owner.name} got a new one (restarted or "
        f"re-created) and {container.name} stayed in the old one, which has {left}",
        evidence=[Evidence(f"{intent.who(engine)}: {container.name} network mode "
                           f"container:{owner.name}", state.ref.id, "docker", container.name),
                  Evidence(f"{container.name}'s process (pid {container.pid}) is in namespace "
                           f"inode:{container.netns}; {owner.name}'s (pid {owner.pid}) in "
                           f"inode:{owner.netns}", state.ref.id, "docker", container.name)],
        related=(owner.netns,),
        repair=Repair(f"Restart {container.name} after {owner.name}", Safety.MANUAL, (
            ManualStep(f"docker restart {container.name}", state.ref.id),)))


def _endpoint(snapshot: Snapshot, engine: DockerEngine, host: NamespaceState,
              state: NamespaceState, container: DockerContainer, endpoint: DockerEndpoint
              ) -> Iterator[Finding]:
    ns_id = state.ref.id
    said = Evidence(f"{intent.who(engine)}: {container.name} is on network {endpoint.network} "
                    f"as {endpoint.ip}/{endpoint.prefixlen} (MAC {endpoint.mac or '?'})",
                    ns_id, "docker", container.name)
    where = f"{container.name} is on network {endpoint.network} as {endpoint.ip}"
    link = _interface(state, endpoint)
    if link is None:
        names = ", ".join(i.name for i in state.links if i.kind != "loopback") or "none"
        yield RULE.finding(
            state.ref, endpoint.ip, f"{where}, but no interface in its namespace has that "
                                    "address: it cannot use the network",
            evidence=[said, Evidence(f"interfaces: {names}", ns_id, "address", endpoint.ip)],
            repair=_restart(container, ns_id))
        return
    if not link.admin_up:
        yield RULE.finding(
            state.ref, link.name, f"{where}, but {link.name} is down",
            evidence=[said, Evidence(f"{link.name} is DOWN", ns_id, "link", link.name)],
            repair=_restart(container, ns_id))
        return
    network = engine.network(endpoint.network_id) or engine.network(endpoint.network)
    if network is None or network.driver != "bridge":
        return
    bridge = intent.bridge_name(network)
    peer = index(snapshot).peer(state.ref.id, link)
    if peer is None or peer[0] != host.ref.id or host.link(bridge) is None:
        return  # the peer was not read, or the bridge itself is gone (docker-bridge-broken)
    _, peer_link = peer
    if peer_link.master == bridge:
        return
    now = f"a port of {peer_link.master}" if peer_link.master else "on no bridge"
    yield RULE.finding(
        state.ref, link.name,
        f"{where}, but the other end of {link.name} ({peer_link.name} in "
        f"{host.ref.display}) is {now}, not of {bridge}: its packets reach no other container "
        "and no gateway",
        evidence=[said, Evidence(f"{peer_link.name} master {peer_link.master or '(none)'}",
                                 host.ref.id, "link", peer_link.name)],
        related=(host.ref.id,),
        repair=Repair("Put the veth back on the bridge", Safety.SAFE,
                      (SetMaster(host.ref.id, peer_link.name, bridge),)))


def _interface(state: NamespaceState, endpoint: DockerEndpoint) -> Link | None:
    """The container's interface holding the endpoint's address."""
    for address in state.addresses:
        if address.address == endpoint.ip:
            return state.link(address.ifname)
    return None
