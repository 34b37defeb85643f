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
IFA_FLAGS = 8  # all 32 flag bits; ifaddrmsg holds only the low 8
# Only the flags a rule reads, so that snapshots do not change as DAD runs (tentative) or
# lifetimes pass (deprecated). A failed DAD leaves the address on the interface, unused.
FLAG_NAMES = {0x08: "dadfailed"}  # IFA_F_DADFAILED


def collect(ctx) -> dict:
    names = names_by_index(ctx)
    request = IFADDRMSG.pack(AF_UNSPEC, 0, 0, 0, 0)
    messages = rtnl.dump(ctx, rtnl.RTM_GETADDR, request, IFADDRMSG.size)
    addresses = tuple(_address(m, names) for m in messages)
    return {"addresses": tuple(a for a in addresses if a is not None)}


def _address(msg: rtnl.Message, names: dict[int, str]) -> Address | None:
    family, prefixlen, flags, scope, index = IFADDRMSG.unpack(msg.header)
    if family not in (AF_INET, AF_INET6):
        return None
    # On a point-to-point link IFA_ADDRESS is the peer; IFA_LOCAL is always our own address.
    address = rtnl.ip(msg.attrs, IFA_LOCAL) or rtnl.ip(msg.attrs, IFA_ADDRESS)
    if len(msg.attrs.get(IFA_FLAGS, b"")) == 4:
        flags = struct.unpack("=I", msg.attrs[IFA_FLAGS])[0]
    return Address(
        ifindex=index,
        ifname=names.get(index, ""),
        family=4 if family == AF_INET else 6,
        address=address,
        prefixlen=prefixlen,
        scope=SCOPES.get(scope, str(scope)),
        broadcast=rtnl.ip(msg.attrs, IFA_BROADCAST),
        label=rtnl.string(msg.attrs, IFA_LABEL),
        flags=tuple(name for bit, name in FLAG_NAMES.items() if flags & bit),
    )
