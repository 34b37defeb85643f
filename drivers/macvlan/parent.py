"""The macvlan parent in the host namespace: given, an 802.1q subinterface, or internal.

An existing interface is used as is. A parent like `eth1.10` that does not exist yet becomes an
802.1q subinterface of eth1 — on kernels with 8021q; elsewhere (like this project's CI kernel)
the network is refused with a clear message instead of falling back to an untagged parent.
With no parent the network is internal: Docker makes a dummy link, which this kernel lacks, so
netdiag makes a veth pair `dm-<id>`/`dp-<id>` (both up, so macvlan children have carrier) whose
`dm-` end is the parent. Parents the driver created are recorded and removed with the network.
"""

from __future__ import annotations

import errno
import os

from pyroute2.netlink.exceptions import NetlinkError

from netdiag.drivers.common.pyroute import index_of, netlink_in
from netdiag.drivers.macvlan.options import MacvlanOptions
from netdiag.errors import DriverError, KernelFeatureMissing, NotFound

# What the kernel says when a link kind's module is missing.
_NO_KIND = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL)


def internal_names(network_id: str) -> tuple[str, str]:
    return f"dm-{network_id[:12]}", f"dp-{network_id[:12]}"


def prepare(host: str, network_id: str, options: MacvlanOptions) -> tuple[str, bool]:
    """(parent name, whether the driver created it)."""
    with netlink_in(host) as ipr:
        if not options.parent:
            parent, peer = internal_names(network_id)
            ipr.link("add", ifname=parent, kind="veth", peer=peer)
            for name in (parent, peer):
                ipr.link("set", index=index_of(ipr, name), state="up")
            return parent, True
        if ipr.link_lookup(ifname=options.parent):
            return options.parent, False
        if options.vlan is None:
            raise NotFound(f"-o parent interface {options.parent} was not found on host "
                           f"{host}")
        base, tag = options.vlan
        if not ipr.link_lookup(ifname=base):
            raise NotFound(f"-o parent interface {base} (for {options.parent}) was not found "
                           f"on host {host}")
        try:
            ipr.link("add", ifname=options.parent, kind="vlan", link=index_of(ipr, base),
                     vlan_id=tag)
        except NetlinkError as exc:
            if exc.code in _NO_KIND:
                raise KernelFeatureMissing(
                    f"cannot create the 802.1q subinterface {options.parent}: this kernel "
                    "lacks 802.1q VLAN support (8021q)") from None
            raise DriverError(f"cannot create {options.parent}: {os.strerror(exc.code)}") \
                from None
        ipr.link("set", index=index_of(ipr, options.parent), state="up")
        return options.parent, True


def remove(host: str, parent: str) -> None:
    with netlink_in(host) as ipr:
        found = ipr.link_lookup(ifname=parent)
        if found:
            ipr.link("del", index=found[0])


def mtu_of(host: str, parent: str) -> int:
    with netlink_in(host) as ipr:
        return ipr.get_links(index_of(ipr, parent))[0].get_attr("IFLA_MTU")
