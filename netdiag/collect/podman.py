"""Collector: each Podman engine's intent → DockerEngine records with runtime "podman".

Podman's REST API is Docker's: an API socket is read by the Docker reader unchanged
(collect/docker.read_engine), then completed from Podman's own API (`/v4.0.0/libpod/...`):
its networks as Podman names them (the compat API calls the default one "bridge"), each with
its bridge (`network_interface`, recorded under the key Docker's rules read a bridge's name
from), internal flag and embedded DNS (aardvark-dns, `dns_enabled`), and each container's pod.

The sockets looked at: `/run/podman/podman.sock` (root's), each user's
`$XDG_RUNTIME_DIR/podman/podman.sock` (/run/user/UID/podman/podman.sock) and the socket of every
running `podman system service` process. A socket that does not answer, or answers as another
engine, is not Podman's; one systemd holds for a service that is not running (podman.socket)
is not connected to, since that would start the service. When no service answers for the
storage the `podman` command reads (its graph root, from CONTAINERS_STORAGE_CONF or
/etc/containers/storage.conf) and Podman has
state there (its database), its command line is read instead: `podman ps`, `podman inspect`,
`podman network ls`, `podman version` and `podman info`, all with `--format json` — read
only; no service is ever started.

An engine's "host" namespace (DockerEngine.namespace) is the service's, or else the one its
containers' conmon processes run in (netavark writes its rules there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from netdiag import docker_api
from netdiag.collect import docker
from netdiag.docker_api import Client, EngineAddress
from netdiag.errors import NetdiagError
from netdiag.model import Gap
from netdiag.model.docker import (
    DaemonConfig,
    DockerContainer,
    DockerEngine,
    DockerIpam,
    DockerNetwork,
)
from netdiag.model.intent import BRIDGE_NAME

NAME = "podman"
ROOT_SOCKET = "/run/podman/podman.sock"
USER_SOCKETS = "/run/user/*/podman/podman.sock"  # each user's $XDG_RUNTIME_DIR/podman/...
LIBPOD = "/v4.0.0/libpod"  # Podman 4 and 5 both answer under it
STORAGE_CONF = "/etc/containers/storage.conf"
DEFAULT_GRAPH_ROOT = "/var/lib/containers/storage"
# Podman's database: BoltDB up to 4, SQLite from 5.
STATE_FILES = ("libpod/bolt_state.db", "db.sql")
CLI_TIMEOUT = 20.0
CLI_URL = "podman (command line)"
INIT_PID = 1  # systemd, which holds a socket unit's socket (podman.socket) until a connection


def service_processes() -> list[tuple[int, list[str]]]:
    """(pid, argv) of every running `podman system service`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "podman":
                continue
            argv = [a for a in (entry / "cmdline").read_bytes().decode(
                errors="replace").split("\0") if a]
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if "system" in argv and "service" in argv:
            found.append((int(entry.name), argv))
    return found


def _socket_of_service(pid: int, argv: list[str]) -> str:
    """The unix socket a service listens on: its URL argument, else Podman's default (root's,
    or the user's runtime folder's)."""
    url = next((a for a in argv[argv.index("service") + 1:] if a.startswith("unix://")), "")
    if url:
        return url[len("unix://"):]
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        uid = 0
    return ROOT_SOCKET if uid == 0 else f"/run/user/{uid}/podman/podman.sock"


def find() -> list[EngineAddress]:
    """Podman's API sockets on this host, each with its service process when one runs."""
    by_socket = {_real(_socket_of_service(pid, argv)): (pid, argv)
                 for pid, argv in service_processes()}
    candidates = [ROOT_SOCKET, *sorted(str(p) for p in Path("/").glob(USER_SOCKETS[1:])),
                  *(socket for socket in by_socket)]
    found: dict[str, EngineAddress] = {}
    for path in candidates:
        key = _real(path)
        if key in found or not os.path.exists(path):
            continue
        pid, argv = by_socket.get(key, (0, []))
        if not pid and _activation_only(path):
            continue  # podman.socket with no service: a connection would start podman.service
        found[key] = EngineAddress(path, pid, tuple(argv))
    return list(found.values())


def _activation_only(path: str, init: int | None = None) -> bool:
    """Whether the socket at `path` is held by the init process, as systemd holds a socket
    unit's (podman.socket) while its service is not running: the first connection would start
    the service, and netdiag starts nothing on the user's host (the command line is read
    instead). Unknown (no /proc/net/unix, init's descriptors not readable, as in a container
    that sees only the socket): False."""
    inodes = set()
    try:
        with open("/proc/net/unix") as table:
            for line in table:
                fields = line.split()
                if len(fields) >= 8 and fields[7] in (path, _real(path)):
                    inodes.add(f"socket:[{fields[6]}]")
        folder = f"/proc/{INIT_PID if init is None else init}/fd"
        return bool(inodes) and any(os.readlink(f"{folder}/{fd}") in inodes
                                    for fd in os.listdir(folder))
    except OSError:
        return False


def _real(path: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def is_podman(socket_path: str, timeout: float = docker_api.TIMEOUT) -> bool:
    """Whether the engine at this socket answers Podman's own API (a millisecond; its
    /version, which names it too, takes a second: Podman runs conmon and the OCI runtime to
    report their versions). Docker answers 404."""
    try:
        with Client(socket_path, timeout) as client:
            return isinstance(client.get(f"{LIBPOD}/networks/json"), list)
    except NetdiagError:
        return False


def with_podman(intent: docker.Intent, urls: Sequence[str] = (),
                timeout: float = docker_api.TIMEOUT) -> docker.Intent:
    """`intent` (the Docker reader's) with Podman's engines: an engine it read that is Podman
    (its socket named by `--docker URL`, or Docker's default socket linked to Podman's) is
    completed and marked so, and unless `urls` name the engines, every other Podman engine on
    the host is added — through its API, or, for the storage the `podman` command reads when
    no service of that storage answers, its command line."""
    engines, gaps = [], list(intent.gaps)
    services: list[str] = []  # the sockets of the Podman services read
    for engine in intent.engines:
        socket_path = docker_api.socket_of(engine.url)
        if is_podman(socket_path, timeout):
            try:
                engine = _completed(engine, socket_path, timeout)
                services.append(socket_path)
            except NetdiagError as exc:
                gaps.append(Gap(collector=NAME, kind="error", message=str(exc)))
        engines.append(engine)
    if list(urls):
        return docker.Intent(tuple(engines), tuple(gaps))
    read = {_real(docker_api.socket_of(e.url)) for e in engines}
    for address in find():
        if _real(address.socket) in read or not is_podman(address.socket, timeout):
            continue
        try:
            engines.append(read_engine(address, timeout))
            services.append(address.socket)
        except NetdiagError as exc:
            gaps.append(Gap(collector=NAME, kind="error", message=str(exc)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            gaps.append(Gap(collector=NAME, kind="error", message=(
                f"Podman engine at {address.url}: unexpected answer "
                f"({type(exc).__name__}: {exc})")))
    if has_state() and not _served(_real(_graph_root()), services, timeout):
        try:
            engines.append(read_cli())
        except NetdiagError as exc:
            gaps.append(Gap(collector=NAME, kind="error", message=str(exc)))
    return docker.Intent(tuple(engines), tuple(gaps))


def _served(graph_root: str, services: Sequence[str], timeout: float) -> bool:
    """Whether one of the services read serves this storage (its compat /info's
    DockerRootDir; asked only here, when the command line could read the storage too)."""
    for socket_path in services:
        try:
            with Client(socket_path, timeout) as client:
                root = str(client.get("/info").get("DockerRootDir") or "")
        except NetdiagError:
            continue
        if root and _real(root) == graph_root:
            return True
    return False


def read_engine(address: EngineAddress, timeout: float = docker_api.TIMEOUT) -> DockerEngine:
    """A Podman engine through its API socket: the Docker reader's record, completed."""
    return _completed(docker.read_engine(address, timeout), address.socket, timeout,
                      address.pid)


def _completed(engine: DockerEngine, socket_path: str, timeout: float, pid: int = 0
               ) -> DockerEngine:
    with Client(socket_path, timeout) as client:
        networks = client.get(f"{LIBPOD}/networks/json")
        listing = client.get(f"{LIBPOD}/containers/json?all=true")
    pods = {c.get("Id", ""): c.get("PodName") or "" for c in listing or ()}
    containers = tuple(replace(c, pod=pods.get(c.id, "")) for c in engine.containers)
    return _podman_engine(engine, networks, containers, pid)


def _podman_engine(engine: DockerEngine, networks: list, containers: Sequence[DockerContainer],
                   pid: int = 0) -> DockerEngine:
    """The engine as Podman's: its own networks, the containers' endpoint names as Podman's
    (the compat API calls the default network "bridge"), no Docker daemon settings, and its
    host namespace."""
    own = tuple(sorted((network(n) for n in networks or ()), key=lambda n: n.name))
    names = {n.name for n in own}
    renamed = {"bridge": "podman"} if "bridge" not in names and "podman" in names else {}
    containers = tuple(replace(c, endpoints=tuple(
        replace(e, network=renamed.get(e.network, e.network),
                network_id=renamed.get(e.network_id, e.network_id)) for e in c.endpoints))
        for c in containers)
    namespace = docker.netns_of(pid) if pid else 0
    return replace(engine, runtime="podman", networks=own, containers=containers,
                   exec_root="", daemon=DaemonConfig(),
                   namespace=namespace or _conmon_namespace(containers) or engine.namespace)


def network(data: dict) -> DockerNetwork:
    """A network as Podman describes it (`podman network inspect`, /libpod/networks/json)."""
    options = dict(data.get("options") or {})
    if data.get("network_interface"):
        options[BRIDGE_NAME] = data["network_interface"]
    return DockerNetwork(
        id=data.get("id", ""), name=data.get("name", ""), driver=data.get("driver", ""),
        internal=bool(data.get("internal")), ipv6=bool(data.get("ipv6_enabled")),
        ipam=tuple(DockerIpam(subnet=s["subnet"], gateway=s.get("gateway") or "")
                   for s in data.get("subnets") or () if s.get("subnet")),
        options=tuple(sorted((str(k), str(v)) for k, v in options.items())),
        dns=bool(data.get("dns_enabled")))


def _conmon_namespace(containers: Sequence[DockerContainer]) -> int:
    """The namespace the conmon of a running container is in (its process's parent)."""
    for container in containers:
        if container.running and container.pid:
            parent = _parent(container.pid)
            if parent:
                return docker.netns_of(parent)
    return 0


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ")" ends it.
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0


# --- the command line, when no service runs ---------------------------------------------------


def has_state() -> bool:
    """Whether Podman has state on this host to read (and its command line is installed):
    reading it then creates nothing."""
    if not shutil.which("podman"):
        return False
    root = Path(_graph_root())
    return any((root / name).exists() for name in STATE_FILES)


def _graph_root() -> str:
    """`graphroot` of the storage configuration Podman itself would read."""
    path = os.environ.get("CONTAINERS_STORAGE_CONF") or STORAGE_CONF
    try:
        text = Path(path).read_text()
    except OSError:
        return DEFAULT_GRAPH_ROOT
    match = re.search(r'^\s*graphroot\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return match[1] if match else DEFAULT_GRAPH_ROOT


def _cli(*args: str):
    argv = ["podman", *args]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise docker_api.DockerUnavailable(f"{' '.join(argv)}: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        raise docker_api.DockerUnavailable(f"{' '.join(argv)} failed: {last}")
    try:
        return json.loads(done.stdout or b"null")
    except ValueError:
        raise docker_api.DockerUnavailable(f"{' '.join(argv)}: the answer is not JSON") from None


def read_cli() -> DockerEngine:
    """Podman's intent from its command line (every container, running or not)."""
    version = _cli("version", "--format", "json") or {}
    info = _cli("info", "--format", "json") or {}
    listing = _cli("ps", "-a", "--pod", "--format", "json") or []
    ids = [c["Id"] for c in listing if c.get("Id")]
    inspected = _cli("inspect", "--type", "container", *ids) if ids else []
    pods = {c.get("Id", ""): c.get("PodName") or "" for c in listing}
    containers = tuple(sorted((replace(docker.container_from(data), pod=pods.get(data["Id"], ""))
                               for data in inspected or ()), key=lambda c: c.name))
    client = version.get("Client") or {}
    engine = DockerEngine(url=CLI_URL, runtime="podman", version=client.get("Version", ""),
                          api_version=client.get("APIVersion", ""),
                          name=(info.get("host") or {}).get("hostname", ""))
    return _podman_engine(engine, _cli("network", "ls", "--format", "json") or [], containers)
