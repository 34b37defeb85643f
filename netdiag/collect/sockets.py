"""Collector: sockets (IPv4 and IPv6) and their owners: listening TCP and unconnected UDP ones
(`sockets`), and those with a peer (`connections`: TCP in any other state, connected UDP).

Sockets are read with netlink sock_diag on a socket opened inside the namespace — the same
source `ss -tuna` uses; one dump per protocol and family answers both lists. An IPv6 socket
carries its IPV6_V6ONLY (`ss -l` shows it as `v6only:1` with -e): bound to :: with it set, it
takes no IPv4. Connections are
bounded, since a busy host holds 100k of them: at most CONNECTIONS_KEPT a namespace, the
telling states first (a connection still opening before the established ones); the rest, and
every time-wait socket (no process holds one), are counted per state, not kept.

(psutil cannot be used: from a thread that entered a namespace it still
reads the root namespace's /proc/net files.) The sock_diag answer carries each socket's inode
but not its process; `resolve_owners` finds those afterwards for the whole snapshot with one
scan of /proc/*/fd, and only when some namespace has sockets at all.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace

from netdiag import netlink
from netdiag.model import Connection, NamespaceState, Socket

NAME = "sockets"

SOCK_DIAG_BY_FAMILY = 20
TCP_ESTABLISHED = 1
TCP_TIME_WAIT = 6
TCP_CLOSE = 7
TCP_LISTEN = 10
CONNECTIONS_KEPT = 1000  # a namespace's connections kept in the snapshot; the rest counted

# The kernel's TCP states (include/net/tcp_states.h) named as ss names them, in lower case.
TCP_STATES = {1: "established", 2: "syn-sent", 3: "syn-recv", 4: "fin-wait-1", 5: "fin-wait-2",
              6: "time-wait", 7: "close", 8: "close-wait", 9: "last-ack", 10: "listen",
              11: "closing", 12: "syn-recv"}  # 12: NEW_SYN_RECV, a request not yet accepted
# Which connections the bound keeps first: one still opening tells most, then live ones.
_KEPT_FIRST = {2: 0, 3: 1, 12: 1, 1: 2, 8: 3}

# protocol, IPPROTO number, the kernel state that means "waiting for peers", its ss name, the
# states asked for (every TCP state but close; UDP's unconnected and connected)
_KINDS = (("tcp", socket.IPPROTO_TCP, TCP_LISTEN, "listen", 0x1FFE & ~(1 << TCP_CLOSE)),
          ("udp", socket.IPPROTO_UDP, TCP_CLOSE, "unconn",
           (1 << TCP_CLOSE) | (1 << TCP_ESTABLISHED)))
_FAMILIES = ((4, socket.AF_INET), (6, socket.AF_INET6))

# struct inet_diag_req_v2 with an all-zero inet_diag_sockid (48 bytes): match every socket.
_REQUEST = struct.Struct("=BBBxI48x")
# struct inet_diag_msg up to the fields we use.
_ANSWER_PORT = struct.Struct(">H")
_ANSWER_OWNER = struct.Struct("=II")  # uid, inode
_STATE_OFFSET, _SRC_OFFSET, _DST_OFFSET, _UID_OFFSET = 1, 8, 24, 64
_ATTRS_OFFSET = 72  # the message's attributes follow it
# The attribute the kernel adds to an IPv6 socket that listens or is unconnected, unasked
# (inet_diag_msg_attrs_fill): one byte, its IPV6_V6ONLY.
INET_DIAG_SKV6ONLY = 11
# /proc/net/sockstat{,6} lines whose "inuse" counts a protocol and family's hashed sockets
_SOCKSTAT_KINDS = {"TCP6": "tcp6", "UDP": "udp4", "UDP6": "udp6"}


def collect(ctx) -> dict:
    counts = _sockstat()
    found: list[Socket] = []
    talking: list[tuple[str, int, bytes]] = []  # (protocol, family, answer) of connections
    for protocol, ipproto, waiting, waiting_name, states in _KINDS:
        for family, af in _FAMILIES:
            def dump(request: int, af=af, ipproto=ipproto, what=f"{protocol}/IPv{family}"):
                return [body for _kind, body in netlink.dump(
                    netlink.NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY,
                    _REQUEST.pack(af, ipproto, 0, request), f"{what} sockets", ctx)]

            if counts is not None and not counts[f"{protocol}{family}"]:
                answers = []  # none in use: no dump (each walks a table of the whole host)
            elif protocol == "udp" or counts is None:
                answers = dump(states)
            else:  # the listeners, then the rest only if some socket in use is not one
                answers = dump(1 << TCP_LISTEN)
                if counts[f"tcp{family}"] > len(answers):
                    answers += dump(states & ~(1 << TCP_LISTEN | 1 << TCP_TIME_WAIT))
            for body in answers:
                if body[_STATE_OFFSET] == waiting:
                    found.append(parse_answer(body, protocol, family, waiting_name))
                else:
                    talking.append((protocol, family, body))
    found.sort(key=lambda s: (s.protocol, s.family, s.port, s.address))
    kept, omitted = bounded(talking, time_wait=counts["tw"] if counts is not None else 0)
    return {"sockets": tuple(found), "connections": kept, "connections_omitted": omitted}


def _sockstat() -> dict[str, int] | None:
    """The namespace's TCP and UDP sockets in use per family ("tcp4", "udp6"...) and TCP's in
    time-wait ("tw"), from the calling thread's /proc/net/sockstat{,6} (None when unreadable).

    Why: asking sock_diag for TCP sockets in any state but listen walks the kernel's one
    established hash table of the whole host (2-3 ms a dump here, against 35 µs for the
    listeners), namespace after namespace. Where every socket in use is a listener there is
    nothing to find, so that walk is skipped. A connection not yet accepted (syn-recv) is a
    request, not a socket in use: behind a listener alone it goes unlisted. Where a protocol
    and family has no socket in use at all (most namespaces have none, containers no IPv6
    ones), its dumps are skipped too: each walks a whole-host hash table (60-80 µs).
    """
    counts: dict[str, int] = {}
    try:
        for name in ("sockstat", "sockstat6"):
            with open(f"/proc/thread-self/net/{name}") as f:
                for line in f:
                    kind, _, fields = line.partition(":")
                    values = fields.split()
                    pairs = dict(zip(values[::2], values[1::2], strict=False))
                    if kind == "TCP":
                        counts["tcp4"], counts["tw"] = int(pairs["inuse"]), int(pairs["tw"])
                    elif kind in _SOCKSTAT_KINDS:
                        counts[_SOCKSTAT_KINDS[kind]] = int(pairs["inuse"])
    except (OSError, KeyError, ValueError):
        return None
    return counts if len(counts) == 5 else None


def bounded(talking: Sequence[tuple[str, int, bytes]], limit: int = CONNECTIONS_KEPT,
            time_wait: int = 0) -> tuple[tuple[Connection, ...], tuple[tuple[str, int], ...]]:
    """The connections kept (at most `limit`, the telling states first, time-wait never) and
    how many of each state were only counted (`time_wait`: those counted by the kernel, not
    asked for). Only the kept answers are parsed: counting the others reads one byte each."""
    candidates, counted_only = [], []
    for answer in talking:
        (counted_only if answer[2][_STATE_OFFSET] == TCP_TIME_WAIT else candidates).append(answer)
    candidates.sort(key=lambda t: _KEPT_FIRST.get(t[2][_STATE_OFFSET], 4))
    counted_only += candidates[limit:]
    kept = sorted((parse_connection(body, protocol, family)
                   for protocol, family, body in candidates[:limit]),
                  key=lambda c: (c.protocol, c.family, c.port, c.address, c.peer, c.peer_port))
    left = Counter(_state_name(protocol, body[_STATE_OFFSET])
                   for protocol, _family, body in counted_only)
    if time_wait:
        left["time-wait"] += time_wait
    return tuple(kept), tuple(sorted(left.items()))


def _state_name(protocol: str, state: int) -> str:
    if protocol == "udp":
        return "connected"
    return TCP_STATES.get(state, str(state))


def parse_connection(body: bytes, protocol: str, family: int) -> Connection:
    """One inet_diag_msg of a socket with a peer → Connection (without owner)."""
    size, af = (4, socket.AF_INET) if family == 4 else (16, socket.AF_INET6)
    port, peer_port = struct.unpack_from(">HH", body, 4)
    uid, inode = _ANSWER_OWNER.unpack_from(body, _UID_OFFSET)
    # inet_ntop, as ss: a dual-stack socket's peer is ::ffff:10.0.0.1 (ipaddress before
    # Python 3.13 writes ::ffff:a00:1)
    return Connection(protocol=protocol, family=family,
                      address=socket.inet_ntop(af, body[_SRC_OFFSET:_SRC_OFFSET + size]),
                      port=port,
                      peer=socket.inet_ntop(af, body[_DST_OFFSET:_DST_OFFSET + size]),
                      peer_port=peer_port, state=_state_name(protocol, body[_STATE_OFFSET]),
                      inode=inode, uid=uid)


def parse_answer(body: bytes, protocol: str, family: int, state: str) -> Socket:
    """One inet_diag_msg → Socket (without owner)."""
    (port,) = _ANSWER_PORT.unpack_from(body, 4)
    raw = body[_SRC_OFFSET:_SRC_OFFSET + (4 if family == 4 else 16)]
    uid, inode = _ANSWER_OWNER.unpack_from(body, _UID_OFFSET)
    v6only = family == 6 and \
        netlink.attributes(body, _ATTRS_OFFSET).get(INET_DIAG_SKV6ONLY) == b"\1"
    return Socket(protocol=protocol, family=family, address=str(ipaddress.ip_address(raw)),
                  port=port, state=state, inode=inode, uid=uid, v6only=v6only)


def resolve_owners(states: Sequence[NamespaceState], proc: str = "/proc",
                   first: Iterable[int] = ()) -> list[NamespaceState]:
    """Fill in pid and process name of every socket and connection in `states` (one scan of
    /proc/*/fd). The processes `first` (the container engines) are looked at before the
    others: dockerd holds the embedded DNS's two sockets in every container of a user
    network, and on a host of 1000 containers, with its thousands of descriptors read first,
    the scan ends there instead of after every container's shim and process."""
    wanted = {s.inode for ns in states for s in (*ns.sockets, *ns.connections) if s.inode}
    if not wanted:
        return list(states)
    owners = _socket_owners(wanted, proc, tuple(first))
    result = []
    for ns in states:
        if any(s.inode in owners for s in (*ns.sockets, *ns.connections)):
            ns = replace(ns, sockets=tuple(_with_owner(s, owners) for s in ns.sockets),
                         connections=tuple(_with_owner(c, owners) for c in ns.connections))
        result.append(ns)
    return result


def _with_owner(sock: Socket | Connection,
                owners: dict[int, tuple[int, str]]) -> Socket | Connection:
    if sock.inode not in owners:
        return sock
    pid, process = owners[sock.inode]
    return replace(sock, pid=pid, process=process)


def _socket_owners(wanted: set[int], proc: str, first: tuple[int, ...] = ()
                   ) -> dict[int, tuple[int, str]]:
    """inode → (pid holding it, its name), for the inodes in `wanted`: a process of `first`
    that holds it, else the lowest pid that does."""
    owners: dict[int, tuple[int, str]] = {}
    ahead = set(first)
    for pid in (*first, *sorted(pid for pid in _pids(proc) if pid not in ahead)):
        name = None  # read once per process: dockerd holds 2 sockets in each container
        for inode in _socket_inodes(f"{proc}/{pid}/fd"):
            if inode in wanted and inode not in owners:
                if name is None:
                    name = _comm(proc, pid)
                owners[inode] = (pid, name)
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
