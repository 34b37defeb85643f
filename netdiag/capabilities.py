"""Which Linux capability an action needs, and what to say when it is missing.

netdiag run as root on a host has every capability; run in a container (`docker run --net
container:X`, `kubectl debug`) it is root with a few: entering another namespace (setns) needs
CAP_SYS_ADMIN, reading the firewall, xfrm and conntrack needs CAP_NET_ADMIN, raw sockets (ping
probes, traces) CAP_NET_RAW, and reading other processes' namespaces and files
CAP_SYS_PTRACE. `refused` turns a permission error into an error that says which one is
missing ("needs root" only when netdiag is not root at all) and carries its name, so that a
report can say once, not on every gap, how to grant it (`advice`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from netdiag.errors import PermissionDenied

BITS = {"NET_ADMIN": 12, "NET_RAW": 13, "SYS_PTRACE": 19, "SYS_ADMIN": 21}
GRANT = {  # how people give a container the capability
    "NET_ADMIN": "docker run --cap-add NET_ADMIN, or kubectl debug --profile=netadmin",
    "NET_RAW": "docker run --cap-add NET_RAW, or kubectl debug --profile=netadmin",
    "SYS_PTRACE": "docker run --cap-add SYS_PTRACE, or kubectl debug --profile=sysadmin",
    "SYS_ADMIN": "docker run --cap-add SYS_ADMIN (or --privileged), or kubectl debug "
                 "--profile=sysadmin",
}


def effective(status_path: str = "/proc/self/status") -> int:
    """This process's effective capability set (CapEff), as bits; all of them if unknown."""
    try:
        with open(status_path) as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return -1


def has(capability: str) -> bool:
    return bool(effective() >> BITS[capability] & 1)


def missing(capability: str) -> str:
    """`capability` if netdiag is root without it (a container), else "" (not root at all:
    then root is what is missing, or it has it: then something else refused)."""
    return capability if os.geteuid() == 0 and not has(capability) else ""


def lacking(capability: str) -> str:
    """What this process would need to do what needs `capability`: "" (nothing: it has it),
    "CAP_NET_ADMIN" (root in a container without it) or "root"."""
    if has(capability):
        return ""
    return f"CAP_{capability}" if os.geteuid() == 0 else "root"


def denied(capability: str) -> str:
    """Why a permission error happened, for a message: "permission denied (netdiag needs
    root)", or "permission denied: netdiag runs as root without CAP_NET_ADMIN"."""
    if os.geteuid() != 0:
        return "permission denied (netdiag needs root)"
    if not has(capability):
        return f"permission denied: netdiag runs as root without CAP_{capability}"
    return (f"permission denied although netdiag is root with CAP_{capability} (a security "
            "module, or a user namespace that does not own the namespace?)")


def refused(subject: str, capability: str) -> PermissionDenied:
    """The error for "the kernel refused `subject`" ("cannot enter host"), which needed
    `capability`."""
    return PermissionDenied(f"{subject}: {denied(capability)}", missing(capability))


def advice(needed: Iterable[str]) -> list[str]:
    """How to grant each capability netdiag ran without, once each, in the order given:
    "netdiag ran as root without CAP_NET_ADMIN: grant it with docker run ...". Unknown or
    empty names are skipped."""
    said = dict.fromkeys(name for name in needed if name in GRANT)
    return [f"netdiag ran as root without CAP_{name}: grant it with {GRANT[name]}"
            for name in said]
