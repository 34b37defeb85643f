"""fleet-node-stale: a node of the fleet has not published a snapshot for longer than its
agent promised.

What it finds
    In a fleet snapshot (`check --fleet`, or a file `fleet snapshot` wrote), a node whose
    latest snapshot is older than an interval and a half of its agent (plus two seconds to
    read and publish) when the fleet was read. Its agent refreshes its lease while it lives
    and publishes at least once per interval, so an old snapshot with a live lease means an
    agent that is hung, cannot read the machine, or cannot write to etcd while it can still
    keep its lease (a store that is slow or full).

Why it matters
    Everything the fleet view says about that node is as old as its snapshot: the faults
    found there, and the cross-node rules that compare it with the others, may describe a
    machine that has since changed. Once its lease runs out the node disappears from the
    fleet instead, and the other nodes' entries pointing at it are judged stale.

Example
    ND951 fleet-node-stale  node m3: agent
      node m3's snapshot is 47 s old, and its agent publishes every 10 s: what the fleet
      shows of m3 is out of date
        · published 2026-12-02T10:14:03.118+00:00 (snapshot #212), fleet read
          2026-12-02T10:14:50.402+00:00

Repair
    Manual: look at the agent on that node (`systemctl status netdiag-agent`, its log), and
    whether it reaches etcd (`netdiag fleet show NODE`).
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Snapshot

RULE = Rule(code="ND951", name="fleet-node-stale", severity=Severity.WARNING,
            summary="a node of the fleet has not published for longer than its interval")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for machine in snapshot.machines:
        age = machine.age(snapshot.created_at)
        host = snapshot.namespace(machine.host_namespace)
        if age is None or age <= machine.allowed_age or host is None:
            continue
        yield RULE.finding(
            host.ref, "agent",
            f"node {machine.name}'s snapshot is {age:.0f} s old, and its agent publishes "
            f"every {machine.interval:g} s: what the fleet shows of {machine.name} is out "
            "of date",
            evidence=[Evidence(f"published {machine.published_at} (snapshot "
                               f"#{machine.sequence}), fleet read {snapshot.created_at}",
                               host.ref.id, "fleet", machine.name)],
            repair=Repair(f"look at the agent on {machine.name}", Safety.MANUAL, (ManualStep(
                f"on {machine.name}: systemctl status netdiag-agent, and `netdiag fleet show "
                f"{machine.name}` for what it last published"),)))
