"""Repair steps: each kind of change netdiag may make, defined once.

A step is a frozen record naming its namespace by id. `command` is the equivalent
ip/bridge/iptables/sysctl command that dry runs print; `apply` makes the change in the
namespace the calling thread has entered (netdiag/repair/executor.py enters it, after its
policy allowed the step). Both live in the step's class, so what a dry run shows and what
`--apply` does cannot drift apart. Links, routes, neighbours and FDB entries are changed over
netlink (netdiag/rtnl_write.py, on the one netlink core), iptables rules by the iptables
program (the interface iptables has), sysctls through /proc/sys as the namespace sees it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from enum import Enum

from netdiag import helper
from netdiag.errors import DriverError, NotFound, UsageError


class Safety(str, Enum):
    SAFE = "safe"  # applied by `repair --apply`
    UNSAFE = "unsafe"  # applied only with `repair --apply --unsafe`
    MANUAL = "manual"  # printed, never applied


def _ns_prefix(netns_name: str) -> str:
    return f"ip netns exec {shlex.quote(netns_name)} " if netns_name else ""


@dataclass(frozen=True, slots=True)
class SetMtu:
    namespace: int
    link: str
    mtu: int

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip link set dev {self.link} mtu {self.mtu}"

    def apply(self) -> None:
        _with_rtnl(_set_mtu, self)


@dataclass(frozen=True, slots=True)
class SetLinkUp:
    namespace: int
    link: str

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip link set dev {self.link} up"

    def apply(self) -> None:
        _with_rtnl(_set_up, self)


@dataclass(frozen=True, slots=True)
class SetMaster:
    """Make a link a port of a bridge (and set it up)."""

    namespace: int
    link: str
    bridge: str

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip link set dev {self.link} master {self.bridge} up"

    def apply(self) -> None:
        _with_rtnl(_set_master, self)


@dataclass(frozen=True, slots=True)
class SetHairpin:
    """Turn hairpin mode on for a bridge port (frames may leave by the port they came in)."""

    namespace: int
    link: str

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}bridge link set dev {self.link} hairpin on"

    def apply(self) -> None:
        _with_rtnl(_set_hairpin, self)


@dataclass(frozen=True, slots=True)
class AddAddress:
    namespace: int
    link: str
    cidr: str  # "172.18.0.1/16"

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip address add {self.cidr} dev {self.link}"

    def apply(self) -> None:
        _with_rtnl(_add_address, self)


@dataclass(frozen=True, slots=True)
class SetSysctl:
    namespace: int
    name: str
    value: str

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}sysctl -w {self.name}={self.value}"

    def apply(self) -> None:
        _set_sysctl(self)


@dataclass(frozen=True, slots=True)
class AddRoute:
    namespace: int
    dst: str
    dev: str = ""
    gateway: str = ""
    table: int = 254
    metric: int = 0

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip route add {self.dst}" + _route_tail(self)

    def apply(self) -> None:
        _with_rtnl(_route(add=True), self)


@dataclass(frozen=True, slots=True)
class DeleteRoute:
    namespace: int
    dst: str
    dev: str = ""
    gateway: str = ""
    table: int = 254
    metric: int = 0

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip route del {self.dst}" + _route_tail(self)

    def apply(self) -> None:
        _with_rtnl(_route(add=False), self)


def _route_tail(step: AddRoute | DeleteRoute) -> str:
    tail = ""
    if step.gateway:
        tail += f" via {step.gateway}"
    if step.dev:
        tail += f" dev {step.dev}"
    if step.table != 254:
        tail += f" table {step.table}"
    if step.metric:
        tail += f" metric {step.metric}"
    return tail


@dataclass(frozen=True, slots=True)
class DeleteFdbEntry:
    namespace: int
    dev: str
    mac: str
    dst: str = ""

    def command(self, ns: str = "") -> str:
        dst = f" dst {self.dst}" if self.dst else ""
        return f"{_ns_prefix(ns)}bridge fdb del {self.mac} dev {self.dev}{dst}"

    def apply(self) -> None:
        _with_rtnl(_fdb(add=False), self)


@dataclass(frozen=True, slots=True)
class AddFdbEntry:
    namespace: int
    dev: str
    mac: str
    dst: str = ""

    def command(self, ns: str = "") -> str:
        dst = f" dst {self.dst}" if self.dst else ""
        return f"{_ns_prefix(ns)}bridge fdb append {self.mac} dev {self.dev}{dst} self permanent"

    def apply(self) -> None:
        _with_rtnl(_fdb(add=True), self)


@dataclass(frozen=True, slots=True)
class DeleteNeighbour:
    namespace: int
    dev: str
    address: str

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip neigh del {self.address} dev {self.dev}"

    def apply(self) -> None:
        _with_rtnl(_delete_neighbour, self)


@dataclass(frozen=True, slots=True)
class ReplaceNeighbour:
    namespace: int
    dev: str
    address: str
    mac: str

    def command(self, ns: str = "") -> str:
        return (f"{_ns_prefix(ns)}ip neigh replace {self.address} lladdr {self.mac} "
                f"dev {self.dev} nud permanent")

    def apply(self) -> None:
        _with_rtnl(_replace_neighbour, self)


@dataclass(frozen=True, slots=True)
class AddIptablesRule:
    """Insert (position ≥ 1) or append (position 0) a rule: `args` as iptables takes them."""

    namespace: int
    table: str
    chain: str
    args: tuple[str, ...]
    position: int = 0
    family: int = 4

    def command(self, ns: str = "") -> str:
        tool = "iptables" if self.family == 4 else "ip6tables"
        where = f"-I {self.chain} {self.position}" if self.position else f"-A {self.chain}"
        return f"{_ns_prefix(ns)}{tool} -t {self.table} {where} {shlex.join(self.args)}"

    def apply(self) -> None:
        _iptables(self)


@dataclass(frozen=True, slots=True)
class DeleteIptablesRule:
    namespace: int
    table: str
    chain: str
    args: tuple[str, ...]
    family: int = 4

    def command(self, ns: str = "") -> str:
        tool = "iptables" if self.family == 4 else "ip6tables"
        return f"{_ns_prefix(ns)}{tool} -t {self.table} -D {self.chain} {shlex.join(self.args)}"

    def apply(self) -> None:
        _iptables(self)


@dataclass(frozen=True, slots=True)
class SetChainPolicy:
    namespace: int
    table: str
    chain: str
    policy: str
    family: int = 4

    def command(self, ns: str = "") -> str:
        tool = "iptables" if self.family == 4 else "ip6tables"
        return f"{_ns_prefix(ns)}{tool} -t {self.table} -P {self.chain} {self.policy}"

    def apply(self) -> None:
        _iptables(self)


@dataclass(frozen=True, slots=True)
class ManualStep:
    """Something a person has to do (or decide); never applied automatically."""

    text: str
    namespace: int | None = None

    def command(self, ns: str = "") -> str:
        return f"# {self.text}"

    def apply(self) -> None:
        raise UsageError("a manual step is carried out by a person")


Step = (SetMtu | SetLinkUp | SetMaster | SetHairpin | AddAddress | SetSysctl | AddRoute
        | DeleteRoute | DeleteFdbEntry | AddFdbEntry | DeleteNeighbour | ReplaceNeighbour
        | AddIptablesRule | DeleteIptablesRule | SetChainPolicy | ManualStep)


@dataclass(frozen=True, slots=True)
class Repair:
    title: str
    safety: Safety
    steps: tuple[Step, ...] = ()


# --- how the steps are carried out ---------------------------------------------------------


def _with_rtnl(action, step) -> None:
    """`action(rtnl, step)` on a NETLINK_ROUTE socket of the namespace the thread is in; a
    kernel refusal becomes DriverError with the errno's text."""
    from netdiag.rtnl_write import Rtnl, RtnlError

    with Rtnl() as rtnl:
        try:
            action(rtnl, step)
        except RtnlError as exc:
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
