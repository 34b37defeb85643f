"""Plugging a container: a veth from a bridge into the sandbox, configured like Docker's eth0.

`plug_veth` creates the pair in the namespace that holds the bridge with the peer born directly
in the sandbox (no rename dance across namespaces), and `configure` gives the sandbox side its
name, MAC, MTU, address and optional default route — and on a dual-stack network its IPv6
address (`nodad`, as Docker adds it) and optional IPv6 default route. Both are used by the
overlay leg (br0 in the overlay namespace) and the gateway leg (docker_gwbridge in the host);
macvlan uses `configure`.
Requests go over netdiag's netlink sockets (netdiag/rtnl_write.py), opened inside the namespace.
"""

from __future__ import annotations

import errno
import ipaddress
import os

from netdiag.drivers.common.device import LOOPBACK_INDEX, delete_link, index_of
from netdiag.errors import DriverError
from netdiag.netns import entered
from netdiag.rtnl_write import Rtnl, RtnlError, VethPeer


def plug_veth(bridge_ns: str, bridge: str, host_side: str, sandbox: str, temporary: str,
              mtu: int) -> None:
    """veth `host_side` on `bridge` in `bridge_ns`, its peer `temporary` in `sandbox`."""
    target = os.open(sandbox, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with entered(bridge_ns), Rtnl() as rt:
            rt.add_link(host_side, "veth", mtu=mtu, master=index_of(rt, bridge),
                        peer=VethPeer(temporary, mtu, netns_fd=target))
    except RtnlError as exc:
        raise DriverError(f"cannot add veth {host_side} to {bridge}: {exc}") from None
    finally:
        os.close(target)


def configure(sandbox: str, current: str, ifname: str, mac: str, mtu: int, cidr: str,
              gateway: str = "", cidr6: str = "", gateway6: str = "") -> None:
    """Rename `current` to `ifname` in the sandbox and give it MAC, MTU, address, route; and
    the IPv6 address `cidr6` and IPv6 default route via `gateway6` when given."""
    interface = ipaddress.ip_interface(cidr)
    try:
        with entered(sandbox), Rtnl() as rt:
            rt.set_up(LOOPBACK_INDEX)
            index = index_of(rt, current)
            rt.set_link(index, name=ifname, mac=mac, mtu=mtu)
            rt.add_address(index, str(interface.ip), interface.network.prefixlen,
                           str(interface.network.broadcast_address))
            rt.set_up(index)
            if gateway:
                rt.add_default_route(index, gateway, replace=True)
            if cidr6:
                interface6 = ipaddress.ip_interface(cidr6)
                rt.add_address(index, str(interface6.ip), interface6.network.prefixlen)
            if gateway6:
                _add_default_route6(rt, index, gateway6)
    except RtnlError as exc:
        raise DriverError(f"cannot configure {ifname} in {sandbox}: {exc}") from None


def _add_default_route6(rt: Rtnl, index: int, gateway6: str) -> None:
    # A sandbox keeps the IPv6 default route of the first network that gave it one, as the
    # bridge driver does (Docker picks one gateway endpoint per sandbox and family).
    try:
        rt.route(True, "::/0", oif=index, gateway=gateway6)
    except RtnlError as exc:
        if exc.code != errno.EEXIST:
            raise


def delete_link_in(namespace: str, name: str) -> None:
    """Delete a link in `namespace` if it is still there (deleting one veth end removes both)."""
    with entered(namespace), Rtnl() as rt:
        delete_link(rt, name, where=f" in {namespace}")
