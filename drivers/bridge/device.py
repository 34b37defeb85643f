"""Step: the devices — the bridge of a network and the veth pair of each endpoint.

All functions take an IPRoute socket opened inside the namespace they act on. A veth pair is
made in one netlink request from the host namespace: the host side enslaved to the bridge, up,
with the network MTU; the peer born directly inside the sandbox under its final name (eth0,
eth1...) with the same MTU and the endpoint's MAC. The kernel ignores a peer's flags at
creation, so the peer is brought up from inside the sandbox."""

from __future__ import annotations

import os

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netdiag.errors import Conflict, DriverError, NotFound

ENOENT, EEXIST, ENODEV = 2, 17, 19
LOOPBACK_INDEX = 1  # lo is always the first device of a network namespace


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


def create_veth(ipr: IPRoute, host_name: str, peer_name: str, sandbox: str, *, mtu: int,
                bridge: int, mac: str) -> None:
    """A veth pair: the host side enslaved and up, the peer born in `sandbox` (still down)."""
    fd = os.open(sandbox, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ipr.link("add", ifname=host_name, kind="veth", mtu=mtu, master=bridge, state="up",
                 peer={"ifname": peer_name, "mtu": mtu, "address": mac, "net_ns_fd": fd})
    except NetlinkError as exc:
        if exc.code == EEXIST:
            raise Conflict(f"device {host_name} exists, or the sandbox already has a device "
                           f"{peer_name}") from None
        raise DriverError(f"cannot create veth {host_name}: {exc.args[-1]}") from None
    finally:
        os.close(fd)


def set_hairpin(ipr: IPRoute, name: str) -> None:
    # IFLA_BRPORT_MODE is the hairpin flag (pyroute2 names it "mode").
    ipr.brport("set", index=index_of(ipr, name), mode=1)


def up(ipr: IPRoute, name: str) -> int:
    """Bring a device up; returns its index."""
    index = index_of(ipr, name)
    ipr.link("set", index=index, state="up")
    return index


def loopback_up(ipr: IPRoute) -> None:
    ipr.link("set", index=LOOPBACK_INDEX, state="up")
