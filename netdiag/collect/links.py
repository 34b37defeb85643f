"""Collector: network interfaces (RTM_GETLINK dump) → Link records.

Reads each link's kind, MTU, state, MAC, master, lower device (IFLA_LINK and
IFLA_LINK_NETNSID) and the attributes of bridges, bridge ports, vxlan and macvlan devices.
The dump asks the kernel to leave out statistics (RTEXT_FILTER_SKIP_STATS): they are counters
netdiag never stores, and they are most of each message. Veth peers in other namespaces are
resolved later from all namespaces' links (see peers.py).
"""

from __future__ import annotations

from typing import Any

from netdiag.model import BridgeInfo, BridgePortInfo, Link, MacvlanInfo, VxlanInfo

NAME = "links"

RTEXT_FILTER_SKIP_STATS = 1 << 3

# net_device_flags (linux/if.h), in the order `ip link` prints them.
IFF_NAMES = ((0x8, "LOOPBACK"), (0x2, "BROADCAST"), (0x10, "POINTOPOINT"), (0x1000, "MULTICAST"),
             (0x80, "NOARP"), (0x200, "ALLMULTI"), (0x100, "PROMISC"), (0x400, "MASTER"),
             (0x800, "SLAVE"), (0x1, "UP"), (0x10000, "LOWER_UP"), (0x20000, "DORMANT"))

# BR_STATE_* (linux/if_bridge.h)
BRIDGE_PORT_STATES = {0: "disabled", 1: "listening", 2: "learning", 3: "forwarding",
                      4: "blocking"}

ARPHRD_LOOPBACK = 772


def collect(ctx) -> dict:
    messages = ctx.ipr().link("dump", ext_mask=RTEXT_FILTER_SKIP_STATS)
    raw = [_attrs(m) for m in messages]
    names = {m["index"]: a.get("IFLA_IFNAME", "") for m, a in zip(messages, raw)}
    links = tuple(_link(m, a, names) for m, a in zip(messages, raw))
    return {"links": tuple(sorted(links, key=lambda link: link.index))}


def names_by_index(ctx) -> dict[int, str]:
    """ifindex → name from what this collector found, for the collectors that run after it."""
    return {link.index: link.name for link in ctx.found.get("links", ())}


def _attrs(msg: Any) -> dict[str, Any]:
    """A netlink message's (or nested attribute's) attributes as a dict, looked up once.

    Anything else (absent, or raw bytes for a link kind pyroute2 cannot decode) is empty.
    """
    if isinstance(msg, dict) and "attrs" in msg:
        return dict(msg["attrs"])
    return {}


def _flags(value: int) -> tuple[str, ...]:
    return tuple(name for bit, name in IFF_NAMES if value & bit)


def _kind(msg: Any, info: dict[str, Any]) -> str:
    kind = info.get("IFLA_INFO_KIND")
    if kind:
        return kind
    if msg["ifi_type"] == ARPHRD_LOOPBACK:
        return "loopback"
    return "device"


def _link(msg: Any, attrs: dict[str, Any], names: dict[int, str]) -> Link:
    info = _attrs(attrs.get("IFLA_LINKINFO"))
    kind = _kind(msg, info)
    data = _attrs(info.get("IFLA_INFO_DATA"))
    master_index = attrs.get("IFLA_MASTER", 0)
    parent_index = attrs.get("IFLA_LINK", 0)
    parent_netnsid = attrs.get("IFLA_LINK_NETNSID")
    same_ns_parent = parent_netnsid is None and parent_index != msg["index"]
    return Link(
        index=msg["index"],
        name=attrs.get("IFLA_IFNAME", ""),
        kind=kind,
        mtu=attrs.get("IFLA_MTU", 0),
        admin_up=bool(msg["flags"] & 0x1),
        oper_state=str(attrs.get("IFLA_OPERSTATE", "unknown")).lower(),
        mac=attrs.get("IFLA_ADDRESS", "") or "",
        flags=_flags(msg["flags"]),
        master=names.get(master_index, "") if master_index else "",
        master_index=master_index,
        parent_index=parent_index,
        parent_netnsid=parent_netnsid,
        parent=names.get(parent_index, "") if parent_index and same_ns_parent else "",
        bridge=_bridge(data) if kind == "bridge" else None,
        port=_bridge_port(info) if info.get("IFLA_INFO_SLAVE_KIND") == "bridge" else None,
        vxlan=_vxlan(data, names) if kind == "vxlan" else None,
        macvlan=MacvlanInfo(mode=str(data.get("IFLA_MACVLAN_MODE", ""))) if kind == "macvlan"
        else None,
        alias=attrs.get("IFLA_IFALIAS", "") or "",
    )


def _bridge(data: dict[str, Any]) -> BridgeInfo:
    return BridgeInfo(stp=bool(data.get("IFLA_BR_STP_STATE", 0)),
                      vlan_filtering=bool(data.get("IFLA_BR_VLAN_FILTERING", 0)),
                      forward_delay=data.get("IFLA_BR_FORWARD_DELAY", 0),
                      ageing_time=data.get("IFLA_BR_AGEING_TIME", 0))


def _bridge_port(info: dict[str, Any]) -> BridgePortInfo:
    # The port attributes come with the link dump as the bridge's "slave data" (the same
    # IFLA_BRPORT_* set that IFLA_PROTINFO carries in an AF_BRIDGE dump), so one dump suffices.
    data = _attrs(info.get("IFLA_INFO_SLAVE_DATA"))
    return BridgePortInfo(
        state=BRIDGE_PORT_STATES.get(data.get("IFLA_BRPORT_STATE", -1), ""),
        hairpin=bool(data.get("IFLA_BRPORT_MODE", 0)),
        learning=bool(data.get("IFLA_BRPORT_LEARNING", 1)),
        flood=bool(data.get("IFLA_BRPORT_UNICAST_FLOOD", 1)),
        isolated=bool(data.get("IFLA_BRPORT_ISOLATED", 0)),
    )


def _vxlan(data: dict[str, Any], names: dict[int, str]) -> VxlanInfo:
    remote = data.get("IFLA_VXLAN_GROUP") or data.get("IFLA_VXLAN_GROUP6") or ""
    multicast = _is_multicast(remote)
    dev_index = data.get("IFLA_VXLAN_LINK", 0)
    return VxlanInfo(
        vni=data.get("IFLA_VXLAN_ID", 0),
        local=data.get("IFLA_VXLAN_LOCAL") or data.get("IFLA_VXLAN_LOCAL6") or "",
        remote="" if multicast else remote,
        group=remote if multicast else "",
        dstport=data.get("IFLA_VXLAN_PORT", 0),
        dev=names.get(dev_index, "") if dev_index else "",
        dev_index=dev_index,
        learning=bool(data.get("IFLA_VXLAN_LEARNING", 0)),
        proxy=bool(data.get("IFLA_VXLAN_PROXY", 0)),
        l2miss=bool(data.get("IFLA_VXLAN_L2MISS", 0)),
        l3miss=bool(data.get("IFLA_VXLAN_L3MISS", 0)),
        ttl=data.get("IFLA_VXLAN_TTL", 0),
    )


def _is_multicast(address: str) -> bool:
    # IFLA_VXLAN_GROUP holds both kinds: a unicast remote or a multicast group.
    if not address:
        return False
    if ":" in address:
        return address.lower().startswith("ff")
    return 224 <= int(address.split(".", 1)[0]) <= 239
