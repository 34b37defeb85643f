"""Which Linux capability an action needs, and what to say when it is missing.

netdiag run as root on a host has every capability; run in a container (`docker run --net
container:X`, `kubectl debug`) it is root with a few: entering another namespace (setns) needs
CAP_SYS_ADMIN, reading the firewall, xfrm and conntrack needs CAP_NET_ADMIN, raw sockets (ping
probes, traces) CAP_NET_RAW, and reading other processes' namespaces and files
CAP_SYS_PTRACE. `denied` turns a permission error into the one line that says which is
missing and how to grant it — "needs root" only when netdiag is not root at all.
"""

from __future__ import annotations

import os

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


def denied(capability: str) -> str:
    """Why a permission error happened, for a message: "permission denied (netdiag needs
    root)", or "permission denied: netdiag runs as root without CAP_NET_ADMIN (grant it:
    docker run --cap-add NET_ADMIN, ...)"."""
    if os.geteuid() != 0:
        return "permission denied (netdiag needs root)"
    if not has(capability):
        return (f"permission denied: netdiag runs as root without CAP_{capability} (grant "
                f"it: {GRANT[capability]})")
    return (f"permission denied although netdiag is root with CAP_{capability} (a security "
            "module, or a user namespace that does not own the namespace?)")
