"""What the drivers share: where they may build.

Every driver operation names a namespace by path or /run/netns name; `namespace_path` turns it
into a path and refuses the machine's root namespace and netdiag's own, so no driver or lab
call can ever build there — except in the one namespace a plugin was started to serve (a real
host's engine runs in the root namespace: `Controller(store, serving=...)` names it).
"""

from __future__ import annotations

import os

from netdiag.errors import NotFound, PermissionDenied, UsageError

# The machine's own namespace (kernel threads live there even when pid 1 is hidden from us).
ROOT_NS_PATHS = ("/proc/1/ns/net", "/proc/2/ns/net")


def _protected_inodes() -> set[int]:
    """The root namespace and netdiag's own: drivers never build there."""
    found = set()
    for path in ROOT_NS_PATHS + ("/proc/self/ns/net",):
        try:
            found.add(os.stat(path).st_ino)
        except OSError:
            continue
    return found


def namespace_path(ref: str, serving: str = "") -> str:
    """A namespace path from a path or a /run/netns name; never the root namespace or
    netdiag's own, unless it is the namespace `serving` (the engine a plugin serves)."""
    path = _path(ref)
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        raise NotFound(f"network namespace {ref} not found") from None
    except PermissionError:
        raise PermissionDenied(f"cannot open namespace {ref}: permission denied") from None
    if inode in _protected_inodes() and not (serving and _inode(_path(serving)) == inode):
        raise UsageError(f"{ref} is the root network namespace (or netdiag's own): the drivers "
                         "only build inside namespaces you name")
    return path


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _path(ref: str) -> str:
    return ref if ref.startswith("/") else f"/run/netns/{ref}"
