"""What the Docker rules share: where an engine's objects are in the kernel's state.

An engine's "host" is the namespace its dockerd runs in (DockerEngine.namespace); a bridge
network's bridge is `com.docker.network.bridge.name` or `br-` and 12 hex of its id; a running
container's namespace is the one its process is in (DockerContainer.netns). Rules skip what
cannot be placed (an engine found only by its socket, from inside a container) rather than
guess, and a snapshot without a docker section gives them nothing to do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from netdiag.model import NamespaceState, Snapshot
from netdiag.model.docker import DockerContainer, DockerEngine, DockerNetwork

BRIDGE_NAME = "com.docker.network.bridge.name"
IP_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
ICC = "com.docker.network.bridge.enable_icc"
# Docker 27+: how a bridge network reaches beyond the host, per family: nat (the default),
# nat-unprotected, routed (no NAT, published ports at the container's own address) or
# isolated (no gateway address on the bridge at all).
GATEWAY_MODE = {4: "com.docker.network.bridge.gateway_mode_ipv4",
                6: "com.docker.network.bridge.gateway_mode_ipv6"}
NAT_MODES = ("nat", "nat-unprotected")
# The host address a network's traffic leaves from: Docker SNATs to it instead of masquerading.
HOST_IP = {4: "com.docker.network.host_ipv4", 6: "com.docker.network.host_ipv6"}
# Docker 29's nftables backend (`firewall-backend: nftables`) writes its rules into tables of
# its own by these names, in the ip and ip6 families, and none into iptables.
NFTABLES_BACKEND_TABLE = "docker-bridges"


def engines(snapshot: Snapshot, runtime: str | None = "docker"
            ) -> Iterator[tuple[DockerEngine, NamespaceState]]:
    """Each engine of `runtime` ("docker", "podman"; None: every one) with the state of the
    namespace it runs in (engines that cannot be placed, or whose namespace was not read, are
    left out). Docker's rules judge Docker's engines only: Podman's have rules of their own."""
    for engine in snapshot.docker:
        if runtime is not None and engine.runtime != runtime:
            continue
        state = snapshot.namespace(engine.namespace) if engine.namespace else None
        if state is not None:
            yield engine, state


def bridge_name(network: DockerNetwork) -> str:
    return network.option(BRIDGE_NAME) or f"br-{network.id[:12]}"


def bridge_networks(engine: DockerEngine) -> Iterator[DockerNetwork]:
    """The engine's networks of the bridge driver (the default bridge included)."""
    for network in engine.networks:
        if network.driver == "bridge" and network.ipam:
            yield network


def namespace_of(snapshot: Snapshot, container: DockerContainer) -> NamespaceState | None:
    """The namespace a running container's process is in."""
    return snapshot.namespace(container.netns) if container.netns else None


def flag(value: str, default: bool = True) -> bool:
    """A network option's boolean ("true"/"false"; absent: `default`)."""
    return default if value == "" else value.lower() in ("1", "true", "yes")


def who(engine: DockerEngine) -> str:
    """How findings name an engine: by its host name when there are several."""
    runtime = "Podman" if engine.runtime == "podman" else "Docker"
    return f"{runtime} ({engine.name})" if engine.name else runtime


def overlay_namespaces(snapshot: Snapshot) -> dict[int, tuple[DockerEngine, DockerNetwork]]:
    """The namespaces Docker made for its overlay networks (`<exec-root>/netns/<n>-<first 10
    of the network id>`), each with its engine and network."""
    found = {}
    for engine in snapshot.docker:
        if not engine.exec_root:
            continue
        folder = f"{engine.exec_root.rstrip('/')}/netns/"
        by_prefix = {n.id[:10]: n for n in engine.networks if n.driver == "overlay"}
        for state in snapshot.namespaces:
            path = state.ref.path
            if not path.startswith(folder):
                continue
            number, _, prefix = path[len(folder):].partition("-")
            if number.isdigit() and prefix in by_prefix:
                found[state.ref.id] = (engine, by_prefix[prefix])
    return found


def peer_addresses(engine: DockerEngine, network: DockerNetwork) -> set[str]:
    """The other nodes' VTEP addresses of an overlay network, by its peer list."""
    return {p.address for p in network.peers if p.address and p.address != engine.swarm.node_addr}


def gateway_mode(network: DockerNetwork, family: int = 4) -> str:
    """The network's gateway mode for `family` ("nat" when unset, as every engine before 27)."""
    return network.option(GATEWAY_MODE[family]) or "nat"


def nftables_backend(engine: DockerEngine, host: NamespaceState) -> bool:
    """Whether the engine writes its rules into nftables tables of its own (Docker 29's
    `firewall-backend: nftables`), not iptables: as its configuration says, else as its
    namespace shows (a `docker-bridges` table)."""
    if engine.daemon.firewall_backend:
        return engine.daemon.firewall_backend == "nftables"
    return any(table.name == NFTABLES_BACKEND_TABLE and table.family in ("ip", "ip6")
               for table in host.firewall.nft_tables)


def ipv6_firewall(engine: DockerEngine, host: NamespaceState) -> bool:
    """Whether the daemon writes IPv6 rules in its namespace (ip6tables on: 27+'s default,
    20.10's experimental option): as its configuration says (`ip6tables`), else as its
    namespace shows — Docker 29's `table ip6 docker-bridges`, or the DOCKER chains it makes in
    ip6tables when it starts. Without either, IPv6 is not judged (a missed finding, never a
    false one on a daemon that leaves IPv6 alone). Without it Docker neither masquerades
    IPv6 nor publishes ports over it by DNAT."""
    if engine.daemon.ip6tables is not None:
        return engine.daemon.ip6tables and engine.daemon.iptables
    return any(table.name == NFTABLES_BACKEND_TABLE and table.family == "ip6"
               for table in host.firewall.nft_tables) or \
        any(chain.family == 6 and chain.name.startswith("DOCKER")
            for chain in host.firewall.iptables_chains)


def subnets(network: DockerNetwork, family: int) -> list[str]:
    """The network's subnets of `family` (IPv6 ones only where the network has IPv6 on)."""
    found = []
    for ipam in network.ipam:
        try:
            subnet = ipaddress.ip_network(ipam.subnet, strict=False)
        except ValueError:
            continue
        if subnet.version == family and (family == 4 or network.ipv6):
            found.append(str(subnet))
    return found


def masqueraded(engine: DockerEngine, network: DockerNetwork, family: int = 4) -> bool:
    """Whether the network's traffic to beyond the host leaves masqueraded: not internal, IP
    masquerading on (daemon and network) and a NAT gateway mode."""
    return not network.internal and engine.daemon.ip_masq and \
        flag(network.option(IP_MASQ)) and gateway_mode(network, family) in NAT_MODES
