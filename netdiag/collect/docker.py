"""Collector: each Docker engine's intent (Engine API) → DockerEngine records.

Per engine (docker_api.find): /version and /info (version, swarm state, node id and address,
managers), the daemon's effective network configuration (its command line over its
daemon.json, read through /proc/PID/root so an engine in another mount namespace is read
right), /networks with a verbose inspect of each overlay network (its peers and services'
VIPs), /containers/json?all=1 and an inspect of every container — running or not — for its
state, exit code, error, network mode, requested and bound ports, sandbox key and endpoints;
and, on a manager, /services and /tasks. Inspects run on a few threads, each with its own
keep-alive connection. Environment variables, secrets, mounts and labels are never kept.

An engine that does not answer is a gap (collector "docker"); the others are still read.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from netdiag import docker_api, netns
from netdiag.docker_api import Client, EngineAddress
from netdiag.errors import NetdiagError
from netdiag.model import Gap
from netdiag.model.docker import (
    DaemonConfig,
    DockerContainer,
    DockerEndpoint,
    DockerEngine,
    DockerIpam,
    DockerNetwork,
    DockerPeer,
    DockerPort,
    DockerService,
    DockerSwarm,
    DockerTask,
    DockerVip,
)

NAME = "docker"
INSPECT_THREADS = 4


@dataclass(frozen=True, slots=True)
class Intent:
    """What the engines said (read once per run: discovery labels from it, the Snapshot
    keeps it), and a gap per engine that did not answer."""

    engines: tuple[DockerEngine, ...] = ()
    gaps: tuple[Gap, ...] = ()
_FLAGS = {  # daemon.json key / command-line flag → DaemonConfig field (booleans)
    "iptables": "iptables", "ip-forward": "ip_forward", "ip-masq": "ip_masq", "icc": "icc",
    "userland-proxy": "userland_proxy", "live-restore": "live_restore", "ipv6": "ipv6",
    "ip6tables": "ip6tables", "allow-direct-routing": "allow_direct_routing",
    "ip-forward-no-drop": "ip_forward_no_drop",
}
_VALUES = {"bip": "bip", "fixed-cidr": "fixed_cidr", "bridge": "bridge",
           "firewall-backend": "firewall_backend"}


def read(urls: Sequence[str] = (), timeout: float = docker_api.TIMEOUT) -> Intent:
    """Every engine's intent (the engines `urls` names, else every one found on the host,
    Podman's included: collect/podman.py)."""
    engines, gaps = [], []
    for address in docker_api.find(urls):
        try:
            engines.append(read_engine(address, timeout))
        except NetdiagError as exc:
            gaps.append(Gap(collector=NAME, kind="error", message=str(exc)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # An answer of another shape than the Engine API documents (another engine
            # version, a proxy in front of the socket): a gap, never a traceback.
            gaps.append(Gap(collector=NAME, kind="error", message=(
                f"Docker engine at {address.url}: unexpected answer "
                f"({type(exc).__name__}: {exc})")))
    if list(urls) == ["none"]:
        return Intent(tuple(engines), tuple(gaps))
    from netdiag.collect import podman  # Podman's API is Docker's: its engines are read here

    return podman.with_podman(Intent(tuple(engines), tuple(gaps)), urls, timeout)


def read_engine(address: EngineAddress, timeout: float = docker_api.TIMEOUT) -> DockerEngine:
    with Client(address.socket, timeout) as client:
        version = client.get("/version")
        info = client.get("/info")
        networks = client.get("/networks")
        listing = client.get("/containers/json?all=1")
        swarm = _swarm(info.get("Swarm") or {})
        services, tasks = ([], [])
        if swarm.role == "manager":
            services = client.get("/services")
            tasks = client.get("/tasks")
    overlays = [n["Id"] for n in networks if n.get("Driver") == "overlay"]
    ids = [c["Id"] for c in listing]
    with ThreadPoolExecutor(INSPECT_THREADS, thread_name_prefix="netdiag-docker") as pool:
        shares = [ids[i::INSPECT_THREADS] for i in range(INSPECT_THREADS)]
        inspected = dict(pair for found in pool.map(
            lambda share: _inspect(address.socket, timeout, "/containers/{}/json", share),
            shares) for pair in found)
        verbose = dict(_inspect(address.socket, timeout, "/networks/{}?verbose=true",
                                overlays))
    containers = tuple(sorted((container_from(inspected[i]) for i in ids if i in inspected),
                              key=lambda c: c.name))
    return DockerEngine(
        url=address.url, namespace=netns_of(address.pid), pid=address.pid,
        id=info.get("ID", ""), name=info.get("Name", ""),
        version=version.get("Version", ""), api_version=version.get("ApiVersion", ""),
        exec_root=address.exec_root, daemon=daemon_config(address), swarm=swarm,
        networks=tuple(sorted((_network(verbose.get(n["Id"], n)) for n in networks),
                              key=lambda n: n.name)),
        containers=containers,
        services=tuple(_service(s) for s in services or ()),
        tasks=tuple(_task(t) for t in tasks or ()))


def _inspect(socket_path: str, timeout: float, url: str, ids: Sequence[str]
             ) -> list[tuple[str, dict]]:
    """(id, inspect) for each id that still exists (a container removed meanwhile is not)."""
    found = []
    if not ids:
        return found
    with Client(socket_path, timeout) as client:
        for item in ids:
            try:
                found.append((item, client.get(url.format(item))))
            except docker_api.DockerUnavailable as exc:
                if " 404 " not in str(exc):
                    raise
    return found


def netns_of(pid: int) -> int:
    """The network namespace a process is in (0: no process, or it is gone)."""
    if not pid:
        return 0
    try:
        return netns.inode_of(f"/proc/{pid}/ns/net")
    except NetdiagError:
        return 0


# --- the daemon's configuration ---------------------------------------------------------------


def daemon_config(address: EngineAddress) -> DaemonConfig:
    """Command line over daemon.json over Docker's defaults (a process not found: defaults)."""
    values: dict = {}
    sources = []
    argv = list(address.argv)
    if address.pid:
        path = address.option("--config-file", docker_api.DEFAULT_CONFIG)
        from_file = _daemon_json(address.pid, path)
        if from_file is not None:
            sources.append(path)
            values.update(_from_json(from_file))
    if argv:
        sources.append("command line")
        values.update(_from_argv(argv))
    return DaemonConfig(**values, sources=tuple(sources))


def _daemon_json(pid: int, path: str) -> dict | None:
    try:
        data = json.loads(Path(f"/proc/{pid}/root{path}").read_text() or "{}")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _from_json(data: dict) -> dict:
    values = {}
    for key, name in _FLAGS.items():
        if isinstance(data.get(key), bool):
            values[name] = data[key]
    for key, name in _VALUES.items():
        if isinstance(data.get(key), str):
            values[name] = data[key]
    if isinstance(data.get("mtu"), int):
        values["mtu"] = data["mtu"]
    pools = data.get("default-address-pools")
    if isinstance(pools, list):
        values["default_address_pools"] = tuple(
            f"{p.get('base')}/{p.get('size')}" for p in pools if isinstance(p, dict))
    return values


def _from_argv(argv: list[str]) -> dict:
    values = {}
    for key, name in _FLAGS.items():
        # Go's boolean flags: `--flag` alone is true, a value needs `=` (`--flag=false`).
        for arg in argv:
            if arg == f"--{key}":
                values[name] = True
            elif arg.startswith(f"--{key}="):
                values[name] = arg.split("=", 1)[1].lower() in ("1", "t", "true")
    for key, name in _VALUES.items():
        text = docker_api.option(argv, f"--{key}", *(("-b",) if key == "bridge" else ()))
        if text:
            values[name] = text
    mtu = docker_api.option(argv, "--mtu")
    if mtu.isdigit():
        values["mtu"] = int(mtu)
    pools = docker_api.options(argv, "--default-address-pool")
    if pools:
        values["default_address_pools"] = tuple(_pool_text(p) for p in pools)
    return values


def _pool_text(flag: str) -> str:
    """`base=10.10.0.0/16,size=24` → "10.10.0.0/16/24"."""
    parts = dict(item.partition("=")[::2] for item in flag.split(","))
    return f"{parts.get('base', '')}/{parts.get('size', '')}"


# --- swarm, networks, containers, services ----------------------------------------------------


def _swarm(data: dict) -> DockerSwarm:
    state = data.get("LocalNodeState") or "inactive"
    role = ""
    if state == "active":
        role = "manager" if data.get("ControlAvailable") else "worker"
    return DockerSwarm(state=state, node_id=data.get("NodeID") or "",
                       node_addr=data.get("NodeAddr") or "", role=role,
                       managers=tuple(sorted(m.get("Addr", "") for m in
                                             data.get("RemoteManagers") or ())),
                       error=data.get("Error") or "")


def _network(data: dict) -> DockerNetwork:
    ipam = tuple(_ipam(c) for c in (data.get("IPAM") or {}).get("Config") or () if c.get("Subnet"))
    vips = []
    for service, detail in sorted((data.get("Services") or {}).items()):
        tasks = tuple(sorted((t.get("EndpointIP", ""), (t.get("Info") or {}).get("Host IP", ""))
                             for t in detail.get("Tasks") or ()))
        vips.append(DockerVip(service=service or "", vip=detail.get("VIP", ""), tasks=tasks))
    return DockerNetwork(
        id=data["Id"], name=data.get("Name", ""), driver=data.get("Driver", ""),
        scope=data.get("Scope", "local"), internal=bool(data.get("Internal")),
        attachable=bool(data.get("Attachable")), ingress=bool(data.get("Ingress")),
        ipv6=bool(data.get("EnableIPv6")), ipam=ipam,
        options=tuple(sorted((data.get("Options") or {}).items())),
        peers=tuple(sorted((DockerPeer(p.get("Name", ""), p.get("IP", ""))
                            for p in data.get("Peers") or ()), key=lambda p: (p.name, p.address))),
        vips=tuple(vips))


def _ipam(config: dict) -> DockerIpam:
    subnet = config["Subnet"]
    gateway = config.get("Gateway", "")
    try:
        network = ipaddress.ip_network(subnet, strict=False)
        if not gateway and network.version == 4 and network.prefixlen < 31:
            gateway = str(network.network_address + 1)  # Docker's default IPAM's choice
    except ValueError:
        pass
    return DockerIpam(subnet=subnet, gateway=gateway, ip_range=config.get("IPRange", ""))


def _ports(bindings: dict | None) -> tuple[DockerPort, ...]:
    """`{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}` → DockerPorts."""
    found = []
    for key, hosts in sorted((bindings or {}).items()):
        port, _, protocol = key.partition("/")
        for host in hosts or ():
            text = str(host.get("HostPort") or "0")
            first = text.split("-")[0]
            found.append(DockerPort(container_port=int(port), protocol=protocol or "tcp",
                                    host_ip=host.get("HostIp") or "",
                                    host_port=int(first) if first.isdigit() else 0))
    return tuple(found)


def container_from(data: dict) -> DockerContainer:
    """A container from the engine's inspect JSON (Docker's, or Podman's compatible one)."""
    state = data.get("State") or {}
    host = data.get("HostConfig") or {}
    settings = data.get("NetworkSettings") or {}
    config = data.get("Config") or {}
    endpoints = tuple(sorted((_endpoint(name, ep) for name, ep in
                              (settings.get("Networks") or {}).items()),
                             key=lambda e: e.network))
    return DockerContainer(
        id=data["Id"], name=data.get("Name", "").lstrip("/"),
        state=state.get("Status", ""), image=config.get("Image", ""),
        exit_code=state.get("ExitCode") or 0, error=state.get("Error") or "",
        pid=state.get("Pid") or 0, netns=netns_of(state.get("Pid") or 0),
        network_mode=host.get("NetworkMode") or "",
        sandbox_key=settings.get("SandboxKey") or "", hostname=config.get("Hostname", ""),
        ports=_ports(host.get("PortBindings")), bound=_ports(settings.get("Ports")),
        endpoints=endpoints)


def _endpoint(network: str, data: dict) -> DockerEndpoint:
    return DockerEndpoint(
        network=network, network_id=data.get("NetworkID") or "",
        ip=data.get("IPAddress") or "", prefixlen=data.get("IPPrefixLen") or 0,
        mac=data.get("MacAddress") or "", gateway=data.get("Gateway") or "",
        ipv6=data.get("GlobalIPv6Address") or "",
        aliases=tuple(data.get("Aliases") or ()), endpoint_id=data.get("EndpointID") or "")


def _service(data: dict) -> DockerService:
    spec = data.get("Spec") or {}
    mode = spec.get("Mode") or {}
    endpoint = data.get("Endpoint") or {}
    ports = tuple(DockerPort(container_port=p.get("TargetPort", 0),
                             protocol=p.get("Protocol", "tcp"),
                             host_port=p.get("PublishedPort", 0))
                  for p in endpoint.get("Ports") or ())
    return DockerService(
        id=data.get("ID", ""), name=spec.get("Name", ""),
        mode="global" if "Global" in mode else "replicated",
        replicas=(mode.get("Replicated") or {}).get("Replicas", 0), ports=ports,
        vips=tuple((v.get("NetworkID", ""), v.get("Addr", ""))
                   for v in endpoint.get("VirtualIPs") or ()))


def _task(data: dict) -> DockerTask:
    status = data.get("Status") or {}
    addresses = []
    for attachment in data.get("NetworksAttachments") or ():
        network = (attachment.get("Network") or {}).get("ID", "")
        for address in attachment.get("Addresses") or ():
            addresses.append((network, address))
    return DockerTask(
        id=data.get("ID", ""), service=data.get("ServiceID", ""),
        node_id=data.get("NodeID", ""), state=status.get("State", ""),
        desired_state=data.get("DesiredState", ""), error=status.get("Err", ""),
        container_id=(status.get("ContainerStatus") or {}).get("ContainerID", ""),
        addresses=tuple(addresses))
