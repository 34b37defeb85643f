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

from netdiag.drivers.common import device, state
from netdiag.drivers.macvlan.options import MacvlanOptions
from netdiag.errors import DriverError, KernelFeatureMissing, NotFound
from netdiag.netns import entered
from netdiag.rtnl_write import Rtnl, RtnlError, VethPeer, vlan_data

# What the kernel says when a link kind's module is missing.
_NO_KIND = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL)


def internal_names(network_id: str) -> tuple[str, str]:
    return f"dm-{network_id[:12]}", f"dp-{network_id[:12]}"


def prepare(host: str, network_id: str, options: MacvlanOptions) -> tuple[str, bool]:
    """(parent name, whether the driver created it)."""
    present = {link.name for link in state.read(host, state.LINKS).links}
    with entered(host), Rtnl() as rt:
        if not options.parent:
            parent, peer = internal_names(network_id)
            try:
                rt.add_link(parent, "veth", peer=VethPeer(peer, 1500))
                rt.set_up(device.index_of(rt, peer))  # a peer's flags are ignored at creation
            except RtnlError as exc:
                raise DriverError(f"cannot create the internal parent {parent}: {exc}") \
                    from None
            return parent, True
        if options.parent in present:
            return options.parent, False
        if options.vlan is None:
            raise NotFound(f"-o parent interface {options.parent} was not found on host "
                           f"{host}")
        base, tag = options.vlan
        if base not in present:
            raise NotFound(f"-o parent interface {base} (for {options.parent}) was not found "
                           f"on host {host}")
        try:
            rt.add_link(options.parent, "vlan", lower=device.index_of(rt, base),
                        data=vlan_data(tag))
        except RtnlError as exc:
            if exc.code in _NO_KIND:
                raise KernelFeatureMissing(
                    f"cannot create the 802.1q subinterface {options.parent}: this kernel "
                    "lacks 802.1q VLAN support (8021q)") from None
            raise DriverError(f"cannot create {options.parent}: {exc}") from None
        return options.parent, True


def remove(host: str, parent: str) -> None:
    with entered(host), Rtnl() as rt:
        device.delete_link(rt, parent)


def mtu_of(host: str, parent: str) -> int:
    link = state.link_named(state.read(host, state.LINKS), parent)
    if link is None:
        raise DriverError(f"no link {parent}")
    return link.mtu
