"""Step: the devices — the bridge of a network and the veth pair of each endpoint.

All functions take an IPRoute socket opened inside the namespace they act on. The host-side
veth is created already enslaved, up and with the network MTU in one netlink request; its peer
gets the same MTU and the endpoint's MAC, and is later moved into the sandbox, renamed (eth0,
eth1...) and brought up — rename and up in one request, which the kernel applies in that order.
"""

from __future__ import annotations

import os

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netdiag.errors import Conflict, DriverError, NotFound

ENOENT, EEXIST, ENODEV = 2, 17, 19


def index_of(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise NotFound(f"no device {name}")
    return found[0]


def create_bridge(ipr: IPRoute, name: str, mtu: int) -> int:
    try:
        ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
    except NetlinkError as exc:
        if exc.code == EEXIST:
            raise Conflict(f"device {name} already exists") from None
        raise DriverError(f"cannot create bridge {name}: {exc.args[-1]}") from None
    index = index_of(ipr, name)
    ipr.link("set", index=index, state="up")
    return index


def delete_link(ipr: IPRoute, name: str, only_mac: str = "") -> None:
    """Delete a device (only if it has MAC `only_mac`, when given); a missing one is fine."""
    try:
        index = index_of(ipr, name)
        if only_mac and ipr.get_links(index)[0].get("address") != only_mac:
            return
        ipr.link("del", index=index)
    except NotFound:
        return
    except NetlinkError as exc:
        if exc.code not in (ENOENT, ENODEV):
            raise DriverError(f"cannot delete {name}: {exc.args[-1]}") from None


def create_veth(ipr: IPRoute, host_name: str, peer_name: str, *, mtu: int, bridge: int,
                mac: str) -> None:
    try:
        ipr.link("add", ifname=host_name, kind="veth", mtu=mtu, master=bridge, state="up",
                 peer={"ifname": peer_name, "mtu": mtu, "address": mac})
    except NetlinkError as exc:
        if exc.code == EEXIST:
            raise Conflict(f"device {host_name} or {peer_name} already exists") from None
        raise DriverError(f"cannot create veth {host_name}: {exc.args[-1]}") from None


def set_hairpin(ipr: IPRoute, name: str) -> None:
    # IFLA_BRPORT_MODE is the hairpin flag (pyroute2 names it "mode").
    ipr.brport("set", index=index_of(ipr, name), mode=1)


def move_to_namespace(ipr: IPRoute, name: str, namespace_path: str) -> None:
    fd = os.open(namespace_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ipr.link("set", index=index_of(ipr, name), net_ns_fd=fd)
    finally:
        os.close(fd)


def rename_up(ipr: IPRoute, name: str, new_name: str) -> int:
    """Rename a (down) device and bring it up; returns its index."""
    index = index_of(ipr, name)
    try:
        ipr.link("set", index=index, ifname=new_name, state="up")
    except NetlinkError as exc:
        if exc.code == EEXIST:
            raise Conflict(f"the sandbox already has a device {new_name}") from None
        raise DriverError(f"cannot rename {name} to {new_name}: {exc.args[-1]}") from None
    return index
