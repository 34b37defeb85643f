"""Step: the devices — the bridge of a network and the veth pair of each endpoint.

All functions take an Rtnl socket opened inside the namespace they act on. A veth pair is made
in one request from the host namespace: the host side enslaved to the bridge, up, with the
network MTU; the peer born directly inside the sandbox under its final name (eth0, eth1...)
with the same MTU and the endpoint's MAC. The kernel ignores a peer's flags at creation, so
the peer is brought up from inside the sandbox.
"""

from __future__ import annotations

import errno
import os

from netdiag.errors import Conflict, DriverError, NetdiagError, NotFound
from netdiag.rtnl_write import Rtnl, RtnlError, VethPeer

LOOPBACK_INDEX = 1  # lo is always the first device of a network namespace
GONE = (errno.ENOENT, errno.ENODEV)


def _failed(exc: RtnlError, what: str, exists: str = "") -> NetdiagError:
    if exc.code == errno.EEXIST and exists:
        return Conflict(exists)
    return DriverError(f"cannot {what}: {exc}")


def index_of(rt: Rtnl, name: str) -> int:
    try:
        return rt.link(name)[0]
    except RtnlError as exc:
        if exc.code in GONE:
            raise NotFound(f"no device {name}") from None
        raise _failed(exc, f"look up {name}") from None


def create_bridge(rt: Rtnl, name: str, mtu: int) -> int:
    try:
        rt.add_link(name, "bridge", mtu=mtu)
    except RtnlError as exc:
        raise _failed(exc, f"create bridge {name}", f"device {name} already exists") from None
    return index_of(rt, name)


def delete_link(rt: Rtnl, name: str, only_mac: str = "", where: str = "") -> None:
    """Delete a device (only if it has MAC `only_mac`, when given); a missing one is fine.
    `where` names the namespace in the error (" in /run/netns/x")."""
    try:
        index, mac = rt.link(name)
        if only_mac and mac != only_mac:
            return
        rt.delete_link(index)
    except RtnlError as exc:
        if exc.code not in GONE:
            raise _failed(exc, f"delete {name}{where}") from None


def create_veth(rt: Rtnl, host_name: str, peer_name: str, sandbox: str, *, mtu: int,
                bridge: int, mac: str) -> None:
    """A veth pair: the host side enslaved and up, the peer born in `sandbox` (still down)."""
    fd = os.open(sandbox, os.O_RDONLY | os.O_CLOEXEC)
    try:
        rt.add_link(host_name, "veth", mtu=mtu, master=bridge,
                    peer=VethPeer(peer_name, mtu, mac, fd))
    except RtnlError as exc:
        raise _failed(exc, f"create veth {host_name}",
                      f"device {host_name} exists, or the sandbox already has a device "
                      f"{peer_name}") from None
    finally:
        os.close(fd)


def set_hairpin(rt: Rtnl, name: str) -> None:
    try:
        rt.set_hairpin(index_of(rt, name))
    except RtnlError as exc:
        raise _failed(exc, f"set hairpin mode on {name}") from None


def up(rt: Rtnl, name: str) -> int:
    """Bring a device up; returns its index."""
    index = index_of(rt, name)
    try:
        rt.set_up(index)
    except RtnlError as exc:
        raise _failed(exc, f"bring {name} up") from None
    return index


def loopback_up(rt: Rtnl) -> None:
    try:
        rt.set_up(LOOPBACK_INDEX)
    except RtnlError as exc:
        raise _failed(exc, "bring lo up") from None
