"""Helpers for the part-2 rule tests: state the SnapshotBuilder does not set (FDB, neighbours,
IPVS, DNS) is added to a built snapshot, and findings are run through one rule."""

from __future__ import annotations

from dataclasses import replace

from netdiag.findings.rule import CheckConfig
from netdiag.model import Snapshot


def amend(snapshot: Snapshot, ns_id: int, **fields) -> Snapshot:
    """The snapshot with some fields of one namespace's state replaced."""
    states = tuple(replace(s, **fields) if s.ref.id == ns_id else s for s in snapshot.namespaces)
    return replace(snapshot, namespaces=states)


def run(rule_module, snapshot: Snapshot) -> list:
    return list(rule_module.check(snapshot, CheckConfig()))
