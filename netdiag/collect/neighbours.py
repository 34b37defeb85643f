"""Collector: IPv4 ARP and IPv6 neighbour entries (RTM_GETNEIGH dump) → Neighbour records.

Like `ip neigh show`, entries the kernel made for itself with state NOARP or NONE (multicast
and broadcast mappings) are left out: they are derived from addresses, never configured.
Also holds the neighbour message layout that the bridge FDB collector shares.
"""

from __future__ import annotations

import struct
from socket import AF_INET, AF_INET6, AF_UNSPEC

from netdiag.collect import rtnl
from netdiag.collect.links import names_by_index
from netdiag.model import Neighbour

NAME = "neighbours"

NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
NDA_DST, NDA_LLADDR = 1, 2

# NUD_* (linux/neighbour.h), in bit order.
NUD_STATES = ((0x01, "incomplete"), (0x02, "reachable"), (0x04, "stale"), (0x08, "delay"),
              (0x10, "probe"), (0x20, "failed"), (0x40, "noarp"), (0x80, "permanent"))
NUD_NOARP = 0x40
NTF_PROXY = 0x08
NTF_ROUTER = 0x80


def state_names(state: int) -> tuple[str, ...]:
    return tuple(name for bit, name in NUD_STATES if state & bit) or ("none",)


def dump(ctx, family: int) -> list[tuple[tuple[int, int, int, int, int], dict[int, bytes]]]:
    """RTM_GETNEIGH dump of `family`: (ndmsg fields, attributes) per entry."""
    request = NDMSG.pack(family, 0, 0, 0, 0)
    messages = rtnl.dump(ctx, rtnl.RTM_GETNEIGH, request, NDMSG.size)
    return [(NDMSG.unpack(m.header), m.attrs) for m in messages]


def collect(ctx) -> dict:
    names = names_by_index(ctx)
    # One dump of every family; NOARP or NONE alone marks an entry the kernel made itself.
    neighbours = tuple(_neighbour(header, attrs, names)
                       for header, attrs in dump(ctx, AF_UNSPEC)
                       if header[0] in (AF_INET, AF_INET6) and header[2] & ~NUD_NOARP)
    return {"neighbours": neighbours}


def _neighbour(header, attrs: dict[int, bytes], names: dict[int, str]) -> Neighbour:
    family, ifindex, state, flags, _ = header
    return Neighbour(
        ifname=names.get(ifindex, ""),
        family=4 if family == AF_INET else 6,
        address=rtnl.ip(attrs, NDA_DST),
        mac=rtnl.mac(attrs, NDA_LLADDR),
        state=state_names(state),
        router=bool(flags & NTF_ROUTER),
        proxy=bool(flags & NTF_PROXY),
    )
