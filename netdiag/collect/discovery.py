"""Find every network namespace this process can see, labelled from what is known of it.

Discovery looks in every place a namespace can hide — pid 1 (the host), /run/netns (named),
Docker's exec-root netns folders and each container's SandboxKey, netdiag's lab journals, and
every process's /proc/PID/ns/net — and deduplicates by inode. Podman's containers (their
/run/netns/netns-<uuid> files, or their processes) are then named from its engines' intent:
after the pod, or the container, whose namespace it is. Entering a namespace is
netdiag/netns.py's; resolving what a user typed, namespace_refs.py's beside this file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from netdiag.errors import NamespaceGone, PermissionDenied
from netdiag.model import NamespaceRef, NsKind
from netdiag.model.docker import DockerEngine, DockerNetwork
from netdiag.netns import LAB_DIR, NAMED_DIR, in_initial_pid_namespace, inode_of, namespace_inode

DOCKER_NETNS_DIRS = (Path("/var/run/docker/netns"), Path("/run/docker/netns"))
PIDS_KEPT = 8  # a namespace's first few pids are enough to find its resolv.conf and sockets


@dataclass
class _Found:
    """A namespace being assembled during discovery (mutable, private)."""

    ref: NamespaceRef
    rank: int  # how authoritative the path is: host < named/lab < docker < pid


def _process_namespaces() -> dict[int, tuple[str, list[int], str]]:
    """inode → (a path to enter it, its pids, first process name), from /proc."""
    found: dict[int, tuple[str, list[int], str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        path = f"/proc/{entry.name}/ns/net"
        try:
            inode = os.stat(path).st_ino
        except OSError:  # the process ended, or it is not ours to look at
            continue
        pid = int(entry.name)
        if inode not in found:
            found[inode] = (path, [], _comm(pid))
        found[inode][1].append(pid)
    return found


def _comm(pid: int) -> str:
    """A process's name (os.open and os.read: once per namespace, 1000 times on a big host,
    where pathlib's read_text cost ten times as much)."""
    try:
        fd = os.open(f"/proc/{pid}/comm", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        return os.read(fd, 64).decode(errors="replace").strip()
    except OSError:
        return ""
    finally:
        os.close(fd)


def _docker_kind_label(name: str, engines: Sequence[DockerEngine]) -> str:
    """Labels for the namespaces Docker makes for itself rather than for containers, after the
    network they serve when an engine knows it."""
    if name == "ingress_sbox":
        return "docker ingress sandbox"
    if name.startswith("lb_"):
        network = _network_by_prefix(engines, name[3:])
        return f"load balancer {network.name}" if network else f"docker load balancer {name[3:]}"
    if re.fullmatch(r"\d+-[0-9a-z]{10}", name):
        network = _network_by_prefix(engines, name.split("-", 1)[1])
        return f"overlay {network.name}" if network else \
            f"docker overlay network {name.split('-', 1)[1]}"
    return ""


def _network_by_prefix(engines: Sequence[DockerEngine], prefix: str) -> DockerNetwork | None:
    for engine in engines:
        for network in engine.networks:
            if network.id.startswith(prefix):
                return network
    return None


def engine_netns_dirs(engines: Sequence[DockerEngine] = ()) -> list[Path]:
    """The sandbox folders of every Docker engine: `<exec-root>/netns` of each engine read and
    of each running dockerd process (several engines on one host each have their own; an
    overlay namespace has no process in it, so it is found only here)."""
    from netdiag import docker_api

    roots = [e.exec_root for e in engines if e.exec_root]
    roots += [docker_api.option(argv, "--exec-root") or docker_api.DEFAULT_EXEC_ROOT
              for _, argv in docker_api.dockerd_processes()]
    return sorted({Path(root) / "netns" for root in roots})


def _is_dir(path: Path) -> bool:
    """is_dir that says False for folders we may not look into (netdiag run without root)."""
    try:
        return path.is_dir() and os.access(path, os.R_OK | os.X_OK)
    except OSError:
        return False


def _lab_nodes() -> tuple[dict[str, tuple[str, str]],
                          dict[tuple[str, str], tuple[str, str, str]]]:
    """From the lab journals under /run/netdiag/labs: netns name → (lab, node), and the
    (host netns, first 10 of a network's id) — what names the namespaces the drivers make
    for a lab network on a host node, `<host netns>-<n>-<id>` — → (lab, host node, network)."""
    nodes: dict[str, tuple[str, str]] = {}
    networks: dict[tuple[str, str], tuple[str, str, str]] = {}
    if not _is_dir(LAB_DIR):
        return nodes, networks
    for journal in LAB_DIR.glob("*.json"):
        try:
            data = json.loads(journal.read_text())
            lab = data.get("lab") or data["name"]  # LAB@HOST journals are parts of LAB
            for node, netns in data.get("nodes", {}).items():
                nodes[netns] = (lab, node)
                for network, network_id in data.get("networks", {}).items():
                    networks[(netns, network_id[:10])] = (lab, node, network)
        except (OSError, ValueError, KeyError, AttributeError):
            continue  # a journal being written or damaged: its namespaces still show as named
    return nodes, networks


_DRIVER_NETNS = re.compile(r"(.+)-\d+-([0-9a-f]{10})")


def _lab_network_of(name: str, networks: dict[tuple[str, str], tuple[str, str, str]]
                    ) -> tuple[str, str, str] | None:
    """(lab, host node, network) of a namespace a lab's driver made, e.g. an overlay's."""
    match = _DRIVER_NETNS.fullmatch(name)
    return networks.get((match[1], match[2])) if match else None


def discover(docker_netns_dirs: Sequence[Path] = DOCKER_NETNS_DIRS,
             engines: Sequence[DockerEngine] | None = None) -> list[NamespaceRef]:
    """Every network namespace this process can see, host first, deduplicated by inode.
    Docker's namespaces are labelled from `engines`' intent (read here when not given)."""
    found: dict[int, _Found] = {}

    def add(ref: NamespaceRef, rank: int) -> None:
        have = found.get(ref.id)
        if have is None or rank < have.rank:
            if have is not None:  # keep labels learnt from the less authoritative path
                ref = _merge(ref, have.ref)
            found[ref.id] = _Found(ref, rank)
        else:
            have.ref = _merge(have.ref, ref)

    if engines is None:
        from netdiag.collect import docker  # http.client: only when discovering

        engines = docker.read().engines
    if in_initial_pid_namespace():
        # Kernel threads (kthreadd is pid 2) always live in the initial namespace; pid 1 may
        # be hidden from us (seen in sandboxes), so it is only the first choice.
        for host_path in ("/proc/1/ns/net", "/proc/2/ns/net"):
            try:
                add(NamespaceRef(id=inode_of(host_path), kind=NsKind.HOST, path=host_path,
                                 label="host"), 0)
                break
            except (NamespaceGone, PermissionDenied):
                continue
    else:  # in a container: pid 1 is its own, and its namespace is the one it joined
        add(joined(engines), 0)

    lab_nodes, lab_networks = _lab_nodes()
    for path in sorted(NAMED_DIR.glob("*")) if _is_dir(NAMED_DIR) else ():
        inode = namespace_inode(path)
        if inode is None:
            continue
        serves = _lab_network_of(path.name, lab_networks) if lab_networks else None
        if path.name in lab_nodes:
            lab, node = lab_nodes[path.name]
            add(NamespaceRef(id=inode, kind=NsKind.LAB, path=str(path), name=path.name,
                             label=f"{lab}/{node}", lab=lab, node=node), 1)
        elif serves is not None:
            lab, host, network = serves
            add(NamespaceRef(id=inode, kind=NsKind.NAMED, path=str(path), name=path.name,
                             label=f"{lab}/{host} network {network}", lab=lab), 1)
        else:
            add(NamespaceRef(id=inode, kind=NsKind.NAMED, path=str(path), name=path.name,
                             label=path.name), 1)

    # A container on the host's network (netdiag's own, with --net host) has the host's
    # namespace as its sandbox ("default"): it never names it.
    by_sandbox = {c.sandbox_key: c for engine in engines if engine.runtime == "docker"
                  for c in engine.containers
                  if c.sandbox_key and c.running and c.network_mode != "host"}
    docker_dirs = list(docker_netns_dirs) + engine_netns_dirs(engines) + sorted(
        {Path(key).parent for key in by_sandbox})
    for folder in dict.fromkeys(docker_dirs):
        if not _is_dir(folder):
            continue
        for path in sorted(folder.iterdir()):
            inode = namespace_inode(path)
            if inode is None:
                continue
            container = by_sandbox.get(str(path))
            if container:
                ref = NamespaceRef(id=inode, kind=NsKind.DOCKER, path=str(path), name=path.name,
                                   label=container.name, container=container.name,
                                   docker_networks=tuple(e.network for e in container.endpoints),
                                   pids=(container.pid,) if container.pid else ())
            else:
                ref = NamespaceRef(id=inode, kind=NsKind.DOCKER, path=str(path), name=path.name,
                                   label=_docker_kind_label(path.name, engines)
                                   or f"docker {path.name}")
            add(ref, 2)

    for inode, (path, pids, comm) in _process_namespaces().items():
        pids.sort()
        ref = NamespaceRef(id=inode, kind=NsKind.PID, path=path, label=f"{comm}[{pids[0]}]",
                           pids=tuple(pids[:PIDS_KEPT]), process=comm)
        add(ref, 3)

    for inode, podman_ref in _podman_namespaces(engines).items():
        if inode in found:  # its path stays: /run/netns/netns-<uuid>, or a process's
            found[inode].ref = replace(
                found[inode].ref, kind=NsKind.PODMAN, label=podman_ref.label,
                container=podman_ref.container, docker_networks=podman_ref.docker_networks,
                pids=found[inode].ref.pids or podman_ref.pids)

    return [f.ref for f in sorted(found.values(), key=lambda f: (f.rank, f.ref.label))]


def _podman_namespaces(engines: Sequence[DockerEngine]) -> dict[int, NamespaceRef]:
    """inode → how a Podman container's namespace is known: after its pod, or after the
    container that owns it (not one that joined it, `--network container:X`). A container on
    the host's network, or on none, has no namespace of its own to name."""
    found: dict[int, NamespaceRef] = {}
    for engine in engines:
        if engine.runtime != "podman":
            continue
        running = [c for c in engine.containers if c.running and c.netns
                   and c.network_mode not in ("host", "none")]
        # Owners first: a pod's infra container, a container not joined to another's.
        for container in sorted(running, key=lambda c: bool(c.shares)):
            have = found.get(container.netns)
            if have is not None:
                found[container.netns] = replace(have, pids=have.pids or (container.pid,))
                continue
            label = container.pod or container.name
            if container.network_mode in ("slirp4netns", "pasta"):
                label = f"{label} ({container.network_mode})"  # rootless, user-mode networking
            found[container.netns] = NamespaceRef(
                id=container.netns, kind=NsKind.PODMAN, path=f"/proc/{container.pid}/ns/net",
                label=label, container=container.name,
                docker_networks=tuple(e.network for e in container.endpoints),
                pids=(container.pid,))
    return found


def joined(engines: Sequence[DockerEngine]) -> NamespaceRef:
    """The namespace this process is in, seen from inside a container: named after the
    container whose network it shares — found through the Docker API (a container with one of
    our MAC addresses, or our hostname) when the socket is mounted, else our hostname. A
    container on the host's network (--net host) is in the host's namespace: "host"."""
    path = f"/proc/{os.getpid()}/ns/net"  # as `--ns self` resolves (helpers are other pids)
    inode = inode_of(path)
    hostname = _hostname()
    macs = _own_macs()
    running = [c for engine in engines for c in engine.containers if c.running]
    by_name = {c.id: c for c in running} | {c.name: c for c in running}
    found = next((c for c in running if any(e.mac and e.mac in macs for e in c.endpoints)),
                 None)
    if found is None and hostname:
        found = next((c for c in running if c.hostname == hostname
                      or c.id.startswith(hostname)), None)
        while found is not None and found.shares in by_name and by_name[found.shares] != found:
            found = by_name[found.shares]
    if found is not None and found.network_mode == "host":
        return NamespaceRef(id=inode, kind=NsKind.HOST, path=path, label="host")
    if found is not None:
        return NamespaceRef(id=inode, kind=NsKind.DOCKER, path=path, label=found.name,
                            container=found.name,
                            docker_networks=tuple(e.network for e in found.endpoints))
    return NamespaceRef(id=inode, kind=NsKind.PID, path=path, label=hostname or "self")


def _hostname() -> str:
    try:
        return os.uname().nodename
    except OSError:
        return ""


def _own_macs() -> set[str]:
    """This namespace's MAC addresses, from sysfs (it shows the namespace we are in)."""
    macs = set()
    for address in Path("/sys/class/net").glob("*/address"):
        try:
            mac = address.read_text().strip()
        except OSError:
            continue
        if mac and mac != "00:00:00:00:00:00":
            macs.add(mac)
    return macs


def _merge(primary: NamespaceRef, other: NamespaceRef) -> NamespaceRef:
    """Fill the empty fields of `primary` from `other` (the same namespace seen elsewhere)."""
    return replace(
        primary,
        container=primary.container or other.container,
        docker_networks=primary.docker_networks or other.docker_networks,
        label=primary.label or other.label,
        pids=primary.pids or other.pids,
        process=primary.process or other.process,
    )
