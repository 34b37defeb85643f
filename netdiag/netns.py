"""Enter network namespaces, and create and delete named ones: the only module that calls setns.

Entering happens in the calling thread only (setns is per thread), so a pool of worker threads
can each sit in a different namespace while the main thread stays where it was. Netlink sockets
and helper programs opened while a thread is inside a namespace belong to that namespace.
Finding namespaces (discovery) and resolving the references users give is
netdiag/collect/discovery.py's and netdiag/collect/namespace_refs.py's.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from netdiag import capabilities
from netdiag.errors import CollectError, NamespaceGone, PermissionDenied

CLONE_NEWNET = 0x40000000
NAMED_DIR = Path("/run/netns")
LAB_DIR = Path("/run/netdiag/labs")

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
            if os.fstat(target).st_dev != _nsfs_device():
                # Removed since it was found: the plain file Docker or `ip netns del` leaves
                # behind for a while (setns would say EINVAL).
                raise NamespaceGone(f"namespace {path} is gone")
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


def namespace_inode(path: Path | str) -> int | None:
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


PID_INIT_INODE = 0xEFFFFFFC  # the initial pid namespace's inode: fixed by the kernel


def in_initial_pid_namespace() -> bool:
    """Whether this process sees the host's processes (not a container's own pid namespace).
    Where that cannot be told, yes: netdiag then labels as it always did."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino == PID_INIT_INODE
    except OSError:
        return True



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
