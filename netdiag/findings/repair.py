"""Repair plans and their steps: each kind of change netdiag may make, defined once.

A step is a frozen record naming its namespace by id; `command` is the equivalent
ip/bridge/iptables/sysctl command that dry runs print. How a step is carried out is
netdiag/repair/apply.py's, one function per step kind in one table — a test fails when a step
kind has no function there, so what a dry run shows and what `--apply` does stay paired.
These records sit on the floor: rules, the drivers' checks and the TUI build and show plans
without importing anything that writes to the kernel.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from enum import Enum


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



@dataclass(frozen=True, slots=True)
class SetLinkUp:
    namespace: int
    link: str

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip link set dev {self.link} up"



@dataclass(frozen=True, slots=True)
class SetMaster:
    """Make a link a port of a bridge (and set it up)."""

    namespace: int
    link: str
    bridge: str

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip link set dev {self.link} master {self.bridge} up"



@dataclass(frozen=True, slots=True)
class SetHairpin:
    """Turn hairpin mode on for a bridge port (frames may leave by the port they came in)."""

    namespace: int
    link: str

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}bridge link set dev {self.link} hairpin on"



@dataclass(frozen=True, slots=True)
class AddAddress:
    namespace: int
    link: str
    cidr: str  # "172.18.0.1/16"

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip address add {self.cidr} dev {self.link}"



@dataclass(frozen=True, slots=True)
class SetSysctl:
    namespace: int
    name: str
    value: str

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}sysctl -w {self.name}={self.value}"



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



@dataclass(frozen=True, slots=True)
class AddFdbEntry:
    namespace: int
    dev: str
    mac: str
    dst: str = ""

    def command(self, ns: str = "") -> str:
        dst = f" dst {self.dst}" if self.dst else ""
        return f"{_ns_prefix(ns)}bridge fdb append {self.mac} dev {self.dev}{dst} self permanent"



@dataclass(frozen=True, slots=True)
class DeleteNeighbour:
    namespace: int
    dev: str
    address: str

    def command(self, ns: str = "") -> str:
        return f"{_ns_prefix(ns)}ip neigh del {self.address} dev {self.dev}"



@dataclass(frozen=True, slots=True)
class ReplaceNeighbour:
    namespace: int
    dev: str
    address: str
    mac: str

    def command(self, ns: str = "") -> str:
        return (f"{_ns_prefix(ns)}ip neigh replace {self.address} lladdr {self.mac} "
                f"dev {self.dev} nud permanent")



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



@dataclass(frozen=True, slots=True)
class RecordNetworkMtu:
    """Record in netdiag's drivers' store the MTU a repair gave a network's endpoints, so the
    drivers' own checks agree with the repair and the network's next endpoint gets it too.
    It changes a store (a SQLite file or an etcd), no namespace."""

    store: str  # where the drivers' store is: a SQLite path or an etcd URL
    network: str  # the network's id in that store
    name: str  # its name, for people
    mtu: int  # the endpoints' MTU
    namespace: None = None

    def command(self, ns: str = "") -> str:
        return (f"# record MTU {self.mtu} for network {self.name} in the drivers' store "
                f"{self.store}")



@dataclass(frozen=True, slots=True)
class ManualStep:
    """Something a person has to do (or decide); never applied automatically."""

    text: str
    namespace: int | None = None

    def command(self, ns: str = "") -> str:
        return f"# {self.text}"



RepairStep = (SetMtu | SetLinkUp | SetMaster | SetHairpin | AddAddress | SetSysctl | AddRoute
        | DeleteRoute | DeleteFdbEntry | AddFdbEntry | DeleteNeighbour | ReplaceNeighbour
        | AddIptablesRule | DeleteIptablesRule | SetChainPolicy | RecordNetworkMtu | ManualStep)


@dataclass(frozen=True, slots=True)
class Repair:
    title: str
    safety: Safety
    steps: tuple[RepairStep, ...] = ()
