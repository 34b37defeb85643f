"""The typed messages that worker threads post back to the screens.

Workers never touch widgets: they post one of these (post_message is thread-safe) and the
screen's handler updates the UI on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from netdiag.checks.exposure_model import Exposure
from netdiag.findings.finding import Evidence, Finding
from netdiag.flows.packet import PathResult
from netdiag.model import NamespaceRef, Snapshot


@dataclass
class NamespacesFound(Message):
    """Discovery finished (fast): the picker can paint its list."""

    refs: list[NamespaceRef]


@dataclass
class PickerShown(Message):
    """The picker painted its list (benchmarks and tests wait for this)."""

    count: int


@dataclass
class FindingCounts(Message):
    """The background check of every namespace finished: id → number of findings, and id →
    what else the search finds it by (its addresses, its lab networks), and id → the worst
    severity of its findings (the colour of its count)."""

    counts: dict[int, int]
    searchable: dict[int, str] = field(default_factory=dict)
    worst: dict[int, str] = field(default_factory=dict)


@dataclass
class SnapshotReady(Message):
    snapshot: Snapshot
    findings: tuple[Finding, ...]


@dataclass
class CollectionFailed(Message):
    error: str
    read: bool = True  # the namespace was not read (False: only its live events are missing)


@dataclass
class NamespaceVanished(Message):
    error: str


@dataclass
class KernelChanged(Message):
    """A netlink event arrived from the attached namespace."""


@dataclass
class ProbeDone(Message):
    title: str
    lines: list[str]


@dataclass
class RepairDone(Message):
    ok: bool
    lines: list[str]


@dataclass
class PathDone(Message):
    """A simulated path from the attached namespace: its trace, and what stopped it (result:
    the trace itself, None when it failed; `capture` takes it along the path)."""

    line: str
    lines: list[str]
    evidence: tuple[Evidence, ...]
    result: PathResult | None = None
    snapshot: Snapshot | None = None


@dataclass
class CaptureDone(Message):
    """A capture along the last path traced: per hop, where the packet was last seen, beside
    the model's verdict."""

    line: str
    lines: list[str]


@dataclass
class ExposuresReady(Message):
    """The exposure of the attached namespace, computed on its snapshot (error: why not)."""

    found: list[Exposure]
    error: str = ""
