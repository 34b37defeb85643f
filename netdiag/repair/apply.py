"""Carrying out a repair step: one function per step kind, in one table.

`apply(step)` makes the change in the namespace the calling thread has entered
(netdiag/repair/executor.py enters it, after its policy allowed the step). Links, routes,
neighbours and FDB entries are changed over netlink (netdiag/rtnl_write.py, on the one netlink
core), iptables rules by the iptables program (the interface iptables has), sysctls through
/proc/sys as the namespace sees it, and what a repair records in netdiag's drivers' store
through the store's own transaction (no namespace is entered for it). The step records and
the commands a dry run prints are netdiag/findings/repair.py's.
"""

from __future__ import annotations

import errno

from netdiag import capabilities, helper
from netdiag.errors import DriverError, NotFound, UsageError
from netdiag.findings.repair import (
    AddAddress,
    AddFdbEntry,
    AddIptablesRule,
    AddRoute,
    DeleteFdbEntry,
    DeleteIptablesRule,
    DeleteNeighbour,
    DeleteRoute,
    ManualStep,
    RecordNetworkMtu,
    RepairStep,
    ReplaceNeighbour,
    SetChainPolicy,
    SetHairpin,
    SetLinkUp,
    SetMaster,
    SetMtu,
    SetSysctl,
)


def apply(step: RepairStep) -> None:
    """Make `step`'s change in the namespace this thread is in."""
    APPLIERS[type(step)](step)


def _manual(step: ManualStep) -> None:
    raise UsageError("a manual step is carried out by a person")


def _with_rtnl(action, step) -> None:
    """`action(rtnl, step)` on a NETLINK_ROUTE socket of the namespace the thread is in; a
    kernel refusal becomes DriverError with the errno's text (PermissionDenied naming
    CAP_NET_ADMIN for EPERM: root in a container without it)."""
    from netdiag.rtnl_write import Rtnl, RtnlError

    with Rtnl() as rtnl:
        try:
            action(rtnl, step)
        except RtnlError as exc:
            if exc.code in (errno.EPERM, errno.EACCES):
                raise capabilities.refused("kernel refused", "NET_ADMIN") from None
            raise DriverError(f"kernel refused: {exc}") from None


def _ifindex(rtnl, name: str) -> int:
    from netdiag.rtnl_write import RtnlError

    try:
        return rtnl.link(name)[0]
    except RtnlError:
        raise NotFound(f"no interface {name}") from None


def _set_mtu(rtnl, step: SetMtu) -> None:
    rtnl.set_mtu(_ifindex(rtnl, step.link), step.mtu)


def _set_up(rtnl, step: SetLinkUp) -> None:
    rtnl.set_up(_ifindex(rtnl, step.link))


def _set_master(rtnl, step: SetMaster) -> None:
    rtnl.set_master(_ifindex(rtnl, step.link), _ifindex(rtnl, step.bridge))


def _set_hairpin(rtnl, step: SetHairpin) -> None:
    rtnl.set_hairpin(_ifindex(rtnl, step.link))


def _add_address(rtnl, step: AddAddress) -> None:
    import ipaddress

    interface = ipaddress.ip_interface(step.cidr)
    rtnl.add_address(_ifindex(rtnl, step.link), str(interface.ip), interface.network.prefixlen,
                     str(interface.network.broadcast_address))


def _route(add: bool):
    def change(rtnl, step: AddRoute | DeleteRoute) -> None:
        rtnl.route(add, step.dst, oif=_ifindex(rtnl, step.dev) if step.dev else 0,
                   gateway=step.gateway, table=step.table, metric=step.metric)
    return change


def _fdb(add: bool):
    def change(rtnl, step: AddFdbEntry | DeleteFdbEntry) -> None:
        rtnl.fdb(add, _ifindex(rtnl, step.dev), step.mac, step.dst)
    return change


def _delete_neighbour(rtnl, step: DeleteNeighbour) -> None:
    rtnl.neighbour(_ifindex(rtnl, step.dev), step.address)


def _replace_neighbour(rtnl, step: ReplaceNeighbour) -> None:
    rtnl.neighbour(_ifindex(rtnl, step.dev), step.address, step.mac)


def _set_sysctl(step: SetSysctl) -> None:
    if not step.name.startswith("net.") or ".." in step.name:
        raise UsageError(f"refusing to set {step.name}: only net.* sysctls are repaired")
    # Interface names may hold dots (eth0.10); they are the fourth component of conf keys.
    parts = step.name.split(".")
    if len(parts) > 5 and parts[2] == "conf":
        parts = parts[:3] + [".".join(parts[3:-1]), parts[-1]]
    path = "/proc/sys/" + "/".join(parts)
    try:
        with open(path, "w") as handle:  # /proc/sys/net is per namespace for the writing thread
            handle.write(step.value)
    except FileNotFoundError:
        raise NotFound(f"no sysctl {step.name} in this namespace") from None
    except PermissionError:
        raise capabilities.refused(f"cannot set {step.name}", "NET_ADMIN") from None
    except OSError as exc:
        raise DriverError(f"cannot set {step.name}: {exc.strerror}") from None


def _iptables(step: AddIptablesRule | DeleteIptablesRule | SetChainPolicy) -> None:
    tool = "iptables" if step.family == 4 else "ip6tables"
    if isinstance(step, AddIptablesRule):
        where = ["-I", step.chain, str(step.position)] if step.position else ["-A", step.chain]
        argv = [tool, "-w", "-t", step.table, *where, *step.args]
    elif isinstance(step, DeleteIptablesRule):
        argv = [tool, "-w", "-t", step.table, "-D", step.chain, *step.args]
    else:
        argv = [tool, "-w", "-t", step.table, "-P", step.chain, step.policy]
    helper.run(argv)


def _record_network_mtu(step: RecordNetworkMtu) -> None:
    from netdiag.store import open_store

    with open_store(step.store) as store, store.transaction() as tx:
        tx.record_mtu(step.network, step.mtu)


def _rtnl(action):
    return lambda step: _with_rtnl(action, step)


APPLIERS = {
    SetMtu: _rtnl(_set_mtu),
    SetLinkUp: _rtnl(_set_up),
    SetMaster: _rtnl(_set_master),
    SetHairpin: _rtnl(_set_hairpin),
    AddAddress: _rtnl(_add_address),
    SetSysctl: _set_sysctl,
    AddRoute: _rtnl(_route(add=True)),
    DeleteRoute: _rtnl(_route(add=False)),
    DeleteFdbEntry: _rtnl(_fdb(add=False)),
    AddFdbEntry: _rtnl(_fdb(add=True)),
    DeleteNeighbour: _rtnl(_delete_neighbour),
    ReplaceNeighbour: _rtnl(_replace_neighbour),
    AddIptablesRule: _iptables,
    DeleteIptablesRule: _iptables,
    SetChainPolicy: _iptables,
    RecordNetworkMtu: _record_network_mtu,
    ManualStep: _manual,
}
