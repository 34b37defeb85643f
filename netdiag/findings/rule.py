"""The rule engine's vocabulary: a Rule, what configures a run (CheckConfig), and the shape of
a rule module.

A rule is a module in one of the domain folders with a docstring (its user documentation, in
the sections What it finds / Why it matters / Example / Repair), `RULE = Rule(...)`, and a pure
`check(snapshot, config) -> Iterator[Finding]` that reads the Snapshot only — never the kernel.
Findings are finding.py's; repair plans and their steps repair.py's (both beside this file).
The rules themselves and the engine that runs them are netdiag/checks/'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import Repair
from netdiag.model import NamespaceRef, Snapshot


@dataclass(frozen=True, slots=True)
class Rule:
    code: str  # ND101...
    name: str  # kebab-case, the stable public identifier
    severity: Severity  # default severity; a finding may carry another one
    summary: str  # one line
    doc: str = ""  # the documentation of a rule that is not a module of its own (drivers')

    def finding(self, namespace: NamespaceRef, subject: str, message: str, *,
                evidence: tuple[Evidence, ...] | list[Evidence] = (),
                repair: Repair | None = None, severity: Severity | None = None,
                related: tuple[int, ...] = ()) -> Finding:
        return Finding(code=self.code, rule=self.name, severity=severity or self.severity,
                       namespace=namespace, subject=subject, message=message,
                       evidence=tuple(evidence), repair=repair, related=related)


@dataclass(frozen=True, slots=True)
class FlowExpectation:
    """A flow the user says must (or must not) get through: the config file's `expect:`."""

    source: str  # a namespace reference: container:web, host, lab/node
    to: str  # an address, a Docker name as the source resolves it, or a namespace
    port: int = 0
    proto: str = ""  # tcp, udp, icmp; "" → tcp with a port, icmp without
    reach: bool = True  # False: the flow must be blocked

    @property
    def text(self) -> str:
        port = f":{self.port}" if self.port else ""
        return f"{self.source} → {self.to}{port} ({self.protocol}) " \
            f"{'reaches' if self.reach else 'is blocked'}"

    @property
    def protocol(self) -> str:
        return self.proto or ("tcp" if self.port else "icmp")


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """What `--config FILE` and the command line can change; rules read only `options`."""

    enabled: frozenset[str] = frozenset()  # empty: every rule
    disabled: frozenset[str] = frozenset()
    severity: tuple[tuple[str, Severity], ...] = ()  # rule name → overriding severity
    exclude_namespaces: tuple[str, ...] = ()  # regexes matched against label, name, container
    exclude_interfaces: tuple[str, ...] = ()  # regexes matched against subjects that are links
    options: tuple[tuple[str, str], ...] = field(default=())  # rule-specific knobs
    expect: tuple[FlowExpectation, ...] = ()  # flows the user says must (not) get through

    def option(self, name: str, default: str) -> str:
        """A rule-specific knob from `options`, e.g. "overlapping-subnets.min-prefixlen"."""
        for key, value in self.options:
            if key == name:
                return value
        return default


class RuleModule(Protocol):
    """What registry.RULES holds: a rule module. One that reads a collector a kernel may lack
    also has `FEATURES` (those collectors) and `needs(snapshot)` (which of them it would have
    had something to read in here): a missing feature no rule needs is not shown as a gap.
    One that walks flows through the flow engine says `WALKS_FLOWS = True`: on a big snapshot
    such rules run in a second process beside the others (checks/engine.py)."""

    __doc__: str | None
    RULE: Rule

    def check(self, snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]: ...
