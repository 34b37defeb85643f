"""A lean rtnetlink dump reader for the netlink collectors (links, addresses, routes, ...).

pyroute2's IPRoute costs about 1 ms per request on this machine (an asyncio loop turn per
call and a generic decoder that builds every attribute), which alone made a snapshot of 1000
namespaces take 6-10 s. The collectors need only dumps and a few attributes each, so this
module sends a dump request on a plain NETLINK_ROUTE socket (opened in the calling thread's
namespace), splits the answer into messages, and leaves each message's attributes as raw
bytes for the collector to decode the few it uses with the small helpers below.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass

from netdiag.errors import CollectError, PermissionDenied

NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLM_F_DUMP_INTR = 0x10  # the table changed during the dump: the answer may be inconsistent
DUMP_ATTEMPTS = 3
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
ATTR_HEADER = struct.Struct("=HH")
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
RECEIVE_BUFFER = 1 << 16

RTM_GETLINK = 18
RTM_GETADDR = 22
RTM_GETROUTE = 26
RTM_GETNEIGH = 30
RTM_GETRULE = 34

U8 = struct.Struct("=B")
U16 = struct.Struct("=H")
U32 = struct.Struct("=I")
S32 = struct.Struct("=i")
BE16 = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class Message:
    """One answer message: its type, its fixed family header and its raw attributes."""

    type: int
    header: bytes  # the family header (ifinfomsg, rtmsg, ndmsg...)
    attrs: dict[int, bytes]


def dump(ctx, msg_type: int, header: bytes, header_size: int, attrs: bytes = b"") -> list[Message]:
    """Rtnl.dump on the namespace's one Rtnl socket, opened on first use and closed with ctx."""
    return ctx.socket("rtnl", Rtnl).dump(msg_type, header, header_size, attrs)


class Rtnl:
    """A NETLINK_ROUTE socket of the namespace the calling thread is in when it is made."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._sequence = 0

    def close(self) -> None:
        self._sock.close()

    def dump(self, msg_type: int, header: bytes, header_size: int,
             attrs: bytes = b"") -> list[Message]:
        """Send a dump request of `msg_type` and return every message of the answer.

        `header` is the request's family header; `header_size` the size of the family header
        in the answer's messages (where the attributes start). A dump the kernel marks as
        interrupted (the table changed meanwhile) is asked for again, a few times at most.
        """
        for _ in range(DUMP_ATTEMPTS - 1):
            messages, interrupted = self._dump_once(msg_type, header + attrs, header_size)
            if not interrupted:
                return messages
        return self._dump_once(msg_type, header + attrs, header_size)[0]

    def _dump_once(self, msg_type: int, body: bytes,
                   header_size: int) -> tuple[list[Message], bool]:
        self._sequence += 1
        request = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), msg_type,
                                    NLM_F_REQUEST | NLM_F_DUMP, self._sequence, 0) + body
        self._sock.send(request)
        messages: list[Message] = []
        interrupted = False
        while True:
            data = self._sock.recv(RECEIVE_BUFFER)
            offset = 0
            while offset + NLMSG_HEADER.size <= len(data):
                length, kind, flags, sequence, _ = NLMSG_HEADER.unpack_from(data, offset)
                if length < NLMSG_HEADER.size:
                    raise CollectError("malformed netlink answer")
                start, offset = offset + NLMSG_HEADER.size, offset + _align(length)
                if sequence != self._sequence:
                    continue  # an answer to an earlier request that was abandoned
                interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
                if kind == NLMSG_DONE:
                    return messages, interrupted
                if kind == NLMSG_ERROR:
                    _raise_error(S32.unpack_from(data, start)[0], msg_type)
                    continue
                end = start - NLMSG_HEADER.size + length
                messages.append(Message(kind, data[start:start + header_size],
                                        parse_attrs(data, start + header_size, end)))


def _raise_error(code: int, msg_type: int) -> None:
    if code == 0:
        return
    err = -code
    if err == errno.EPERM:
        raise PermissionDenied(f"netlink request {msg_type}: permission denied")
    raise CollectError(f"netlink request {msg_type}: {os.strerror(err)}")


def _align(length: int) -> int:
    return (length + 3) & ~3


def parse_attrs(data: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """Netlink attributes (type → payload) between offset and end; the last of a type wins."""
    end = len(data) if end is None else end
    attrs: dict[int, bytes] = {}
    while offset + ATTR_HEADER.size <= end:
        length, kind = ATTR_HEADER.unpack_from(data, offset)
        if length < ATTR_HEADER.size:
            break
        attrs[kind & NLA_TYPE_MASK] = data[offset + ATTR_HEADER.size:offset + length]
        offset += _align(length)
    return attrs


# --- decoding attribute payloads ------------------------------------------------------------


def u8(attrs: dict[int, bytes], kind: int, default: int = 0) -> int:
    value = attrs.get(kind)
    return value[0] if value else default


def u16(attrs: dict[int, bytes], kind: int, default: int = 0) -> int:
    value = attrs.get(kind)
    return U16.unpack_from(value)[0] if value else default


def be16(attrs: dict[int, bytes], kind: int, default: int = 0) -> int:
    value = attrs.get(kind)
    return BE16.unpack_from(value)[0] if value else default


def u32(attrs: dict[int, bytes], kind: int, default: int = 0) -> int:
    value = attrs.get(kind)
    return U32.unpack_from(value)[0] if value else default


def s32(attrs: dict[int, bytes], kind: int) -> int | None:
    value = attrs.get(kind)
    return S32.unpack_from(value)[0] if value else None


def string(attrs: dict[int, bytes], kind: int) -> str:
    value = attrs.get(kind)
    return value.split(b"\0", 1)[0].decode(errors="replace") if value else ""


def ip(attrs: dict[int, bytes], kind: int) -> str:
    return ip_text(attrs.get(kind, b""))


def ip_text(value: bytes) -> str:
    if len(value) == 4:
        return socket.inet_ntop(socket.AF_INET, value)
    if len(value) == 16:
        return socket.inet_ntop(socket.AF_INET6, value)
    return ""


def mac(attrs: dict[int, bytes], kind: int) -> str:
    value = attrs.get(kind)
    return value.hex(":") if value else ""


def nested(attrs: dict[int, bytes], kind: int) -> dict[int, bytes]:
    value = attrs.get(kind)
    return parse_attrs(value) if value else {}
