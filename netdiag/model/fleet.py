"""The machines of a fleet snapshot: one record per node whose agent published into etcd.

A fleet snapshot (netdiag/fleet/merge.py) is every node's snapshot in one: each namespace
carries its node's name (`NamespaceRef.machine`), and `Snapshot.machines` says, per node, what
published it and when, so the rules can tell a node whose view is old (fleet-node-stale) and
the cross-node rules can name the node of each namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

STALE_FACTOR, STALE_SLACK = 1.5, 2.0  # an interval and a half, and time to read and publish


@dataclass(frozen=True, slots=True)
class Machine:
    name: str  # the node's identity: --node, else /etc/machine-id's first 12, else hostname
    hostname: str = ""
    kernel: str = ""
    agent_version: str = ""  # the netdiag version of the agent that published
    schema_version: int = 0  # of the snapshot it published
    published_at: str = ""  # ISO 8601, UTC: when the agent published this snapshot
    created_at: str = ""  # ISO 8601, UTC: when the agent finished reading it
    interval: float = 0.0  # seconds: the agent publishes at least this often
    sequence: int = 0  # how many snapshots this agent has published since it started
    host_namespace: int = 0  # the id of the namespace that is this machine, in the fleet
    problem: str = ""  # why its snapshot is not in the fleet snapshot ("": it is)

    @property
    def allowed_age(self) -> float:
        """How old its snapshot may be (seconds) before the node counts as stale."""
        return self.interval * STALE_FACTOR + STALE_SLACK

    def age(self, now: str) -> float | None:
        """Seconds between its snapshot's publication and `now` (ISO 8601), None if unknown."""
        try:
            return (datetime.fromisoformat(now) - datetime.fromisoformat(self.published_at)
                    ).total_seconds()
        except ValueError:
            return None
