"""Collector: routes of every table, IPv4 and IPv6 (RTM_GETROUTE dump) → Route records.

Also holds the kernel's route-type, scope and protocol numbers as the names iproute2 prints,
which the address collector shares.
"""

from __future__ import annotations

import struct
from socket import AF_INET, AF_INET6, AF_UNSPEC

from netdiag.collect import rtnl
from netdiag.collect.links import names_by_index
from netdiag.model import Route

NAME = "routes"

RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope,
#                                      type, flags
RTNEXTHOP = struct.Struct("=HBBi")  # length, flags, hops, ifindex

RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC = 1, 4, 5, 6, 7
RTA_METRICS, RTA_MULTIPATH, RTA_TABLE, RTA_VIA = 8, 9, 15, 18
RTAX_MTU = 2

# RT_SCOPE_* (linux/rtnetlink.h), named as iproute2 names them.
SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}

# RTN_*
ROUTE_TYPES = {0: "unspec", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast",
               5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw",
               10: "nat", 11: "xresolve"}

# RTPROT_* and the daemons' numbers from iproute2's rt_protos file.
PROTOCOLS = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated",
             9: "ra", 10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp",
             15: "ntk", 16: "dhcp", 18: "keepalived", 42: "babel", 99: "openr", 186: "bgp",
             187: "isis", 188: "ospf", 189: "rip", 192: "eigrp"}


def collect(ctx) -> dict:
    names = names_by_index(ctx)
    # AF_UNSPEC dumps every family and every table; multicast routing families are dropped.
    request = RTMSG.pack(AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)
    messages = rtnl.dump(ctx, rtnl.RTM_GETROUTE, request, RTMSG.size)
    routes = (_route(m, names) for m in messages)
    return {"routes": tuple(r for r in routes if r is not None)}


def _route(msg: rtnl.Message, names: dict[int, str]) -> Route | None:
    family, dst_len, _, _, table, protocol, scope, kind, _ = RTMSG.unpack(msg.header)
    if family not in (AF_INET, AF_INET6):
        return None
    attrs = msg.attrs
    dst = rtnl.ip(attrs, RTA_DST)
    return Route(
        family=4 if family == AF_INET else 6,
        dst=f"{dst}/{dst_len}" if dst else "default",
        # RTA_TABLE carries the full 32-bit table id; the header field only its low byte.
        table=rtnl.u32(attrs, RTA_TABLE, table),
        type=ROUTE_TYPES.get(kind, str(kind)),
        protocol=PROTOCOLS.get(protocol, str(protocol)),
        scope=SCOPES.get(scope, str(scope)),
        dev=names.get(rtnl.u32(attrs, RTA_OIF), ""),
        gateway=_gateway(attrs),
        prefsrc=rtnl.ip(attrs, RTA_PREFSRC),
        metric=rtnl.u32(attrs, RTA_PRIORITY),
        mtu=rtnl.u32(rtnl.nested(attrs, RTA_METRICS), RTAX_MTU),
        nexthops=_nexthops(attrs.get(RTA_MULTIPATH, b""), names),
    )


def _gateway(attrs: dict[int, bytes]) -> str:
    via = attrs.get(RTA_VIA)  # an IPv4 route with an IPv6 next hop: family (u16) + address
    if via:
        return rtnl.ip_text(via[2:])
    return rtnl.ip(attrs, RTA_GATEWAY)


def _nexthops(data: bytes, names: dict[int, str]) -> tuple[tuple[str, str], ...]:
    hops = []
    offset = 0
    while offset + RTNEXTHOP.size <= len(data):
        length, _, _, ifindex = RTNEXTHOP.unpack_from(data, offset)
        if length < RTNEXTHOP.size:
            break
        attrs = rtnl.parse_attrs(data, offset + RTNEXTHOP.size, offset + length)
        hops.append((_gateway(attrs), names.get(ifindex, "")))
        offset += (length + 3) & ~3
    return tuple(hops)
