"""Collector: bridge forwarding databases, including VXLAN remote entries → FdbEntry records.

One AF_BRIDGE neighbour dump (what `bridge fdb show` reads) gives both the bridges' learnt and
static entries (they carry NDA_MASTER) and the entries a vxlan device keeps itself (flag
self), with the remote VTEP (`dst`), VNI and UDP port. The dump also lists every device's
hardware address lists (multicast groups, macvlan MACs on their parent) as "self" entries
without a master; those are not forwarding entries and are left out, except on vxlan devices,
whose "self" entries are their forwarding table. A namespace with no bridge and no vxlan is
therefore not dumped at all.
"""

from __future__ import annotations

from netdiag.collect import rtnl
from netdiag.collect.neighbours import NDA_DST, NDA_LLADDR, dump
from netdiag.model import FdbEntry, Link

NAME = "fdb"

AF_BRIDGE = 7
NDA_VLAN, NDA_PORT, NDA_VNI, NDA_MASTER = 5, 6, 7, 9
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80

# NTF_* (linux/neighbour.h) as `bridge fdb` prints them.
NTF_NAMES = ((0x02, "self"), (0x04, "master"), (0x10, "extern_learn"), (0x20, "offload"),
             (0x40, "sticky"), (0x80, "router"))


def collect(ctx) -> dict:
    links = {link.index: link for link in ctx.found.get("links", ())}
    if links and not any(link.kind in ("bridge", "vxlan") for link in links.values()):
        return {"fdb": ()}
    entries = []
    for header, attrs in dump(ctx, AF_BRIDGE):
        link = links.get(header[1])
        if NDA_MASTER in attrs or (link is not None and link.kind == "vxlan"):
            entries.append(_entry(header, attrs, links))
    return {"fdb": tuple(entries)}


def _entry(header, attrs: dict[int, bytes], links: dict[int, Link]) -> FdbEntry:
    _, ifindex, state, flags, _ = header

    def name(index: int) -> str:
        link = links.get(index)
        return link.name if link else ""

    return FdbEntry(
        ifname=name(ifindex),
        mac=rtnl.mac(attrs, NDA_LLADDR),
        master=name(rtnl.u32(attrs, NDA_MASTER)),
        dst=rtnl.ip(attrs, NDA_DST),
        vni=rtnl.u32(attrs, NDA_VNI),
        port=rtnl.be16(attrs, NDA_PORT),
        vlan=rtnl.u16(attrs, NDA_VLAN),
        state=_state(state),
        flags=_flags(flags, NDA_MASTER in attrs),
    )


def _state(state: int) -> str:
    if state & NUD_PERMANENT:
        return "permanent"
    if state & NUD_NOARP:
        return "static"
    return "dynamic"


def _flags(value: int, in_bridge_table: bool) -> tuple[str, ...]:
    # A bridge reports its own entries without NTF_MASTER; `bridge fdb` shows them as "master".
    flags = tuple(flag for bit, flag in NTF_NAMES if value & bit)
    if in_bridge_table and "master" not in flags:
        flags += ("master",)
    return flags
