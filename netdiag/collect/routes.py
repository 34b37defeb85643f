"""Collector: routes of every table, IPv4 and IPv6 (RTM_GETROUTE dump) → Route records.

Also holds the kernel's route-type, scope and protocol numbers as the names iproute2 prints,
which the address and rule collectors share.
"""

from __future__ import annotations

from socket import AF_INET, AF_INET6

from netdiag.collect.links import names_by_index
from netdiag.model import Route

NAME = "routes"

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

RTAX_MTU = "RTAX_MTU"


def collect(ctx) -> dict:
    names = names_by_index(ctx)
    routes = tuple(_route(m, names) for m in ctx.ipr().route("dump")
                   if m["family"] in (AF_INET, AF_INET6))
    return {"routes": routes}


def _route(msg, names: dict[int, str]) -> Route:
    attrs = dict(msg["attrs"])
    family = 4 if msg["family"] == AF_INET else 6
    dst = attrs.get("RTA_DST")
    metrics = attrs.get("RTA_METRICS")
    return Route(
        family=family,
        dst=f"{dst}/{msg['dst_len']}" if dst else "default",
        # RTA_TABLE carries the full 32-bit table id; the header field only its low byte.
        table=attrs.get("RTA_TABLE", msg["table"]),
        type=ROUTE_TYPES.get(msg["type"], str(msg["type"])),
        protocol=PROTOCOLS.get(msg["proto"], str(msg["proto"])),
        scope=SCOPES.get(msg["scope"], str(msg["scope"])),
        dev=names.get(attrs.get("RTA_OIF", 0), ""),
        gateway=_gateway(attrs),
        prefsrc=attrs.get("RTA_PREFSRC", "") or "",
        metric=attrs.get("RTA_PRIORITY", 0),
        mtu=dict(metrics["attrs"]).get(RTAX_MTU, 0) if metrics else 0,
        nexthops=tuple((_gateway(dict(hop["attrs"])), names.get(hop["oif"], ""))
                       for hop in attrs.get("RTA_MULTIPATH", ())),
    )


def _gateway(attrs: dict) -> str:
    via = attrs.get("RTA_VIA")  # an IPv4 route with an IPv6 next hop
    if via:
        return via.get("addr", "") if isinstance(via, dict) else str(via)
    return attrs.get("RTA_GATEWAY", "") or ""
