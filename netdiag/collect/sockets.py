"""Collector: listening TCP and unconnected UDP sockets (IPv4 and IPv6), and their owners.

Sockets are read with netlink sock_diag on a socket opened inside the namespace — the same
source `ss -ltun` uses. (psutil cannot be used: from a thread that entered a namespace it still
reads the root namespace's /proc/net files.) The sock_diag answer carries each socket's inode
but not its process; `resolve_owners` finds those afterwards for the whole snapshot with one
scan of /proc/*/fd, and only when some namespace has sockets at all.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import replace

from netdiag import netlink
from netdiag.model import NamespaceState, Socket

NAME = "sockets"

SOCK_DIAG_BY_FAMILY = 20
TCP_CLOSE = 7
TCP_LISTEN = 10

# protocol, IPPROTO number, the kernel state that means "waiting for peers", its ss name
_KINDS = (("tcp", socket.IPPROTO_TCP, TCP_LISTEN, "listen"),
          ("udp", socket.IPPROTO_UDP, TCP_CLOSE, "unconn"))
_FAMILIES = ((4, socket.AF_INET), (6, socket.AF_INET6))

# struct inet_diag_req_v2 with an all-zero inet_diag_sockid (48 bytes): match every socket.
_REQUEST = struct.Struct("=BBBxI48x")
# struct inet_diag_msg up to the fields we use.
_ANSWER_PORT = struct.Struct(">H")
_ANSWER_OWNER = struct.Struct("=II")  # uid, inode
_SRC_OFFSET, _UID_OFFSET = 8, 64


def collect(ctx) -> dict:
    found: list[Socket] = []
    for protocol, ipproto, state, state_name in _KINDS:
        for family, af in _FAMILIES:
            answers = netlink.dump(netlink.NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY,
                                   _REQUEST.pack(af, ipproto, 0, 1 << state),
                                   f"{protocol}/IPv{family} sockets", ctx)
            found.extend(parse_answer(body, protocol, family, state_name)
                         for _kind, body in answers)
    found.sort(key=lambda s: (s.protocol, s.family, s.port, s.address))
    return {"sockets": tuple(found)}


def parse_answer(body: bytes, protocol: str, family: int, state: str) -> Socket:
    """One inet_diag_msg → Socket (without owner)."""
    (port,) = _ANSWER_PORT.unpack_from(body, 4)
    raw = body[_SRC_OFFSET:_SRC_OFFSET + (4 if family == 4 else 16)]
    uid, inode = _ANSWER_OWNER.unpack_from(body, _UID_OFFSET)
    return Socket(protocol=protocol, family=family, address=str(ipaddress.ip_address(raw)),
                  port=port, state=state, inode=inode, uid=uid)


def resolve_owners(states: Sequence[NamespaceState],
                   proc: str = "/proc") -> list[NamespaceState]:
    """Fill in pid and process name of every socket in `states` (one scan of /proc/*/fd)."""
    wanted = {s.inode for ns in states for s in ns.sockets if s.inode}
    if not wanted:
        return list(states)
    owners = _socket_owners(wanted, proc)
    result = []
    for ns in states:
        if any(s.inode in owners for s in ns.sockets):
            ns = replace(ns, sockets=tuple(_with_owner(s, owners) for s in ns.sockets))
        result.append(ns)
    return result


def _with_owner(sock: Socket, owners: dict[int, tuple[int, str]]) -> Socket:
    if sock.inode not in owners:
        return sock
    pid, process = owners[sock.inode]
    return replace(sock, pid=pid, process=process)


def _socket_owners(wanted: set[int], proc: str) -> dict[int, tuple[int, str]]:
    """inode → (lowest pid holding it, its name), for the inodes in `wanted`."""
    owners: dict[int, tuple[int, str]] = {}
    for pid in sorted(_pids(proc)):
        for inode in _socket_inodes(f"{proc}/{pid}/fd"):
            if inode in wanted and inode not in owners:
                owners[inode] = (pid, _comm(proc, pid))
        if len(owners) == len(wanted):
            break
    return owners


def _pids(proc: str) -> Iterable[int]:
    return (int(entry.name) for entry in os.scandir(proc) if entry.name.isdigit())


def _socket_inodes(fd_dir: str) -> Iterable[int]:
    try:
        names = os.listdir(fd_dir)
    except OSError:  # the process ended, or is not ours to look at
        return
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            yield int(target[8:-1])


def _comm(proc: str, pid: int) -> str:
    try:
        with open(f"{proc}/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
