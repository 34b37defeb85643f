"""Collector: IPv4 and IPv6 addresses (RTM_GETADDR dump) → Address records."""

from __future__ import annotations

import struct
from socket import AF_INET, AF_INET6, AF_UNSPEC

from netdiag.collect import rtnl
from netdiag.collect.links import names_by_index
from netdiag.collect.routes import SCOPES
from netdiag.model import Address

NAME = "addresses"

IFADDRMSG = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST = 1, 2, 3, 4


def collect(ctx) -> dict:
    names = names_by_index(ctx)
    request = IFADDRMSG.pack(AF_UNSPEC, 0, 0, 0, 0)
    messages = rtnl.dump(ctx, rtnl.RTM_GETADDR, request, IFADDRMSG.size)
    addresses = tuple(_address(m, names) for m in messages)
    return {"addresses": tuple(a for a in addresses if a is not None)}


def _address(msg: rtnl.Message, names: dict[int, str]) -> Address | None:
    family, prefixlen, _, scope, index = IFADDRMSG.unpack(msg.header)
    if family not in (AF_INET, AF_INET6):
        return None
    # On a point-to-point link IFA_ADDRESS is the peer; IFA_LOCAL is always our own address.
    address = rtnl.ip(msg.attrs, IFA_LOCAL) or rtnl.ip(msg.attrs, IFA_ADDRESS)
    return Address(
        ifindex=index,
        ifname=names.get(index, ""),
        family=4 if family == AF_INET else 6,
        address=address,
        prefixlen=prefixlen,
        scope=SCOPES.get(scope, str(scope)),
        broadcast=rtnl.ip(msg.attrs, IFA_BROADCAST),
        label=rtnl.string(msg.attrs, IFA_LABEL),
    )
