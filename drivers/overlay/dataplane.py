"""The overlay's kernel objects on one host, programmed over netlink.

Per network and host, a namespace `<host>-1-<first 10 of the network id>` (Docker's
`<n>-<id>` with the host's name in front, so a lab's teardown finds it) holds `br0` with the
gateway address and `vxlan0` enslaved to it. The vxlan device is created in the host namespace
and then moved, exactly like Docker does: its UDP socket (port 4789) stays in the host, where
the underlay is, while the device forwards in the overlay namespace. Remote endpoints become a
permanent FDB entry (`dst` = the remote VTEP) and a permanent neighbour entry on vxlan0; the
vxlan's proxy flag then answers ARP for them locally. Every function enters the namespaces it
needs; none touches the namespace it is called from. Why pyroute2 here still: the VXLAN
device carries a dozen IFLA_VXLAN_* attributes and is created once per network and host, not
per request on a hot path; moving it to netdiag/rtnl_write.py is left for later.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import ndmsg

from netdiag import netns
from netdiag.drivers.api import Network
from netdiag.drivers.common.namespaces import namespace_path
from netdiag.drivers.common.pyroute import index_of, netlink_in
from netdiag.drivers.overlay.controlplane import Peer
from netdiag.errors import DriverError, NamespaceGone

BRIDGE = "br0"
VXLAN = "vxlan0"
VXLAN_PORT = 4789
EPOCH = 1  # Docker's first sandbox number for a network
NUD_PERMANENT = ndmsg.states["permanent"]


def host_name(host: str) -> str:
    """Hosts are named namespaces (never the root namespace): /run/netns/NAME → NAME."""
    path = Path(namespace_path(host))
    if path.parent != netns.NAMED_DIR:
        raise DriverError(f"overlay hosts must be named namespaces under {netns.NAMED_DIR}, "
                          f"not {host}")
    return path.name


def sandbox_name(host: str, network: Network) -> str:
    return f"{host_name(host)}-{EPOCH}-{network.id[:10]}"


def sandbox_path(host: str, network: Network) -> str:
    return str(netns.NAMED_DIR / sandbox_name(host, network))


def underlay(host: str) -> tuple[str, int]:
    """(VTEP address, MTU) of the host: the default route's link, else the first global
    IPv4 address on a link that is not one of ours (bridges, veths)."""
    with netlink_in(host) as ipr:
        addresses = ipr.get_addr(family=2)
        # Only the links that have an address: a host with many containers has hundreds of
        # veths, and dumping them all for every endpoint made joining O(N²).
        links = {index: ipr.get_links(index)[0] for index in {a["index"] for a in addresses}}
        candidates = []
        for route in ipr.get_default_routes(family=2):
            candidates.append(route.get_attr("RTA_OIF"))
        for addr in addresses:
            link = links.get(addr["index"])
            name = link.get_attr("IFLA_IFNAME") if link else ""
            kind = _kind(link) if link else ""
            if addr["scope"] == 0 and kind not in ("bridge", "vxlan") and \
                    not name.startswith("veth"):
                candidates.append(addr["index"])
        for index in candidates:
            for addr in addresses:
                if addr["index"] == index and addr["scope"] == 0:
                    return addr.get_attr("IFA_ADDRESS"), links[index].get_attr("IFLA_MTU")
    raise DriverError(f"host {host} has no underlay address (no IPv4 address outside "
                      "bridges and veths)")


def _kind(link) -> str:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info else ""


def create_sandbox(host: str, network: Network, vni: int, mtu: int) -> str:
    """Create the network's namespace on `host` with br0 and vxlan0; returns its path."""
    name = sandbox_name(host, network)
    path = netns.create_named(name)
    try:
        prefix = ipaddress.ip_network(network.subnet).prefixlen
        with netlink_in(path) as ipr:
            ipr.link("set", index=index_of(ipr, "lo"), state="up")
            ipr.link("add", ifname=BRIDGE, kind="bridge", mtu=mtu)
            bridge = index_of(ipr, BRIDGE)
            if network.gateway:
                ipr.addr("add", index=bridge, address=network.gateway, prefixlen=prefix)
            ipr.link("set", index=bridge, state="up")
        _add_vxlan(host, path, network, vni, mtu)
        with netlink_in(path) as ipr:
            vxlan = index_of(ipr, f"vx-{vni:06x}-{network.id[:5]}")
            ipr.link("set", index=vxlan, ifname=VXLAN, master=index_of(ipr, BRIDGE))
            ipr.link("set", index=vxlan, state="up")
    except BaseException:
        netns.delete_named(name)
        raise
    return path


def _add_vxlan(host: str, sandbox: str, network: Network, vni: int, mtu: int) -> None:
    temporary = f"vx-{vni:06x}-{network.id[:5]}"  # 15 characters, the IFNAMSIZ limit
    target = os.open(sandbox, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netlink_in(host) as ipr:
            ipr.link("add", ifname=temporary, kind="vxlan", vxlan_id=vni,
                     vxlan_port=VXLAN_PORT, vxlan_learning=1, vxlan_proxy=1, vxlan_l2miss=1,
                     vxlan_l3miss=1, mtu=mtu)
            try:
                ipr.link("set", index=index_of(ipr, temporary), net_ns_fd=target)
            except NetlinkError:
                ipr.link("del", index=index_of(ipr, temporary))
                raise
    except NetlinkError as exc:
        raise DriverError(f"cannot create the vxlan device for VNI {vni} on {host}: "
                          f"{os.strerror(exc.code)}") from None
    finally:
        os.close(target)


def delete_sandbox(host: str, network: Network) -> None:
    name = sandbox_name(host, network)
    if (netns.NAMED_DIR / name).exists():
        netns.delete_named(name)


def _peer_change(path: str, peer: Peer, add: bool) -> None:
    with netlink_in(path) as ipr:
        vxlan = index_of(ipr, VXLAN)
        if add:
            ipr.fdb("append", ifindex=vxlan, lladdr=peer.mac, dst=peer.vtep)
            ipr.neigh("replace", ifindex=vxlan, dst=peer.ip, lladdr=peer.mac,
                      state=NUD_PERMANENT)
            return
        for verb, args in (("fdb", dict(ifindex=vxlan, lladdr=peer.mac, dst=peer.vtep)),
                           ("neigh", dict(ifindex=vxlan, dst=peer.ip, lladdr=peer.mac))):
            try:
                getattr(ipr, verb)("del", **args)
            except NetlinkError:
                pass  # already gone: leaving is idempotent


def add_peer(path: str, peer: Peer) -> None:
    _peer_change(path, peer, add=True)


def remove_peer(path: str, peer: Peer) -> None:
    try:
        _peer_change(path, peer, add=False)
    except (NamespaceGone, DriverError):
        pass  # the overlay namespace or its vxlan is gone, and the entries with it
