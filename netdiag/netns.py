"""Find network namespaces and enter them: the only module that calls setns.

Discovery looks in every place a namespace can hide — pid 1 (the host), /run/netns (named),
Docker's exec-root netns folders and each container's SandboxKey, netdiag's lab journals, and
every process's /proc/PID/ns/net — and deduplicates by inode.

Entering happens in the calling thread only (setns is per thread), so a pool of worker threads
can each sit in a different namespace while the main thread stays where it was. Netlink sockets
and helper programs opened while a thread is inside a namespace belong to that namespace.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from netdiag import capabilities
from netdiag.errors import CollectError, NamespaceGone, NotFound, PermissionDenied
from netdiag.model import NamespaceRef, NsKind
from netdiag.model.docker import DockerEngine, DockerNetwork

CLONE_NEWNET = 0x40000000
NAMED_DIR = Path("/run/netns")
DOCKER_NETNS_DIRS = (Path("/var/run/docker/netns"), Path("/run/docker/netns"))
LAB_DIR = Path("/run/netdiag/labs")
PIDS_KEPT = 8  # a namespace's first few pids are enough to find its resolv.conf and sockets

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        if err == errno.EPERM:
            raise capabilities.refused(f"cannot enter {what}", "SYS_ADMIN")
        raise CollectError(f"cannot enter {what}: {os.strerror(err)}")


def _open_ns(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceGone(f"namespace {path} is gone") from None
    except PermissionError:
        raise capabilities.refused(f"cannot open {path}", "SYS_PTRACE") from None


@contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the body with the current thread inside the network namespace at `path`."""
    home = _open_ns("/proc/thread-self/ns/net")
    try:
        target = _open_ns(path)
        try:
            # Already there (`--ns self`): setns would need CAP_SYS_ADMIN, which a container
            # running netdiag against its own namespace does not have.
            moved = not _same_file(target, home)
            if moved:
                _setns(target, path)
        finally:
            os.close(target)
        try:
            yield
        finally:
            if moved:
                _setns(home, "the namespace netdiag started in")
    finally:
        os.close(home)


def _same_file(fd_a: int, fd_b: int) -> bool:
    a, b = os.fstat(fd_a), os.fstat(fd_b)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def inode_of(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        raise NamespaceGone(f"namespace {path} is gone") from None
    except PermissionError:
        raise PermissionDenied(f"cannot read {path}: permission denied") from None


def self_inode() -> int:
    return inode_of("/proc/thread-self/ns/net")


# --- discovery ----------------------------------------------------------------------------


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
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


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
        inode = _namespace_inode(path)
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
    by_sandbox = {c.sandbox_key: c for engine in engines for c in engine.containers
                  if c.sandbox_key and c.running and c.network_mode != "host"}
    docker_dirs = list(docker_netns_dirs) + engine_netns_dirs(engines) + sorted(
        {Path(key).parent for key in by_sandbox})
    for folder in dict.fromkeys(docker_dirs):
        if not _is_dir(folder):
            continue
        for path in sorted(folder.iterdir()):
            inode = _namespace_inode(path)
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

    return [f.ref for f in sorted(found.values(), key=lambda f: (f.rank, f.ref.label))]


PID_INIT_INODE = 0xEFFFFFFC  # the initial pid namespace's inode: fixed by the kernel


def in_initial_pid_namespace() -> bool:
    """Whether this process sees the host's processes (not a container's own pid namespace).
    Where that cannot be told, yes: netdiag then labels as it always did."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino == PID_INIT_INODE
    except OSError:
        return True


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


def _namespace_inode(path: Path | str) -> int | None:
    """The inode of a namespace file, or None for anything else.

    Docker unmounts a removed container's sandbox at once but deletes the file up to a minute
    later, and `ip netns` can leave files behind: such a plain file is not a namespace, and
    entering it fails with EINVAL. Namespace files all live on the one nsfs device.
    """
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_ino if found.st_dev == _nsfs_device() else None


@cache
def _nsfs_device() -> int:
    return os.stat("/proc/self/ns/net").st_dev


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


# --- references given on the command line ---------------------------------------------------


def resolve(reference: str, namespaces: Sequence[NamespaceRef] | None = None) -> NamespaceRef:
    """A command-line namespace reference → the namespace it names.

    Accepts `self`, `host`, `pid:N`, `container:NAME`, `inode:N`, a path, or a name (a named
    namespace, a Docker container or sandbox, a lab node as LAB/NODE, or a label).
    """
    return resolve_all([reference], namespaces)[0]


def resolve_all(references: Sequence[str],
                namespaces: Sequence[NamespaceRef] | None = None) -> list[NamespaceRef]:
    """`resolve` for many references, indexing the namespaces once (`--ns` a thousand times)."""
    index = _RefIndex(list(namespaces) if namespaces is not None else discover())
    return [index.resolve(reference) for reference in references]


class _RefIndex:
    def __init__(self, namespaces: list[NamespaceRef]):
        self.by_id = {ns.id: ns for ns in namespaces}
        self.by_field: list[dict[str, NamespaceRef]] = []
        for field in ("name", "container", "label"):  # in this order of precedence
            table: dict[str, NamespaceRef] = {}
            for ns in namespaces:
                table.setdefault(getattr(ns, field), ns)
            self.by_field.append(table)
        self.containers: dict[str, NamespaceRef] = {}
        for ns in namespaces:
            if ns.kind is NsKind.DOCKER:
                self.containers.setdefault(ns.container, ns)
                self.containers.setdefault(ns.name, ns)
        # A fleet snapshot's namespaces: MACHINE/REF is REF among that machine's.
        self.machines: dict[str, list[NamespaceRef]] = {}
        for ns in namespaces:
            if ns.machine:
                self.machines.setdefault(ns.machine, []).append(
                    replace(ns, label=ns.label.removeprefix(f"{ns.machine}/")))

    def known(self, inode: int, path: str) -> NamespaceRef:
        return self.by_id.get(inode) or NamespaceRef(id=inode, kind=NsKind.PID, path=path)

    def resolve(self, reference: str) -> NamespaceRef:
        machine, _, rest = reference.partition("/")
        if rest and machine in self.machines:
            local = _RefIndex(self.machines[machine]).resolve(rest)
            return self.by_id[local.id]
        kind, _, value = reference.partition(":")
        found: NamespaceRef | None = None
        if reference == "self":
            path = f"/proc/{os.getpid()}/ns/net"
            return self.known(inode_of(path), path)
        if kind == "pid" and value.isdigit():
            path = f"/proc/{value}/ns/net"
            if not os.path.exists(path):
                raise NotFound(f"no process with pid {value}")
            return self.known(inode_of(path), path)
        if kind == "inode" and value.isdigit():
            found = self.by_id.get(int(value))
        elif kind == "container":
            found = self.containers.get(value) if value else None
        elif reference.startswith(("/", "./")):
            if not os.path.exists(reference):
                raise NotFound(f"{reference}: no such file")
            inode = _namespace_inode(reference)
            if inode is None:
                raise NotFound(f"{reference} is not a network namespace (a file left behind by "
                               "a removed container or `ip netns`?)")
            return self.known(inode, reference)
        elif reference:
            found = next((t[reference] for t in self.by_field if reference in t), None)
        if found is None:
            raise NotFound(f"no network namespace matches {reference!r} "
                           "(run `netdiag ns list` to see them)")
        return found


# --- creating and deleting named namespaces (labs, drivers) ----------------------------------

MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2


def _mount(source: str, target: str, flags: int) -> None:
    if _libc.mount(source.encode(), target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise CollectError(f"cannot mount {source} on {target}: {os.strerror(err)}")


def _prepare_named_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns add` does, so that namespaces
    created here are visible to `ip netns` in every mount namespace."""
    NAMED_DIR.mkdir(parents=True, exist_ok=True)
    with open("/proc/self/mountinfo") as mounts:
        if any(line.split()[4] == str(NAMED_DIR) for line in mounts):
            return
    _mount(str(NAMED_DIR), str(NAMED_DIR), MS_BIND | MS_REC)
    _mount("none", str(NAMED_DIR), MS_SHARED | MS_REC)


def create_named(name: str) -> str:
    """Create the named namespace /run/netns/NAME in-process (no fork) and return its path.

    The calling thread briefly moves into the new namespace to bind-mount it, then returns.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or name in (".", ".."):
        raise CollectError(f"invalid namespace name {name!r}")
    _prepare_named_dir()
    path = NAMED_DIR / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    except FileExistsError:
        from netdiag.errors import Conflict
        raise Conflict(f"namespace {name} exists already") from None
    os.close(fd)
    home = _open_ns("/proc/thread-self/ns/net")
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            path.unlink()
            if err == errno.EPERM:
                raise PermissionDenied("cannot create a namespace: permission denied (needs root)")
            raise CollectError(f"cannot create a namespace: {os.strerror(err)}")
        try:
            _mount("/proc/thread-self/ns/net", str(path), MS_BIND)
        except CollectError:
            path.unlink()
            raise
        finally:
            _setns(home, "the namespace netdiag started in")
    finally:
        os.close(home)
    return str(path)


def delete_named(name: str) -> None:
    """Remove /run/netns/NAME (idempotent). The kernel frees the namespace — and everything in
    it — once no process lives there and no file keeps it open."""
    path = NAMED_DIR / name
    _libc.umount2(str(path).encode(), MNT_DETACH)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
