"""The overlay's kernel objects on one host, programmed over netlink.

Per network and host, a namespace `<host>-1-<first 10 of the network id>` (Docker's
`<n>-<id>` with the host's name in front, so a lab's teardown finds it) holds `br0` with the
gateway address (and the IPv6 gateway on a dual-stack network) and `vxlan0` enslaved to it.
The vxlan device is asked for in the host namespace and born in the overlay namespace, as
Docker's is created in the host and moved: its UDP socket (port 4789) stays in the host, where
the underlay is, while the device forwards in the overlay namespace. Remote endpoints become a
permanent FDB entry (`dst` = the remote VTEP) and a permanent neighbour entry on vxlan0 per
address (IPv4, and IPv6 on a dual-stack network); the vxlan's proxy flag then answers ARP and
IPv6 neighbour solicitations for them locally (the proxy drops a solicitation for an address
without an entry, so an IPv6 peer needs its own). Every function enters the namespaces it
needs; none touches the namespace it is called from. Writes go over netdiag/rtnl_write.py,
reads through the snapshot's collectors (drivers/common/state.py).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from netdiag import netns
from netdiag.drivers.common import device, state
from netdiag.drivers.common.namespaces import namespace_path
from netdiag.drivers.overlay.controlplane import Peer
from netdiag.errors import DriverError, NamespaceGone
from netdiag.rtnl_write import Rtnl, RtnlError, vxlan_data
from netdiag.store.records import Network

BRIDGE = "br0"
VXLAN = "vxlan0"
VXLAN_PORT = 4789
EPOCH = 1  # Docker's first sandbox number for a network


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
    IPv4 address on a link that is not one of ours (bridges, vxlans, veths)."""
    found = state.read(host)
    by_name = {link.name: link for link in found.links}
    candidates = [r.dev for r in found.routes
                  if r.family == 4 and r.dst == "default" and r.table == 254 and r.dev]
    candidates += [a.ifname for a in found.addresses
                   if a.ifname in by_name and by_name[a.ifname].kind not in ("bridge", "vxlan")
                   and not a.ifname.startswith("veth")]
    for name in candidates:
        for address in state.addresses_of(found, name):
            if address.scope == "global":
                return address.address, by_name[name].mtu
    raise DriverError(f"host {host} has no underlay address (no IPv4 address outside "
                      "bridges and veths)")


def create_sandbox(host: str, network: Network, vni: int, mtu: int, gateway6: str = "") -> str:
    """Create the network's namespace on `host` with br0 (the gateway, and `gateway6`, a CIDR,
    on a dual-stack network) and vxlan0; returns its path."""
    name = sandbox_name(host, network)
    path = netns.create_named(name)
    try:
        subnet = ipaddress.ip_network(network.subnet)
        with netns.entered(path), Rtnl() as rt:
            rt.set_up(device.LOOPBACK_INDEX)
            bridge = device.create_bridge(rt, BRIDGE, mtu)
            if network.gateway:
                rt.add_address(bridge, network.gateway, subnet.prefixlen,
                               str(subnet.broadcast_address))
            if gateway6:
                address6, prefixlen6 = gateway6.split("/")
                rt.add_address(bridge, address6, int(prefixlen6))
        _add_vxlan(host, path, vni, mtu)
        with netns.entered(path), Rtnl() as rt:
            rt.set_link(device.index_of(rt, VXLAN), master=bridge, up=True)
    except RtnlError as exc:
        netns.delete_named(name)
        raise DriverError(f"cannot build the overlay namespace {name}: {exc}") from None
    except BaseException:
        netns.delete_named(name)
        raise
    return path


def _add_vxlan(host: str, sandbox: str, vni: int, mtu: int) -> None:
    """vxlan0, asked for in `host` and born in the overlay namespace: its UDP socket belongs
    to the namespace the request came from (the kernel's link netns), where the underlay is."""
    target = os.open(sandbox, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netns.entered(host), Rtnl() as rt:
            rt.add_link(VXLAN, "vxlan", mtu=mtu, up=False,
                        netns_fd=target,
                        data=vxlan_data(vni, VXLAN_PORT, learning=True, proxy=True,
                                        l2miss=True, l3miss=True))
    except RtnlError as exc:
        raise DriverError(f"cannot create the vxlan device for VNI {vni} on {host}: "
                          f"{exc}") from None
    finally:
        os.close(target)


def delete_sandbox(host: str, network: Network) -> None:
    name = sandbox_name(host, network)
    if (netns.NAMED_DIR / name).exists():
        netns.delete_named(name)


def _peer_change(path: str, peer: Peer, add: bool) -> None:
    try:
        with netns.entered(path), Rtnl() as rt:
            vxlan = device.index_of(rt, VXLAN)
            addresses = [a for a in (peer.ip, peer.ip6) if a]
            if add:
                rt.fdb(True, vxlan, peer.mac, peer.vtep)
                for address in addresses:
                    rt.neighbour(vxlan, address, peer.mac)
                return
            for remove in [lambda: rt.fdb(False, vxlan, peer.mac, peer.vtep)] + [
                    lambda a=a: rt.neighbour(vxlan, a) for a in addresses]:
                try:
                    remove()
                except RtnlError:
                    pass  # already gone: leaving is idempotent
    except RtnlError as exc:
        raise DriverError(f"cannot {'add' if add else 'remove'} overlay peer {peer.ip} in "
                          f"{path}: {exc}") from None


def add_peer(path: str, peer: Peer) -> None:
    _peer_change(path, peer, add=True)


def remove_peer(path: str, peer: Peer) -> None:
    try:
        _peer_change(path, peer, add=False)
    except (NamespaceGone, DriverError):
        pass  # the overlay namespace or its vxlan is gone, and the entries with it
