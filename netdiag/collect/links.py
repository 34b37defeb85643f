"""Collector: network interfaces (RTM_GETLINK dump) → Link records.

Reads each link's kind, MTU, state, MAC, master, lower device (IFLA_LINK and
IFLA_LINK_NETNSID) and the attributes of bridges, bridge ports, vxlan and macvlan devices.
The dump asks the kernel to leave out statistics (RTEXT_FILTER_SKIP_STATS): they are counters
netdiag never stores, and they are most of each message. Veth peers in other namespaces are
resolved later from all namespaces' links (see peers.py).
"""

from __future__ import annotations

import struct

from netdiag.collect import rtnl
from netdiag.collect.rtnl import Message
from netdiag.model import BridgeInfo, BridgePortInfo, Link, MacvlanInfo, VxlanInfo

NAME = "links"

IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
RTEXT_FILTER_SKIP_STATS = 1 << 3
ARPHRD_LOOPBACK = 772

# IFLA_* (linux/if_link.h)
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_EXT_MASK, IFLA_LINK_NETNSID = 16, 18, 20, 29, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
IFLA_BR_FORWARD_DELAY, IFLA_BR_AGEING_TIME, IFLA_BR_STP_STATE, IFLA_BR_VLAN_FILTERING = 1, 4, 5, 7
IFLA_BRPORT_STATE, IFLA_BRPORT_MODE, IFLA_BRPORT_LEARNING = 1, 4, 8
IFLA_BRPORT_UNICAST_FLOOD, IFLA_BRPORT_ISOLATED = 9, 33
IFLA_VXLAN_ID, IFLA_VXLAN_GROUP, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_TTL = 1, 2, 3, 4, 5
IFLA_VXLAN_LEARNING, IFLA_VXLAN_PROXY, IFLA_VXLAN_L2MISS, IFLA_VXLAN_L3MISS = 7, 11, 13, 14
IFLA_VXLAN_PORT, IFLA_VXLAN_GROUP6, IFLA_VXLAN_LOCAL6 = 15, 16, 17
IFLA_MACVLAN_MODE = 1

# IF_OPER_* (RFC 2863 operational states), as `ip link` prints them (lowercased).
OPER_STATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")

# net_device_flags (linux/if.h), in the order `ip link` prints them.
IFF_NAMES = ((0x8, "LOOPBACK"), (0x2, "BROADCAST"), (0x10, "POINTOPOINT"), (0x1000, "MULTICAST"),
             (0x80, "NOARP"), (0x200, "ALLMULTI"), (0x100, "PROMISC"), (0x400, "MASTER"),
             (0x800, "SLAVE"), (0x1, "UP"), (0x10000, "LOWER_UP"), (0x20000, "DORMANT"))
IFF_UP = 0x1

# BR_STATE_* (linux/if_bridge.h)
BRIDGE_PORT_STATES = {0: "disabled", 1: "listening", 2: "learning", 3: "forwarding",
                      4: "blocking"}

# MACVLAN_MODE_* (linux/if_link.h)
MACVLAN_MODES = {1: "private", 2: "vepa", 4: "bridge", 8: "passthru", 16: "source"}


def collect(ctx) -> dict:
    messages = dump(ctx)
    names = {IFINFOMSG.unpack(m.header)[2]: rtnl.string(m.attrs, IFLA_IFNAME) for m in messages}
    links = tuple(_link(m, names) for m in messages)
    return {"links": tuple(sorted(links, key=lambda link: link.index))}


def dump(ctx) -> list[Message]:
    """The namespace's RTM_GETLINK dump, read once and shared with the sysctls collector
    (each message also carries the interface's IPv4 settings in IFLA_AF_SPEC)."""
    request = IFINFOMSG.pack(0, 0, 0, 0, 0)
    ext_mask = struct.pack("=HHI", 8, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
    return ctx.once("links.dump", lambda: rtnl.dump(ctx, rtnl.RTM_GETLINK, request,
                                                    IFINFOMSG.size, ext_mask))


def names_by_index(ctx) -> dict[int, str]:
    """ifindex → name from what this collector found, for the collectors that run after it."""
    return {link.index: link.name for link in ctx.found.get("links", ())}


def _flags(value: int) -> tuple[str, ...]:
    return tuple(name for bit, name in IFF_NAMES if value & bit)


def _link(msg: Message, names: dict[int, str]) -> Link:
    _, device_type, index, flags, _ = IFINFOMSG.unpack(msg.header)
    attrs = msg.attrs
    info = rtnl.nested(attrs, IFLA_LINKINFO)
    kind = rtnl.string(info, IFLA_INFO_KIND) or (
        "loopback" if device_type == ARPHRD_LOOPBACK else "device")
    data = rtnl.nested(info, IFLA_INFO_DATA)
    master_index = rtnl.u32(attrs, IFLA_MASTER)
    parent_index = rtnl.u32(attrs, IFLA_LINK)
    parent_netnsid = rtnl.s32(attrs, IFLA_LINK_NETNSID)
    local_parent = parent_index and parent_netnsid is None and parent_index != index
    oper = rtnl.u8(attrs, IFLA_OPERSTATE)
    return Link(
        index=index,
        name=names[index],
        kind=kind,
        mtu=rtnl.u32(attrs, IFLA_MTU),
        admin_up=bool(flags & IFF_UP),
        oper_state=OPER_STATES[oper] if oper < len(OPER_STATES) else str(oper),
        mac=rtnl.mac(attrs, IFLA_ADDRESS),
        flags=_flags(flags),
        master=names.get(master_index, "") if master_index else "",
        master_index=master_index,
        parent_index=parent_index,
        parent_netnsid=parent_netnsid,
        parent=names.get(parent_index, "") if local_parent else "",
        bridge=_bridge(data) if kind == "bridge" else None,
        port=_bridge_port(info) if rtnl.string(info, IFLA_INFO_SLAVE_KIND) == "bridge" else None,
        vxlan=_vxlan(data, names) if kind == "vxlan" else None,
        macvlan=_macvlan(data) if kind == "macvlan" else None,
        alias=rtnl.string(attrs, IFLA_IFALIAS),
    )


def _bridge(data: dict[int, bytes]) -> BridgeInfo:
    return BridgeInfo(stp=bool(rtnl.u32(data, IFLA_BR_STP_STATE)),
                      vlan_filtering=bool(rtnl.u8(data, IFLA_BR_VLAN_FILTERING)),
                      forward_delay=rtnl.u32(data, IFLA_BR_FORWARD_DELAY),
                      ageing_time=rtnl.u32(data, IFLA_BR_AGEING_TIME))


def _bridge_port(info: dict[int, bytes]) -> BridgePortInfo:
    # The port attributes come with the link dump as the bridge's "slave data" (the same
    # IFLA_BRPORT_* set that IFLA_PROTINFO carries in an AF_BRIDGE dump), so one dump suffices.
    data = rtnl.nested(info, IFLA_INFO_SLAVE_DATA)
    return BridgePortInfo(
        state=BRIDGE_PORT_STATES.get(rtnl.u8(data, IFLA_BRPORT_STATE, -1), ""),
        hairpin=bool(rtnl.u8(data, IFLA_BRPORT_MODE)),
        learning=bool(rtnl.u8(data, IFLA_BRPORT_LEARNING, 1)),
        flood=bool(rtnl.u8(data, IFLA_BRPORT_UNICAST_FLOOD, 1)),
        isolated=bool(rtnl.u8(data, IFLA_BRPORT_ISOLATED)),
    )


def _vxlan(data: dict[int, bytes], names: dict[int, str]) -> VxlanInfo:
    # IFLA_VXLAN_GROUP holds either a unicast remote or a multicast group.
    remote = rtnl.ip(data, IFLA_VXLAN_GROUP) or rtnl.ip(data, IFLA_VXLAN_GROUP6)
    multicast = _is_multicast(remote)
    dev_index = rtnl.u32(data, IFLA_VXLAN_LINK)
    return VxlanInfo(
        vni=rtnl.u32(data, IFLA_VXLAN_ID),
        local=rtnl.ip(data, IFLA_VXLAN_LOCAL) or rtnl.ip(data, IFLA_VXLAN_LOCAL6),
        remote="" if multicast else remote,
        group=remote if multicast else "",
        dstport=rtnl.be16(data, IFLA_VXLAN_PORT),
        dev=names.get(dev_index, "") if dev_index else "",
        dev_index=dev_index,
        learning=bool(rtnl.u8(data, IFLA_VXLAN_LEARNING)),
        proxy=bool(rtnl.u8(data, IFLA_VXLAN_PROXY)),
        l2miss=bool(rtnl.u8(data, IFLA_VXLAN_L2MISS)),
        l3miss=bool(rtnl.u8(data, IFLA_VXLAN_L3MISS)),
        ttl=rtnl.u8(data, IFLA_VXLAN_TTL),
    )


def _macvlan(data: dict[int, bytes]) -> MacvlanInfo:
    mode = rtnl.u32(data, IFLA_MACVLAN_MODE)
    return MacvlanInfo(mode=MACVLAN_MODES.get(mode, str(mode)))


def _is_multicast(address: str) -> bool:
    if not address:
        return False
    if ":" in address:
        return address.lower().startswith("ff")
    return 224 <= int(address.split(".", 1)[0]) <= 239
