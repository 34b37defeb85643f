"""Collector: how full the namespace's connection-tracking table is (count and max).

Asked over ctnetlink (IPCTNL_MSG_CT_GET_STATS, what `conntrack -C` uses): microseconds, where
/proc/sys/net/netfilter/nf_conntrack_count costs ~0.5 ms a read on a host with 1000
namespaces (see sysctls.py). The /proc files are the fallback when ctnetlink cannot answer
(nf_conntrack_netlink not loaded, an old kernel without the max attribute, no
CAP_NET_ADMIN).

When neither exists, connection tracking is not loaded in this kernel, so nothing is tracked
and no table can fill up: that is recorded as `conntrack = None` — a fact, not a gap.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from netdiag import netlink
from netdiag.errors import CollectError, NetdiagError
from netdiag.model import Conntrack

NAME = "conntrack"

PROC_NETFILTER = "/proc/sys/net/netfilter"
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET_STATS = 5
CTA_STATS_GLOBAL_ENTRIES = 1
CTA_STATS_GLOBAL_MAX_ENTRIES = 2


def collect(ctx) -> dict:
    try:
        counted = read_ctnetlink(ctx)
    except NetdiagError:  # not permitted, or ctnetlink absent: the files may still tell
        counted = None
    return {"conntrack": counted or read_proc(PROC_NETFILTER)}


def read_ctnetlink(ctx=None) -> Conntrack | None:
    answers = netlink.request(netlink.NETLINK_NETFILTER,
                              (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS,
                              struct.pack("=BBH", 0, 0, 0), "conntrack statistics", ctx)
    for _kind, body in answers:
        return stats_from_answer(body)
    return None


def stats_from_answer(body: bytes) -> Conntrack | None:
    """An IPCTNL_MSG_CT_GET_STATS answer (nfgenmsg + attributes) → Conntrack."""
    attrs = netlink.attributes(body, 4)
    if CTA_STATS_GLOBAL_ENTRIES not in attrs or CTA_STATS_GLOBAL_MAX_ENTRIES not in attrs:
        return None
    (count,) = struct.unpack(">I", attrs[CTA_STATS_GLOBAL_ENTRIES])
    (maximum,) = struct.unpack(">I", attrs[CTA_STATS_GLOBAL_MAX_ENTRIES])
    return Conntrack(count=count, max=maximum)


def read_proc(folder: str) -> Conntrack | None:
    try:
        with open(f"{folder}/nf_conntrack_count") as f:
            count = f.read()
        with open(f"{folder}/nf_conntrack_max") as f:
            maximum = f.read()
    except FileNotFoundError:
        return None
    try:
        return Conntrack(count=int(count), max=int(maximum))
    except ValueError:
        raise CollectError(f"unexpected conntrack figures in {folder}: "
                           f"{count.strip()!r}, {maximum.strip()!r}") from None


# --- the tracked connections themselves (`netdiag show conntrack`): read live, not kept in
# snapshots, which hold only the counts above. The ctnetlink attributes:
# include/uapi/linux/netfilter/nfnetlink_conntrack.h (what `conntrack -L` asks for).

IPCTNL_MSG_CT_GET = 1
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO, CTA_TIMEOUT = 1, 2, 3, 4, 7
CTA_MARK, CTA_ZONE = 8, 18
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTO_ICMP_ID, CTA_PROTO_ICMPV6_ID = 4, 7
CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE = 1, 1
IPS_SEEN_REPLY, IPS_ASSURED = 1 << 1, 1 << 2
TCP_STATES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
              "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")
PROTOCOLS = {6: "tcp", 17: "udp", 1: "icmp", 2: "igmp", 58: "icmpv6", 132: "sctp", 136: "udplite"}


@dataclass(frozen=True, slots=True)
class Tuple:
    src: str
    dst: str
    sport: int = 0  # 0 for protocols without ports
    dport: int = 0

    @property
    def text(self) -> str:
        return f"{endpoint(self.src, self.sport)} → {endpoint(self.dst, self.dport)}"


@dataclass(frozen=True, slots=True)
class Tracked:
    """One tracked connection: as its first packet went (original) and as its reply comes."""

    proto: str
    original: Tuple
    reply: Tuple
    state: str = ""  # TCP's state; "" for the others
    timeout: int = 0  # seconds left
    assured: bool = False
    replied: bool = False
    mark: int = 0
    zone: int = 0
    icmp_id: int = 0  # an ICMP echo's identifier (what tells two pings apart)

    @property
    def dnat(self) -> Tuple | None:
        """Where the destination was translated to (the reply comes from there), or None."""
        o, r = self.original, self.reply
        return None if (r.src, r.sport) == (o.dst, o.dport) else Tuple(o.dst, r.src, o.dport,
                                                                        r.sport)

    @property
    def snat(self) -> Tuple | None:
        """What the source was translated to (the reply goes there), or None."""
        o, r = self.original, self.reply
        return None if (r.dst, r.dport) == (o.src, o.sport) else Tuple(o.src, r.dst, o.sport,
                                                                        r.dport)

    def touches(self, address: str = "", port: int = 0) -> bool:
        """Whether the address or port is any end of it, before or after NAT."""
        ends = (self.original.src, self.original.dst, self.reply.src, self.reply.dst)
        ports = (self.original.sport, self.original.dport, self.reply.sport, self.reply.dport)
        return (not address or address in ends) and (not port or port in ports)


def endpoint(address: str, port: int) -> str:
    """ADDRESS:PORT, [IPV6]:PORT, or the address alone for protocols without ports."""
    where = f"[{address}]" if ":" in address and port else address
    return f"{where}:{port}" if port else address


def read_entries() -> list[Tracked]:
    """The tracked connections of the namespace the calling thread is in."""
    answers = netlink.dump(netlink.NETLINK_NETFILTER,
                           (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
                           struct.pack("=BBH", socket.AF_UNSPEC, 0, 0), "conntrack entries")
    found = (entry_from_answer(body) for _kind, body in answers)
    return [entry for entry in found if entry is not None]


def entry_from_answer(body: bytes) -> Tracked | None:
    """An IPCTNL_MSG_CT_NEW answer of a dump (nfgenmsg + attributes) → Tracked."""
    attrs = netlink.attributes(body, 4)
    if CTA_TUPLE_ORIG not in attrs or CTA_TUPLE_REPLY not in attrs:
        return None
    number, original, icmp_id = _tuple(attrs[CTA_TUPLE_ORIG])
    _, reply, _ = _tuple(attrs[CTA_TUPLE_REPLY])
    (status,) = struct.unpack(">I", attrs.get(CTA_STATUS, b"\0\0\0\0"))
    state = ""
    if CTA_PROTOINFO in attrs:
        tcp = netlink.attributes(attrs[CTA_PROTOINFO]).get(CTA_PROTOINFO_TCP)
        found = netlink.attributes(tcp).get(CTA_PROTOINFO_TCP_STATE) if tcp else None
        if found:
            state = TCP_STATES[found[0]] if found[0] < len(TCP_STATES) else str(found[0])
    return Tracked(PROTOCOLS.get(number, str(number)), original, reply, state,
                   _u32(attrs.get(CTA_TIMEOUT)), bool(status & IPS_ASSURED),
                   bool(status & IPS_SEEN_REPLY), _u32(attrs.get(CTA_MARK)),
                   struct.unpack(">H", attrs[CTA_ZONE])[0] if CTA_ZONE in attrs else 0,
                   icmp_id)


def _u32(value: bytes | None) -> int:
    return struct.unpack(">I", value)[0] if value else 0


def _tuple(data: bytes) -> tuple[int, Tuple, int]:
    """(protocol number, the tuple, the ICMP echo identifier or 0)."""
    parts = netlink.attributes(data)
    ip = netlink.attributes(parts.get(CTA_TUPLE_IP, b""))
    proto = netlink.attributes(parts.get(CTA_TUPLE_PROTO, b""))
    if CTA_IP_V4_SRC in ip:
        src = socket.inet_ntop(socket.AF_INET, ip[CTA_IP_V4_SRC])
        dst = socket.inet_ntop(socket.AF_INET, ip.get(CTA_IP_V4_DST, bytes(4)))
    else:
        src = socket.inet_ntop(socket.AF_INET6, ip.get(CTA_IP_V6_SRC, bytes(16)))
        dst = socket.inet_ntop(socket.AF_INET6, ip.get(CTA_IP_V6_DST, bytes(16)))
    number = proto.get(CTA_PROTO_NUM, b"\0")[0]
    sport = struct.unpack(">H", proto[CTA_PROTO_SRC_PORT])[0] \
        if CTA_PROTO_SRC_PORT in proto else 0
    dport = struct.unpack(">H", proto[CTA_PROTO_DST_PORT])[0] \
        if CTA_PROTO_DST_PORT in proto else 0
    ident = proto.get(CTA_PROTO_ICMP_ID) or proto.get(CTA_PROTO_ICMPV6_ID)
    return number, Tuple(src, dst, sport, dport), struct.unpack(">H", ident)[0] if ident else 0
