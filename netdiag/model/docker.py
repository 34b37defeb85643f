"""Docker's intent: what each engine on the host says it made, beside what the kernel holds.

One `DockerEngine` per engine found (DOCKER_HOST, the default socket, every running dockerd),
read from its Engine API by netdiag/collect/docker.py: version, swarm role, the daemon's
effective network configuration, its networks (with the overlay's peer list and services'
VIPs), every container — running or not — with its requested ports and per-network endpoint,
and the services and tasks when the engine is a manager. Environment variables, secrets and
labels are never read. Rules compare this with the namespaces' kernel state
(netdiag/checks/docker/).

Podman engines are recorded here too, with `runtime` "podman": Podman's REST API is Docker's
(read by the same reader), completed from its own API or command line by
netdiag/collect/podman.py — network names and bridges, embedded DNS, pods. Podman rules are in
netdiag/checks/podman/.
"""

from __future__ import annotations

from dataclasses import dataclass


def docker_mac(address: str) -> str:
    """The MAC Docker gives an endpoint (bridge, overlay, macvlan): 02:42 followed by its IPv4
    address bytes ("" for anything that is not an IPv4 address)."""
    parts = address.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return ""
    return "02:42:" + ":".join(f"{int(p):02x}" for p in parts)


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """The daemon's effective network configuration (command line over daemon.json over
    Docker's defaults); `sources` says what it was read from."""

    iptables: bool = True
    ip_forward: bool = True
    ip_masq: bool = True
    icc: bool = True
    userland_proxy: bool = True
    live_restore: bool = False
    ipv6: bool = False
    ip6tables: bool | None = None  # None: not set (on by default since 27, off before)
    firewall_backend: str = ""  # "iptables" or "nftables" (29+); "": not set (iptables)
    allow_direct_routing: bool = False  # 28+: no raw-table drop of packets to containers
    ip_forward_no_drop: bool = False  # 28+: forwarding on without FORWARD policy DROP
    bip: str = ""  # docker0's address/prefix when set
    fixed_cidr: str = ""
    bridge: str = ""  # -b: a bridge of one's own instead of docker0 ("none": no default bridge)
    mtu: int = 0  # 0: not set (Docker uses 1500)
    default_address_pools: tuple[str, ...] = ()  # "base/size", e.g. "10.10.0.0/16/24"
    sources: tuple[str, ...] = ()  # "command line", "/etc/docker/daemon.json"


@dataclass(frozen=True, slots=True)
class DockerSwarm:
    state: str = "inactive"  # inactive, pending, active, error, locked
    node_id: str = ""
    node_addr: str = ""
    role: str = ""  # manager, worker ("" when not in a swarm)
    managers: tuple[str, ...] = ()  # the managers' addresses (host:port)
    error: str = ""


@dataclass(frozen=True, slots=True)
class DockerIpam:
    subnet: str
    gateway: str = ""  # as configured or, for Docker's default IPAM, the subnet's first address
    ip_range: str = ""


@dataclass(frozen=True, slots=True)
class DockerPeer:
    """A node of an overlay network (verbose inspect's Peers): its name and VTEP address."""

    name: str
    address: str


@dataclass(frozen=True, slots=True)
class DockerVip:
    """A service's virtual IP on a network, with the tasks behind it (verbose inspect)."""

    service: str
    vip: str
    tasks: tuple[tuple[str, str], ...] = ()  # (task endpoint IP, node VTEP address)


@dataclass(frozen=True, slots=True)
class DockerNetwork:
    id: str
    name: str
    driver: str  # bridge, overlay, macvlan, ipvlan, host, null, a plugin's name
    scope: str = "local"  # local, swarm, global
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    ipv6: bool = False
    ipam: tuple[DockerIpam, ...] = ()
    options: tuple[tuple[str, str], ...] = ()  # com.docker.network.bridge.name, driver.mtu...
    peers: tuple[DockerPeer, ...] = ()
    vips: tuple[DockerVip, ...] = ()
    dns: bool = False  # Podman: the network has aardvark-dns (`dns_enabled`) on its gateway

    def option(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.options if key == name), default)


@dataclass(frozen=True, slots=True)
class DockerPort:
    """A port binding: requested (HostConfig.PortBindings) or bound (NetworkSettings.Ports)."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""  # "" and 0.0.0.0: every address
    host_port: int = 0  # 0: Docker chooses


@dataclass(frozen=True, slots=True)
class DockerEndpoint:
    """A container on a network, as Docker records it."""

    network: str  # name
    network_id: str
    ip: str = ""
    prefixlen: int = 0
    mac: str = ""
    gateway: str = ""
    ipv6: str = ""
    aliases: tuple[str, ...] = ()
    endpoint_id: str = ""


@dataclass(frozen=True, slots=True)
class DockerContainer:
    id: str
    name: str
    state: str  # created, running, paused, restarting, removing, exited, dead
    image: str = ""
    exit_code: int = 0
    error: str = ""  # why it did not start ("... port is already allocated")
    pid: int = 0
    netns: int = 0  # inode of the network namespace its process is in (0: not running)
    network_mode: str = ""  # default, bridge, host, none, container:ID, a network's name
    sandbox_key: str = ""
    hostname: str = ""
    ports: tuple[DockerPort, ...] = ()  # requested
    bound: tuple[DockerPort, ...] = ()  # what Docker says it bound
    endpoints: tuple[DockerEndpoint, ...] = ()
    pod: str = ""  # Podman: the name of the pod it belongs to ("" for none)

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused", "restarting")

    @property
    def shares(self) -> str:
        """The container whose namespace this one joined (`--network container:X`), or ""."""
        return self.network_mode.partition(":")[2] if self.network_mode.startswith(
            "container:") else ""


@dataclass(frozen=True, slots=True)
class DockerTask:
    id: str
    service: str  # service id
    node_id: str = ""
    state: str = ""  # running, failed, rejected...
    desired_state: str = ""
    error: str = ""
    container_id: str = ""
    addresses: tuple[tuple[str, str], ...] = ()  # (network id, address/prefix)


@dataclass(frozen=True, slots=True)
class DockerService:
    id: str
    name: str
    mode: str = "replicated"  # replicated, global
    replicas: int = 0
    ports: tuple[DockerPort, ...] = ()  # published: container (target) and host (published)
    vips: tuple[tuple[str, str], ...] = ()  # (network id, address/prefix)


@dataclass(frozen=True, slots=True)
class DockerEngine:
    """One engine and everything it says it made."""

    url: str  # unix:///var/run/docker.sock; "podman (command line)" when read without an API
    runtime: str = "docker"  # docker, podman
    namespace: int = 0  # inode of the network namespace dockerd runs in; 0: not known
    pid: int = 0  # dockerd's pid, when found by its process
    id: str = ""
    name: str = ""  # the engine's host name (docker info's Name)
    version: str = ""
    api_version: str = ""
    exec_root: str = ""
    daemon: DaemonConfig = DaemonConfig()
    swarm: DockerSwarm = DockerSwarm()
    networks: tuple[DockerNetwork, ...] = ()
    containers: tuple[DockerContainer, ...] = ()
    services: tuple[DockerService, ...] = ()
    tasks: tuple[DockerTask, ...] = ()

    def network(self, key: str) -> DockerNetwork | None:
        """The network with this id (or id prefix of 10+ characters) or name."""
        for network in self.networks:
            if key in (network.id, network.name) or (len(key) >= 10 and
                                                     network.id.startswith(key)):
                return network
        return None

    def container(self, key: str) -> DockerContainer | None:
        """The container with this id (or 12+ character prefix) or name."""
        for container in self.containers:
            if key in (container.id, container.name) or (len(key) >= 12 and
                                                         container.id.startswith(key)):
                return container
        return None
