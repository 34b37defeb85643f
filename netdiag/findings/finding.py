"""What a check reports: a Finding, with its Severity, the Evidence it rests on and its Repair.

Rules (netdiag/checks/), the drivers' own checks (netdiag/drivers/) and the flow of a report
(the engine, its output formats, the TUI, `repair`) share these records; the Repair plan and
its steps are repair.py's, beside this file.
"""

from __future__ import annotations

from dataclasses import dataclass

from netdiag.findings.repair import Repair
from netdiag.findings.severity import Severity
from netdiag.model import NamespaceRef


@dataclass(frozen=True, slots=True)
class Evidence:
    """One raw fact a rule used. `kind`/`key` point at the object (for highlighting it)."""

    text: str
    namespace: int | None = None
    kind: str = ""  # link, address, route, rule, neighbour, fdb, firewall, socket, sysctl, dns
    key: str = ""  # link name, route dst, address cidr, "table/chain/position", sysctl name...


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

    @property
    def involved(self) -> frozenset[int]:
        """Every namespace the finding is about: its own and the related ones."""
        return frozenset((self.namespace.id, *self.related))
