"""Collector: IPv4 ARP and IPv6 neighbour entries (RTM_GETNEIGH dump) → Neighbour records.

Like `ip neigh show`, entries the kernel made for itself with state NOARP or NONE (multicast
and broadcast mappings) are left out: they are derived from addresses, never configured.
"""

from __future__ import annotations

from socket import AF_INET, AF_INET6

from netdiag.collect.links import names_by_index
from netdiag.model import Neighbour

NAME = "neighbours"

# NUD_* (linux/neighbour.h), in bit order.
NUD_STATES = ((0x01, "incomplete"), (0x02, "reachable"), (0x04, "stale"), (0x08, "delay"),
              (0x10, "probe"), (0x20, "failed"), (0x40, "noarp"), (0x80, "permanent"))
NUD_NOARP = 0x40
NTF_PROXY = 0x08
NTF_ROUTER = 0x80


def state_names(state: int) -> tuple[str, ...]:
    return tuple(name for bit, name in NUD_STATES if state & bit) or ("none",)


def collect(ctx) -> dict:
    names = names_by_index(ctx)
    # One dump of every family; NOARP or NONE alone marks an entry the kernel made itself.
    neighbours = tuple(_neighbour(m, names) for m in ctx.ipr().neigh("dump")
                       if m["family"] in (AF_INET, AF_INET6) and m["state"] & ~NUD_NOARP)
    return {"neighbours": neighbours}


def _neighbour(msg, names: dict[int, str]) -> Neighbour:
    attrs = dict(msg["attrs"])
    return Neighbour(
        ifname=names.get(msg["ifindex"], ""),
        family=4 if msg["family"] == AF_INET else 6,
        address=attrs.get("NDA_DST", ""),
        mac=attrs.get("NDA_LLADDR", "") or "",
        state=state_names(msg["state"]),
        router=bool(msg["flags"] & NTF_ROUTER),
        proxy=bool(msg["flags"] & NTF_PROXY),
    )
