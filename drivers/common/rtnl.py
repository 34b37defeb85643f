"""The bridge driver's netlink requests, on a NETLINK_ROUTE socket of the netlink core.

Joining an endpoint is the driver's hot path (a lab or a benchmark makes hundreds), and
pyroute2 spends about 1 ms of Python per request (netdiag/netlink.py says more), more than the
kernel takes. The few requests the driver sends are small and fixed, so they are packed here
with struct: create a link (bridge, or veth whose peer is born in another namespace), set it
up, set hairpin mode, delete it, look one up by name, add an address, add a default route.
Every request asks for an acknowledgement and a kernel error is raised as RtnlError (the
core's NetlinkError) carrying the errno, which the step modules turn into the project's kinds.

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
    Socket,
    attributes,
    pack_attr,
    pack_nested,
)

RtnlError = NetlinkError  # the name the step modules catch

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_NEWROUTE = 20, 24
AF_UNSPEC, AF_INET, AF_BRIDGE = 0, 2, 7
IFF_UP = 0x1

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_PROTINFO, IFLA_LINKINFO, IFLA_NET_NS_FD = 12, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # the bridge port's hairpin flag
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_OIF, RTA_GATEWAY = 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, proto, scope, type


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end of a veth, created directly in the namespace open as `netns_fd`."""

    name: str
    mtu: int
    mac: str
    netns_fd: int


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


class Rtnl(Socket):
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

    def add_link(self, name: str, kind: str, *, mtu: int, up: bool = True, master: int = 0,
                 peer: Peer | None = None) -> None:
        attrs = [pack_attr(IFLA_IFNAME, _name(name)), pack_attr(IFLA_MTU, _u32(mtu))]
        if master:
            attrs.append(pack_attr(IFLA_MASTER, _u32(master)))
        info = [pack_attr(IFLA_INFO_KIND, kind.encode())]
        if peer is not None:
            peer_msg = IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + b"".join((
                pack_attr(IFLA_IFNAME, _name(peer.name)), pack_attr(IFLA_MTU, _u32(peer.mtu)),
                pack_attr(IFLA_ADDRESS, _mac(peer.mac)),
                pack_attr(IFLA_NET_NS_FD, _u32(peer.netns_fd))))
            info.append(pack_nested(IFLA_INFO_DATA, pack_attr(VETH_INFO_PEER, peer_msg)))
        attrs.append(pack_nested(IFLA_LINKINFO, *info))
        flags = IFF_UP if up else 0
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                      IFINFOMSG.pack(AF_UNSPEC, 0, 0, flags, IFF_UP) + b"".join(attrs))

    def set_up(self, index: int) -> None:
        self._request(RTM_NEWLINK, 0, IFINFOMSG.pack(AF_UNSPEC, 0, index, IFF_UP, IFF_UP))

    def set_hairpin(self, index: int) -> None:
        self._request(RTM_SETLINK, 0, IFINFOMSG.pack(AF_BRIDGE, 0, index, 0, 0)
                      + pack_nested(IFLA_PROTINFO, pack_attr(IFLA_BRPORT_MODE, b"\x01")))

    def delete_link(self, index: int) -> None:
        self._request(RTM_DELLINK, 0, IFINFOMSG.pack(AF_UNSPEC, 0, index, 0, 0))

    # addresses and routes -------------------------------------------------------------------

    def add_address(self, index: int, address: str, prefixlen: int, broadcast: str) -> None:
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                      IFADDRMSG.pack(AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
                      + pack_attr(IFA_LOCAL, _ip(address)) + pack_attr(IFA_ADDRESS, _ip(address))
                      + pack_attr(IFA_BROADCAST, _ip(broadcast)))

    def add_default_route(self, index: int, gateway: str) -> None:
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL,
                      RTMSG.pack(AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                                 RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
                      + pack_attr(RTA_GATEWAY, _ip(gateway)) + pack_attr(RTA_OIF, _u32(index)))

