"""Collector: bridge forwarding databases, including VXLAN remote entries → FdbEntry records.

One AF_BRIDGE neighbour dump (what `bridge fdb show` reads) gives both the bridges' learnt and
static entries (flag master) and the entries a vxlan device keeps itself (flag self), with the
remote VTEP (`dst`), VNI and UDP port. The dump also lists every device's hardware address
lists (multicast groups, macvlan MACs on their parent) as "self" entries without a master;
those are not forwarding entries and are left out, except on vxlan devices, whose "self"
entries are their forwarding table. A namespace with no bridge and no vxlan is not dumped.
"""

from __future__ import annotations

from netdiag.model import FdbEntry

NAME = "fdb"

AF_BRIDGE = 7
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80

# NTF_* (linux/neighbour.h) as `bridge fdb` prints them.
NTF_NAMES = ((0x02, "self"), (0x04, "master"), (0x10, "extern_learn"), (0x20, "offload"),
             (0x40, "sticky"), (0x80, "router"))

FORWARDING_KINDS = ("bridge", "vxlan")


def collect(ctx) -> dict:
    links = {link.index: link for link in ctx.found.get("links", ())}
    if links and not any(link.kind in FORWARDING_KINDS for link in links.values()):
        return {"fdb": ()}
    entries = []
    for msg in ctx.ipr().fdb("dump"):
        link = links.get(msg["ifindex"])
        attrs = dict(msg["attrs"])
        if "NDA_MASTER" not in attrs and (link is None or link.kind != "vxlan"):
            continue
        entries.append(_entry(msg, attrs, links))
    return {"fdb": tuple(entries)}


def _state(state: int) -> str:
    if state & NUD_PERMANENT:
        return "permanent"
    if state & NUD_NOARP:
        return "static"
    return "dynamic"


def _entry(msg, attrs: dict, links: dict) -> FdbEntry:
    def name(index: int) -> str:
        link = links.get(index)
        return link.name if link else ""

    return FdbEntry(
        ifname=name(msg["ifindex"]),
        mac=attrs.get("NDA_LLADDR", ""),
        master=name(attrs.get("NDA_MASTER", 0)),
        dst=attrs.get("NDA_DST", "") or "",
        vni=attrs.get("NDA_VNI", 0),
        port=attrs.get("NDA_PORT", 0),
        vlan=attrs.get("NDA_VLAN", 0),
        state=_state(msg["state"]),
        flags=_flags(msg["flags"], "NDA_MASTER" in attrs),
    )


def _flags(value: int, in_bridge_table: bool) -> tuple[str, ...]:
    # A bridge reports its own entries without NTF_MASTER; `bridge fdb` shows them as "master".
    flags = tuple(flag for bit, flag in NTF_NAMES if value & bit)
    if in_bridge_table and "master" not in flags:
        flags += ("master",)
    return flags
