"""ipvs-no-backends: an IPVS virtual service that has nowhere to send connections.

What it finds
    An IPVS virtual service (address:port or firewall mark) with no real servers, or whose real
    servers all have weight 0.

Why it matters
    Docker Swarm publishes each service as a VIP backed by an IPVS firewall-mark service with
    every task as a real server. With no server of non-zero weight, IPVS has nothing to pick and
    connections to the VIP are refused or hang, although the VIP answers ping and resolves in
    DNS — which makes the failure look like an application bug. A removed task first gets
    weight 0 and is then deleted; a service left in either state has lost its backends.

Example
    In the load-balancer namespace of a Swarm network, `ipvsadm -Ln` shows
    `FWM 257 rr` with no `->` lines: the service's tasks are all gone or the control plane
    failed to re-add them after a restart.

Repair
    Manual: restore the backends (scale the service up, or restart the tasks so the control
    plane re-adds them: `ipvsadm -a -f 257 -r 10.0.1.5:0 -m -w 1`), or remove the service
    whose VIP should no longer exist.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import IpvsService, Snapshot

RULE = Rule(code="ND701", name="ipvs-no-backends", severity=Severity.ERROR,
            summary="An IPVS virtual service has no real server with a non-zero weight")
FEATURES = ("ipvs",)  # the collectors it reads that a kernel may lack


def needs(snapshot: Snapshot) -> tuple[str, ...]:
    """IPVS matters where something balances with it: a Docker engine's services (Swarm's
    VIPs and routing mesh are IPVS). A host without them misses nothing for want of it."""
    return FEATURES if any(engine.services or engine.swarm.state == "active"
                           for engine in snapshot.docker) else ()


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for state in snapshot.namespaces:
        for service in state.ipvs:
            if any(d.weight > 0 for d in service.destinations):
                continue
            name = service_name(service)
            evidence = [Evidence(f"IPVS service {name} (scheduler {service.scheduler})",
                                 state.ref.id, "ipvs", name)]
            evidence += [Evidence(f"real server {d.address}:{d.port} weight {d.weight}",
                                  state.ref.id, "ipvs", f"{name} -> {d.address}:{d.port}")
                         for d in service.destinations]
            if service.destinations:
                problem = f"all {len(service.destinations)} real servers have weight 0"
            else:
                problem = "it has no real servers"
            yield RULE.finding(
                state.ref, name,
                f"IPVS service {name} cannot forward a connection: {problem}",
                evidence=evidence,
                repair=Repair(f"restore the backends of IPVS service {name}", Safety.MANUAL, (
                    ManualStep(f"re-add the real servers of {name} (scale up or restart the "
                               "service's tasks), or delete the service if it is obsolete",
                               state.ref.id),)))


def service_name(service: IpvsService) -> str:
    """How ipvsadm names a service: `FWM 256`, or `TCP 10.0.0.5:80`."""
    if service.fwmark:
        return f"FWM {service.fwmark}"
    address = f"[{service.address}]" if ":" in service.address else service.address
    return f"{service.protocol.upper()} {address}:{service.port}"
