"""Probe results as rule evidence: what `check --probe` measured about one object.

Each function reads `Snapshot.probes` (empty without `--probe`) and returns Evidence records
with kind "probe", ready to append to a finding — so a rule adds measured facts with one call
and stays pure. mtu-mismatch cites `path_mtu`, port-contention `ports_on`, dns-unreachable `dns`.
"""

from __future__ import annotations

from netdiag.findings.finding import Evidence
from netdiag.model import DnsProbe, PathMtuProbe, PortProbe, Snapshot


def path_mtu(snapshot: Snapshot, namespace: int, destination: str = "") -> tuple[Evidence, ...]:
    """The DF sweeps sent from `namespace` (to `destination` only, when given)."""
    probes = snapshot.probes.path_mtu if snapshot.probes else ()
    return tuple(_path_mtu(p) for p in probes if p.namespace == namespace
                 and (not destination or p.destination == destination))


def port(snapshot: Snapshot, namespace: int, address: str, port: int) -> tuple[Evidence, ...]:
    probes = snapshot.probes.ports if snapshot.probes else ()
    return tuple(_port(p) for p in probes
                 if (p.namespace, p.address, p.port) == (namespace, address, port))


def ports_on(snapshot: Snapshot, namespace: int, port: int) -> tuple[Evidence, ...]:
    """The connects sent from `namespace` to port `port` on any address (a published port)."""
    probes = snapshot.probes.ports if snapshot.probes else ()
    return tuple(_port(p) for p in probes if (p.namespace, p.port) == (namespace, port))


def dns(snapshot: Snapshot, namespace: int, server: str) -> tuple[Evidence, ...]:
    probes = snapshot.probes.dns if snapshot.probes else ()
    return tuple(_dns(p) for p in probes if (p.namespace, p.server) == (namespace, server))


def _path_mtu(probe: PathMtuProbe) -> Evidence:
    if not probe.answered:
        last = probe.attempts[-1][1] if probe.attempts else "not sent"
        text = f"probe: DF ping to {probe.destination} got no answer ({last})"
    else:
        text = f"probe: largest DF packet answered by {probe.destination}: {probe.mtu} bytes"
        if probe.limited_by:
            text += f" (router {probe.limited_by} reported fragmentation needed)"
    return Evidence(text, probe.namespace, "probe", f"path-mtu {probe.destination}")


def _port(probe: PortProbe) -> Evidence:
    what = f" ({probe.purpose})" if probe.purpose else ""
    result = "connected" if probe.open else probe.error
    return Evidence(f"probe: {probe.protocol} connect to {probe.address}:{probe.port}{what}: "
                    f"{result}", probe.namespace, "probe",
                    f"{probe.protocol} {probe.address}:{probe.port}")


def _dns(probe: DnsProbe) -> Evidence:
    if probe.answered:
        text = f"probe: query for {probe.query!r} answered {probe.rcode}"
    else:
        text = f"probe: query for {probe.query!r} got no answer ({probe.error})"
    return Evidence(text, probe.namespace, "probe", f"dns {probe.server}")
