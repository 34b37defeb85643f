"""The netlink collectors' rtnetlink dumps (links, addresses, routes, ...) and the decoders of
the few attributes each uses.

A dump goes over the namespace's one NETLINK_ROUTE socket of the netlink core
(netdiag/netlink.py, which says why it is not pyroute2): the answer comes back split into
messages whose attributes are raw bytes, for the collector to decode the few it uses with the
small helpers below.
"""

from __future__ import annotations

import socket
import struct

from netdiag import netlink
from netdiag.netlink import Message, NetlinkError, cstring
from netdiag.netlink import attributes as parse_attrs

RTM_GETLINK = 18
RTM_GETADDR = 22
RTM_GETROUTE = 26
RTM_GETNEIGH = 30
RTM_GETRULE = 34

U16 = struct.Struct("=H")
U32 = struct.Struct("=I")
S32 = struct.Struct("=i")
BE16 = struct.Struct("!H")


def dump(ctx, msg_type: int, header: bytes, header_size: int, attrs: bytes = b"") -> list[Message]:
    """Every message of a dump of `msg_type` on the namespace's NETLINK_ROUTE socket.

    `header` is the request's family header; `header_size` the size of the family header
    in the answer's messages (where the attributes start). A dump the kernel marks as
    interrupted (the table changed meanwhile) is asked for again, a few times at most.
    """
    try:
        return netlink.socket_of(ctx, netlink.NETLINK_ROUTE).dump(msg_type, header + attrs,
                                                                  header_size)
    except NetlinkError as exc:
        raise netlink.translated(exc.code, f"netlink request {msg_type}", exc,
                                 netlink.ROUTE_DUMP_ERRORS) from None


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
    return cstring(value) if value else ""


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
