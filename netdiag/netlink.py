"""netdiag's one netlink client: plain sockets, one request at a time, attributes left raw.

Everything in netdiag that talks netlink itself goes through here: the collectors' rtnetlink
dumps (collect/rtnl.py), their cheap questions to other protocols — "any nftables tables?",
"which sockets listen?", "any xfrm states?", "how full is conntrack?" (`dump` and `request`
below) — and the bridge driver's write requests (netdiag/rtnl_write.py). A `NetlinkSocket` is opened
in the namespace the calling thread is in (netns.entered first); each request gets its own
sequence number, and answers to any other (an earlier request abandoned halfway) are skipped.
A dump is read up to NLMSG_DONE and asked for again when the kernel marks it interrupted (the
table changed meanwhile); a plain request is read up to the kernel's ACK. An NLMSG_ERROR is
raised as NetlinkError (the errno in `code`), which `translated` turns into the project's
kinds (netdiag/errors.py). Attributes are split into a dict (type → raw payload) and packed
with `pack_attr`; the caller decodes only the few it uses.

Why not pyroute2: it spends about 1 ms of Python per request (an asyncio loop turn, and a
generic encoder and decoder that build an object per attribute) and 0.3 ms to open a socket,
more than the kernel takes; a plain socket answers a small dump in about 0.02 ms. With it a
snapshot of 1000 namespaces took 6-10 s, and each endpoint a driver joins paid milliseconds.
So nothing here is made per attribute and nothing runs in an event loop; anything richer (IPVS
over generic netlink) stays with pyroute2 or a helper program.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass

from netdiag import capabilities
from netdiag.errors import CollectError, KernelFeatureMissing, NetdiagError, PermissionDenied

NETLINK_ROUTE = 0
NETLINK_SOCK_DIAG = 4
NETLINK_XFRM = 6
NETLINK_NETFILTER = 12

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10  # the table changed during the dump: the answer may be inconsistent
NLM_F_EXCL = 0x200
NLM_F_DUMP = 0x300
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
DUMP_ATTEMPTS = 3

NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
ATTR_HEADER = struct.Struct("=HH")  # length, type
ERRNO = struct.Struct("=i")
RECEIVE_BUFFER = 1 << 16


def align(length: int) -> int:
    """Messages and attributes start on 4-byte boundaries (inlined in the two reading loops)."""
    return (length + 3) & ~3


@dataclass(frozen=True, slots=True)
class Message:
    """One answer message: its type, its fixed family header and its raw attributes."""

    type: int
    header: bytes  # the family header (ifinfomsg, rtmsg, ndmsg...)
    attrs: dict[int, bytes]


class NetlinkError(Exception):
    """The kernel refused a request (NLMSG_ERROR), or its answer ended early: `code` is the
    errno, the message its text."""

    def __init__(self, code: int, message: str | None = None):
        super().__init__(message or os.strerror(code))
        self.code = code


class NetlinkSocket:
    """A netlink socket of `protocol` in the namespace the calling thread is in when it is made."""

    def __init__(self, protocol: int) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   protocol)
        self._sock.bind((0, 0))
        self._sequence = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NetlinkSocket:
        return self

    def __exit__(self, *exc) -> None:
        self._sock.close()

    def dump(self, msg_type: int, body: bytes, header_size: int | None = None,
             attempts: int = DUMP_ATTEMPTS) -> list:
        """Send a dump request of `msg_type` and return every message of the answer.

        With `header_size` (the size of the family header the answer's messages start with),
        each message is a Message; without, a (message type, body after the netlink header)
        pair. A dump the kernel marks as interrupted is asked for again, `attempts` in all.
        """
        for _ in range(attempts - 1):
            answers, interrupted = self._exchange(msg_type, NLM_F_REQUEST | NLM_F_DUMP, body,
                                                  header_size)
            if not interrupted:
                return answers
        return self._exchange(msg_type, NLM_F_REQUEST | NLM_F_DUMP, body, header_size)[0]

    def request(self, msg_type: int, body: bytes, flags: int = 0) -> list[tuple[int, bytes]]:
        """Send a plain request asking for an ACK; return its answers (type, body) before it."""
        return self._exchange(msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, body, None)[0]

    def _exchange(self, msg_type: int, flags: int, body: bytes,
                  header_size: int | None) -> tuple[list, bool]:
        self._sequence = sequence = (self._sequence + 1) & 0xFFFFFFFF
        sock = self._sock
        sock.send(NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), msg_type, flags, sequence, 0)
                  + body)
        answers: list = []
        interrupted = False
        unpack = NLMSG_HEADER.unpack_from
        while True:
            data = sock.recv(RECEIVE_BUFFER)
            if not data:
                raise NetlinkError(errno.EPROTO, "netlink answer ended early")
            offset = 0
            while offset + 16 <= len(data):  # 16: the netlink header
                length, kind, answer_flags, answered, _ = unpack(data, offset)
                if length < 16:
                    raise CollectError("malformed netlink answer")
                start, end = offset + 16, offset + length
                offset += (length + 3) & ~3
                if answered != sequence:
                    continue  # the rest of an earlier request's answer
                interrupted = interrupted or bool(answer_flags & NLM_F_DUMP_INTR)
                if kind == NLMSG_DONE:
                    return answers, interrupted
                if kind == NLMSG_ERROR:
                    code = ERRNO.unpack_from(data, start)[0]
                    if code:
                        raise NetlinkError(-code)
                    return answers, interrupted  # the ACK that ends a plain request
                if header_size is None:
                    answers.append((kind, data[start:end]))
                else:
                    answers.append(Message(kind, data[start:start + header_size],
                                           attributes(data, start + header_size, end)))


# --- errors: errno → (netdiag's kind, text in place of the errno's); others: CollectError

NEEDS_NET_ADMIN = "NET_ADMIN"  # in place of a text: said by capabilities.denied at the time
READ_ERRORS = {  # the collectors' questions below: "cannot read nftables tables: ..."
    errno.EPERM: (PermissionDenied, NEEDS_NET_ADMIN),
    errno.EACCES: (PermissionDenied, NEEDS_NET_ADMIN),
    errno.EPROTONOSUPPORT: (KernelFeatureMissing, "the kernel lacks it"),
    errno.EAFNOSUPPORT: (KernelFeatureMissing, "the kernel lacks it"),
}
ROUTE_DUMP_ERRORS = {  # collect/rtnl.py's dumps: "netlink request 18: ..."
    errno.EPERM: (PermissionDenied, "permission denied"),
}


def translated(code: int | None, subject: str, detail: object,
               kinds: dict = READ_ERRORS) -> NetdiagError:
    """The project's error for errno `code` from `subject` ("cannot read xfrm states");
    `detail` (the errno's text) is said when `kinds` has no text of its own for it."""
    kind, text = kinds.get(code, (CollectError, detail))
    if text == NEEDS_NET_ADMIN:
        return capabilities.refused(subject, "NET_ADMIN")
    return kind(f"{subject}: {text}")


# --- the collectors' questions to any protocol ------------------------------------------------


def socket_of(ctx, protocol: int) -> NetlinkSocket:
    """The namespace's one socket of `protocol`, opened on first use and closed with ctx."""
    return ctx.socket(f"netlink-{protocol}", lambda: NetlinkSocket(protocol))


def dump(protocol: int, msg_type: int, payload: bytes, what: str,
         ctx=None) -> list[tuple[int, bytes]]:
    """Send one dump request; return each answer as (message type, body after the header).

    `what` names the request in errors ("nftables tables"); kernel errors become netdiag
    errors: EPERM → PermissionDenied, a missing protocol → KernelFeatureMissing. With `ctx`,
    the namespace's socket for `protocol` is used (opened on first use), else a new one.
    An interrupted dump is not asked for again: the caller gets the answer as it came.
    """
    return _read(protocol, what, ctx, lambda sock: sock.dump(msg_type, payload, attempts=1))


def request(protocol: int, msg_type: int, payload: bytes, what: str,
            ctx=None) -> list[tuple[int, bytes]]:
    """Like `dump`, for a plain (non-dump) request: its answers up to the kernel's ACK."""
    return _read(protocol, what, ctx, lambda sock: sock.request(msg_type, payload))


def _read(protocol: int, what: str, ctx, ask) -> list[tuple[int, bytes]]:
    try:
        if ctx is None:
            with NetlinkSocket(protocol) as sock:
                return ask(sock)
        return ask(socket_of(ctx, protocol))
    except NetlinkError as exc:
        raise translated(exc.code, f"cannot read {what}", exc) from None
    except OSError as exc:
        raise translated(exc.errno, f"cannot read {what}", exc.strerror or exc) from None


# --- attributes -------------------------------------------------------------------------------


def attributes(data: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    """Netlink attributes (type → payload) between offset and end, by type with the nested and
    byte-order flags stripped; the last of a type wins."""
    end = len(data) if end is None else end
    found: dict[int, bytes] = {}
    unpack = ATTR_HEADER.unpack_from  # the hot loop of every reader: no lookups, no calls
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4:
            break
        found[kind & NLA_TYPE_MASK] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def cstring(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace")


def pack_attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    data = ATTR_HEADER.pack(ATTR_HEADER.size + len(payload), kind) + payload
    return data + b"\0" * (align(len(data)) - len(data))


def pack_nested(kind: int, *attrs: bytes) -> bytes:
    return pack_attr(kind | NLA_F_NESTED, b"".join(attrs))
