"""exposure-unpublished-port: a container port is open beyond the host, yet nothing publishes it.

What it finds
    A container's listening socket that a client beyond the host reaches on an uplink
    without any published port (`-p`) for it: through a macvlan address on the wire, through
    a `routed` network (no NAT: as far as routing and the firewall let the client), or by
    routing straight to a NAT network's container address when the host's FORWARD lets it
    (Docker before 28 accepts a published container port at the container's own address
    from anywhere). The flow engine follows the connection and its reply; uplinks and
    clients are as docs/exposure.md says. Information: the container may mean it (a macvlan
    exists to put a container on the LAN), but nobody said so with `-p`. `netdiag exposure
    --format sarif` also reports, under this code, every other port open to an uplink.

Why it matters
    Reviews of what a host exposes start from `docker ps`' port column; these ports are not in
    it. CIS Docker Benchmark 5.9 asks that only needed ports are open on a container.

Example
    ND932 exposure-unpublished-port  mv-app: tcp 0.0.0.0:6379
      tcp 198.19.7.50:6379 of container cache is open to up0's network (macvlan address on
      the wire), and no -p publishes it
        · CIS Docker Benchmark v1.6.0 5.9: Ensure that only needed ports are open on the
          container

Repair
    Stop the service listening on every address, bind it to the address it serves, or
    filter the port (in the container, or on the network beyond: a macvlan's traffic never
    passes the host's firewall). For a routed network, accept only the published ports in
    DOCKER-USER.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.checks.exposure_model import UNPUBLISHED, UPLINK, Exposure, exposures
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Snapshot

RULE = Rule(code="ND932", name="exposure-unpublished-port", severity=Severity.INFO,
            summary="a container's port is reachable from beyond the host although no "
                    "published port asks for it")
WALKS_FLOWS = True  # on a big snapshot, run beside the other rules (checks/engine.py)

HOW = {"direct": "routed to the container's address", "macvlan": "macvlan address on the wire",
       "published": "published port", "proxy": "the userland proxy",
       "host": "the host's own socket"}


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for entry in exposures(snapshot, unpublished_only=True):
        if entry.risk == UNPUBLISHED:
            yield finding(entry)


def finding(entry: Exposure) -> Finding:
    """The finding of one exposure entry open to an uplink (`netdiag exposure`'s SARIF too)."""
    outside = [d for d in entry.doors if d.source == UPLINK]
    ways = "; ".join(f"{d.protocol} {d.address}:{d.port} from {d.where}'s network ("
                     f"{HOW[d.via]}{' ' + d.rule_name if d.rule_name else ''})"
                     for d in outside[:3])
    more = f" and {len(outside) - 3} more" if len(outside) > 3 else ""
    said = "no -p publishes it" if entry.risk == UNPUBLISHED else "it is meant to be reached"
    return RULE.finding(
        entry.namespace, entry.subject,
        f"{entry.owner} is open beyond the host: {ways}{more}; {said}",
        evidence=[Evidence(f"{d.source} {d.where} → {d.address}:{d.port} via {d.via}"
                           f"{': ' + d.rule if d.rule else ''}", d.host, "flow", d.where)
                  for d in outside] + [c.evidence() for c in entry.controls],
        severity=entry.severity,
        repair=Repair("Bind or filter the port", Safety.MANUAL, (ManualStep(
            f"bind {entry.subject} to the address it serves, or filter it", entry.namespace.id),
        )) if entry.risk == UNPUBLISHED else None)
