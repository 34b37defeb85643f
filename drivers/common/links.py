"""Plugging a container: a veth from a bridge into the sandbox, configured like Docker's eth0.

`plug_veth` creates the pair in the namespace that holds the bridge with the peer born directly
in the sandbox (no rename dance across namespaces), and `configure` gives the sandbox side its
name, MAC, MTU, address and optional default route. Both are used by the overlay leg (br0 in the
overlay namespace) and the gateway leg (docker_gwbridge in the host); macvlan uses `configure`.
"""

from __future__ import annotations

import ipaddress
import os

from pyroute2.netlink.exceptions import NetlinkError

from netdiag.drivers.common.pyroute import index_of, netlink_in
from netdiag.errors import DriverError


def plug_veth(bridge_ns: str, bridge: str, host_side: str, sandbox: str, temporary: str,
              mtu: int) -> None:
    """veth `host_side` on `bridge` in `bridge_ns`, its peer `temporary` in `sandbox`."""
    target = os.open(sandbox, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netlink_in(bridge_ns) as ipr:
            ipr.link("add", ifname=host_side, kind="veth", mtu=mtu,
                     peer={"ifname": temporary, "net_ns_fd": target, "mtu": mtu})
            index = index_of(ipr, host_side)
            ipr.link("set", index=index, master=index_of(ipr, bridge), state="up")
    except NetlinkError as exc:
        raise DriverError(f"cannot add veth {host_side} to {bridge}: "
                          f"{os.strerror(exc.code)}") from None
    finally:
        os.close(target)


def configure(sandbox: str, current: str, ifname: str, mac: str, mtu: int, cidr: str,
              gateway: str = "") -> None:
    """Rename `current` to `ifname` in the sandbox and give it MAC, MTU, address, route."""
    network = ipaddress.ip_interface(cidr)
    try:
        with netlink_in(sandbox) as ipr:
            ipr.link("set", index=index_of(ipr, "lo"), state="up")
            index = index_of(ipr, current)
            changes = {"ifname": ifname, "mtu": mtu}
            if mac:
                changes["address"] = mac
            ipr.link("set", index=index, **changes)
            ipr.addr("add", index=index, address=str(network.ip),
                     prefixlen=network.network.prefixlen)
            ipr.link("set", index=index, state="up")
            if gateway:
                ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index)
    except NetlinkError as exc:
        raise DriverError(f"cannot configure {ifname} in {sandbox}: "
                          f"{os.strerror(exc.code)}") from None


def delete_link(namespace: str, name: str) -> None:
    """Delete a link if it is still there (deleting one veth end removes both)."""
    try:
        with netlink_in(namespace) as ipr:
            found = ipr.link_lookup(ifname=name)
            if found:
                ipr.link("del", index=found[0])
    except NetlinkError as exc:
        raise DriverError(f"cannot delete {name} in {namespace}: "
                          f"{os.strerror(exc.code)}") from None
