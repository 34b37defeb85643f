"""The rtnetlink requests that change the kernel, on a NETLINK_ROUTE socket of the netlink core.

Drivers (the bridge's endpoints are its hot path: a lab or a benchmark makes hundreds), the lab
and repair steps write through here. pyroute2 spends about 1 ms of Python per request
(netdiag/netlink.py says more), more than the kernel takes; the requests are small and fixed,
so they are packed with struct: create a link (a bridge; a veth whose peer is born in another
namespace; a vxlan, macvlan or 802.1q device, created directly in another namespace when asked),
change a link (name, MAC, MTU, master, up, namespace), set hairpin mode, delete it, look one up
by name, add an address, add or delete a route, add or delete a bridge/VXLAN forwarding entry,
replace or delete a neighbour. Every request asks for an acknowledgement and a kernel error
is raised as RtnlError (the core's NetlinkError) carrying the errno, which callers turn into
the project's kinds. What the drivers read back goes through the collectors (netdiag/collect,
via netdiag/drivers/common/state.py), which decode the same dumps for the snapshot.

A socket belongs to the namespace of the thread that opens it (netns.entered first).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from netdiag.netlink import (
    NETLINK_ROUTE,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NetlinkError,
    NetlinkSocket,
    attributes,
    pack_attr,
    pack_nested,
)

RtnlError = NetlinkError  # the name the step modules catch

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_NEWROUTE, RTM_DELROUTE = 20, 24, 25
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
AF_UNSPEC, AF_INET, AF_BRIDGE, AF_INET6 = 0, 2, 7, 10
NLM_F_REPLACE, NLM_F_APPEND = 0x100, 0x800
IFF_UP = 0x1

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_PROTINFO, IFLA_LINKINFO, IFLA_NET_NS_FD = 12, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_VXLAN_ID, IFLA_VXLAN_LEARNING, IFLA_VXLAN_PROXY = 1, 7, 11
IFLA_VXLAN_L2MISS, IFLA_VXLAN_L3MISS, IFLA_VXLAN_PORT = 13, 14, 15
IFLA_MACVLAN_MODE = 1
IFLA_VLAN_ID = 1
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IFLA_BRPORT_MODE = 4  # the bridge port's hairpin flag
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 4, 5, 6, 15
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 253, 255
RT_TABLE_COMPAT = 252  # in the header when the real table (RTA_TABLE) is above 255
NDA_DST, NDA_LLADDR = 1, 2
NUD_PERMANENT, NTF_SELF = 0x80, 0x02

IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, proto, scope, type
NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type


@dataclass(frozen=True, slots=True)
class VethPeer:
    """The other end of a veth, created directly in the namespace open as `netns_fd`."""

    name: str
    mtu: int
    mac: str = ""  # "" lets the kernel choose
    netns_fd: int = -1  # -1: the peer stays in the namespace of the socket


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def _family(text: str) -> int:
    return AF_INET6 if ipaddress.ip_address(text).version == 6 else AF_INET


def _link_attrs(*, name: str = "", mac: str = "", mtu: int = 0, master: int = 0,
                lower: int = 0, netns_fd: int = -1) -> bytes:
    """A link's attributes, for what is given (empty, 0 or -1: left out)."""
    attrs = []
    if name:
        attrs.append(pack_attr(IFLA_IFNAME, _name(name)))
    if mac:
        attrs.append(pack_attr(IFLA_ADDRESS, _mac(mac)))
    if mtu:
        attrs.append(pack_attr(IFLA_MTU, _u32(mtu)))
    if master:
        attrs.append(pack_attr(IFLA_MASTER, _u32(master)))
    if lower:
        attrs.append(pack_attr(IFLA_LINK, _u32(lower)))
    if netns_fd >= 0:
        attrs.append(pack_attr(IFLA_NET_NS_FD, _u32(netns_fd)))
    return b"".join(attrs)


class Rtnl(NetlinkSocket):
    """A NETLINK_ROUTE socket of the calling thread's namespace, for one operation."""

    def __init__(self) -> None:
        super().__init__(NETLINK_ROUTE)

    def _request(self, msg_type: int, flags: int, body: bytes) -> bytes:
        """Send one request; return the answer's first message body ("" for a bare ACK)."""
        answers = self.request(msg_type, body, flags)
        return answers[0][1] if answers else b""

    # links ----------------------------------------------------------------------------------

    def link(self, name: str) -> tuple[int, str]:
        """(index, MAC) of the device called `name`."""
        answer = self._request(RTM_GETLINK, 0, IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0)
                               + pack_attr(IFLA_IFNAME, _name(name)))
        index = IFINFOMSG.unpack_from(answer)[2]
        return index, attributes(answer, IFINFOMSG.size).get(IFLA_ADDRESS, b"").hex(":")

    def flags(self, name: str) -> int:
        """The IFF_* flags of the device called `name` (IFF_UP: set up)."""
        answer = self._request(RTM_GETLINK, 0, IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0)
                               + pack_attr(IFLA_IFNAME, _name(name)))
        return IFINFOMSG.unpack_from(answer)[3]

    def add_link(self, name: str, kind: str, *, mtu: int = 0, up: bool = True,
                 master: int = 0, peer: VethPeer | None = None, lower: int = 0,
                 netns_fd: int = -1, data: bytes = b"") -> None:
        """`ip link add NAME [link LOWER] [mtu MTU] [master M] [netns FD] type KIND ...`:
        `data` is the kind's IFLA_INFO_DATA (vxlan_data, macvlan_data, vlan_data); mtu 0
        leaves the kernel's default."""
        if peer is not None:
            data = pack_attr(VETH_INFO_PEER, IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + _link_attrs(
                name=peer.name, mac=peer.mac, mtu=peer.mtu, netns_fd=peer.netns_fd))
        info = pack_attr(IFLA_INFO_KIND, kind.encode())
        if data:
            info += pack_nested(IFLA_INFO_DATA, data)
        flags = IFF_UP if up else 0
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                      IFINFOMSG.pack(AF_UNSPEC, 0, 0, flags, IFF_UP)
                      + _link_attrs(name=name, mtu=mtu, master=master, lower=lower,
                                    netns_fd=netns_fd)
                      + pack_nested(IFLA_LINKINFO, info))

    def set_link(self, index: int, *, name: str = "", mac: str = "", mtu: int = 0,
                 master: int = 0, up: bool | None = None, netns_fd: int = -1) -> None:
        """`ip link set INDEX [name N] [address MAC] [mtu M] [master B] [up|down] [netns FD]`:
        only what is given changes."""
        flags, change = (0, 0) if up is None else (IFF_UP if up else 0, IFF_UP)
        self._request(RTM_NEWLINK, 0, IFINFOMSG.pack(AF_UNSPEC, 0, index, flags, change)
                      + _link_attrs(name=name, mac=mac, mtu=mtu, master=master,
                                    netns_fd=netns_fd))

    def set_up(self, index: int) -> None:
        self.set_link(index, up=True)

    def set_hairpin(self, index: int) -> None:
        self._request(RTM_SETLINK, 0, IFINFOMSG.pack(AF_BRIDGE, 0, index, 0, 0)
                      + pack_nested(IFLA_PROTINFO, pack_attr(IFLA_BRPORT_MODE, b"\x01")))

    def delete_link(self, index: int) -> None:
        self._request(RTM_DELLINK, 0, IFINFOMSG.pack(AF_UNSPEC, 0, index, 0, 0))

    # addresses and routes -------------------------------------------------------------------

    def add_address(self, index: int, address: str, prefixlen: int, broadcast: str = ""
                    ) -> None:
        """`ip addr add ADDRESS/PREFIXLEN [broadcast B] dev INDEX`. An IPv6 address is added
        `nodad`, as Docker adds its own: usable at once, never left tentative."""
        family = _family(address)
        attrs = pack_attr(IFA_LOCAL, _ip(address)) + pack_attr(IFA_ADDRESS, _ip(address))
        if broadcast:
            attrs += pack_attr(IFA_BROADCAST, _ip(broadcast))
        flags = IFA_F_NODAD if family == AF_INET6 else 0
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                      IFADDRMSG.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index) + attrs)

    def add_default_route(self, index: int, gateway: str, replace: bool = False) -> None:
        """`ip route add|replace default via GATEWAY dev INDEX`."""
        self._request(RTM_NEWROUTE, NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL),
                      RTMSG.pack(AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                                 RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
                      + pack_attr(RTA_GATEWAY, _ip(gateway)) + pack_attr(RTA_OIF, _u32(index)))

    def set_master(self, index: int, master: int) -> None:
        """Enslave the link to a bridge and set it up."""
        self.set_link(index, master=master, up=True)

    def set_mtu(self, index: int, mtu: int) -> None:
        self.set_link(index, mtu=mtu)

    def route(self, add: bool, dst: str, *, oif: int = 0, gateway: str = "",
              table: int = RT_TABLE_MAIN, metric: int = 0) -> None:
        """`ip route add|del DST [via GATEWAY] [dev OIF] [table T] [metric M]`; "default"
        is the whole IPv4 space. A delete matches a route of any scope and protocol."""
        network = ipaddress.ip_network("0.0.0.0/0" if dst == "default" else dst, strict=False)
        family = AF_INET6 if network.version == 6 else AF_INET
        attrs = [pack_attr(RTA_TABLE, _u32(table))]
        if network.prefixlen:
            attrs.append(pack_attr(RTA_DST, network.network_address.packed))
        if gateway:
            attrs.append(pack_attr(RTA_GATEWAY, _ip(gateway)))
        if oif:
            attrs.append(pack_attr(RTA_OIF, _u32(oif)))
        if metric:
            attrs.append(pack_attr(RTA_PRIORITY, _u32(metric)))
        in_header = table if table < 256 else RT_TABLE_COMPAT
        if add:
            scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
            header = RTMSG.pack(family, network.prefixlen, 0, 0, in_header, RTPROT_BOOT, scope,
                                RTN_UNICAST, 0)
            self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, header + b"".join(attrs))
        else:  # like `ip route del`: scope nowhere and protocol 0 match any scope and protocol
            header = RTMSG.pack(family, network.prefixlen, 0, 0, in_header, 0, RT_SCOPE_NOWHERE,
                                0, 0)
            self._request(RTM_DELROUTE, 0, header + b"".join(attrs))

    def fdb(self, add: bool, index: int, mac: str, dst: str = "") -> None:
        """`bridge fdb append|del MAC dev INDEX [dst DST] self [permanent]`."""
        attrs = pack_attr(NDA_LLADDR, _mac(mac)) + (pack_attr(NDA_DST, _ip(dst)) if dst else b"")
        if add:
            self._request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND,
                          NDMSG.pack(AF_BRIDGE, index, NUD_PERMANENT, NTF_SELF, 0) + attrs)
        else:
            self._request(RTM_DELNEIGH, 0, NDMSG.pack(AF_BRIDGE, index, 0, NTF_SELF, 0) + attrs)

    def neighbour(self, index: int, address: str, mac: str = "") -> None:
        """`ip neigh replace ADDRESS lladdr MAC dev INDEX nud permanent`, or without a MAC
        `ip neigh del ADDRESS dev INDEX`."""
        attrs = pack_attr(NDA_DST, _ip(address))
        if mac:
            self._request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE,
                          NDMSG.pack(_family(address), index, NUD_PERMANENT, 0, 0)
                          + attrs + pack_attr(NDA_LLADDR, _mac(mac)))
        else:
            self._request(RTM_DELNEIGH, 0, NDMSG.pack(_family(address), index, 0, 0, 0) + attrs)


# --- the kinds' IFLA_INFO_DATA -----------------------------------------------------------------


def vxlan_data(vni: int, port: int, *, learning: bool, proxy: bool, l2miss: bool,
               l3miss: bool) -> bytes:
    """`type vxlan id VNI dstport PORT [no]learning [proxy] [l2miss] [l3miss]`."""
    return (pack_attr(IFLA_VXLAN_ID, _u32(vni)) + pack_attr(IFLA_VXLAN_PORT,
                                                           struct.pack("!H", port))
            + pack_attr(IFLA_VXLAN_LEARNING, bytes([learning]))
            + pack_attr(IFLA_VXLAN_PROXY, bytes([proxy]))
            + pack_attr(IFLA_VXLAN_L2MISS, bytes([l2miss]))
            + pack_attr(IFLA_VXLAN_L3MISS, bytes([l3miss])))


def macvlan_data(mode: str) -> bytes:
    """`type macvlan mode MODE` (private, vepa, bridge, passthru, source)."""
    return pack_attr(IFLA_MACVLAN_MODE, _u32(MACVLAN_MODES[mode]))


def vlan_data(tag: int) -> bytes:
    """`type vlan id TAG` (802.1q)."""
    return pack_attr(IFLA_VLAN_ID, struct.pack("=H", tag))
