"""The rule engine's vocabulary: Rule, Finding, Evidence, Repair and its typed steps.

A rule is a module in one of the domain folders with a docstring (its user documentation, in
the sections What it finds / Why it matters / Example / Repair), `RULE = Rule(...)`, and a pure
`check(snapshot, config) -> Iterator[Finding]` that reads the Snapshot only — never the kernel.

Repair steps are typed records; `command` gives the equivalent ip/bridge/iptables/sysctl
command that `repair --dry-run` prints, and netdiag/repair/ applies them. A step names its
namespace by id; the executor finds the path to enter in the snapshot.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from netdiag.model import NamespaceRef, Snapshot


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return ("info", "warning", "error").index(self.value)


class Safety(str, Enum):
    SAFE = "safe"  # applied by `repair --apply`
    UNSAFE = "unsafe"  # applied only with `repair --apply --unsafe`
    MANUAL = "manual"  # printed, never applied


@dataclass(frozen=True, slots=True)
class Evidence:
    """One raw fact a rule used. `kind`/`key` point at the object (for highlighting it)."""

    text: str
    namespace: int | None = None
    kind: str = ""  # link, address, route, rule, neighbour, fdb, firewall, socket, sysctl, dns
    key: str = ""  # link name, route dst, address cidr, "table/chain/position", sysctl name...


# --- repair steps ------------------------------------------------------------------------------


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
class ManualStep:
    """Something a person has to do (or decide); never applied automatically."""

    text: str
    namespace: int | None = None

    def command(self, ns: str = "") -> str:
        return f"# {self.text}"


Step = (SetMtu | SetLinkUp | SetSysctl | AddRoute | DeleteRoute | DeleteFdbEntry | AddFdbEntry
        | DeleteNeighbour | ReplaceNeighbour | AddIptablesRule | DeleteIptablesRule
        | SetChainPolicy | ManualStep)


@dataclass(frozen=True, slots=True)
class Repair:
    title: str
    safety: Safety
    steps: tuple[Step, ...] = ()


# --- rules and findings ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    rule: str
    severity: Severity
    namespace: NamespaceRef
    subject: str  # the object the finding is about: an interface, a route, a port...
    message: str
    evidence: tuple[Evidence, ...] = ()
    repair: Repair | None = None
    related: tuple[int, ...] = ()  # other namespaces the finding involves (the veth's peer...)


@dataclass(frozen=True, slots=True)
class Rule:
    code: str  # ND101...
    name: str  # kebab-case, the stable public identifier
    severity: Severity  # default severity; a finding may carry another one
    summary: str  # one line

    def finding(self, namespace: NamespaceRef, subject: str, message: str, *,
                evidence: tuple[Evidence, ...] | list[Evidence] = (),
                repair: Repair | None = None, severity: Severity | None = None,
                related: tuple[int, ...] = ()) -> Finding:
        return Finding(code=self.code, rule=self.name, severity=severity or self.severity,
                       namespace=namespace, subject=subject, message=message,
                       evidence=tuple(evidence), repair=repair, related=related)


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """What `--config FILE` and the command line can change; rules read only `options`."""

    enabled: frozenset[str] = frozenset()  # empty: every rule
    disabled: frozenset[str] = frozenset()
    severity: tuple[tuple[str, Severity], ...] = ()  # rule name → overriding severity
    exclude_namespaces: tuple[str, ...] = ()  # regexes matched against label, name, container
    exclude_interfaces: tuple[str, ...] = ()  # regexes matched against subjects that are links
    options: tuple[tuple[str, str], ...] = field(default=())  # rule-specific knobs


class RuleModule(Protocol):
    """What registry.RULES holds: a rule module."""

    __doc__: str | None
    RULE: Rule

    def check(self, snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]: ...
