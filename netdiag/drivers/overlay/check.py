"""The overlay driver's CHECK: live kernel state on every host against the store's records.

For each host with endpoints of the network it reads the overlay namespace with netdiag's own
collectors (links, fdb, neighbours) and reports what the driver would have programmed but is
not there: the namespace or its br0/vxlan0, an MTU other than the endpoint MTU, and a remote
endpoint without its permanent FDB entry (dst = its VTEP) or neighbour entry, and a published
port's rule on its host (the DNAT to docker_gwbridge, the accept — the bridge driver's check).
The findings are ordinary ones, with the repair that puts the missing piece back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from netdiag.collect import collect_namespace, fdb, links, neighbours
from netdiag.drivers.api import namespace_ref
from netdiag.drivers.common import ports as published
from netdiag.drivers.overlay import gateway
from netdiag.drivers.overlay.controlplane import Peer
from netdiag.drivers.overlay.dataplane import BRIDGE, VXLAN, sandbox_path
from netdiag.errors import NamespaceGone
from netdiag.findings.driver_rules import DEVICE_MISSING, FDB_MISSING, MTU_DIFFERS
from netdiag.findings.finding import Evidence, Finding
from netdiag.findings.repair import (
    AddFdbEntry,
    ManualStep,
    Repair,
    ReplaceNeighbour,
    Safety,
    SetMtu,
)
from netdiag.model import NamespaceRef, NamespaceState
from netdiag.store.records import Endpoint, Network


def read(path: str) -> NamespaceState | None:
    try:
        state, _ = collect_namespace(namespace_ref(path), collectors=(links, fdb, neighbours))
    except NamespaceGone:
        return None
    return state


def check(network: Network, endpoints: Sequence[Endpoint]) -> Iterator[Finding]:
    joined = [e for e in endpoints if e.sandbox and e.datum("vtep")]
    for host in sorted({e.host for e in endpoints}):
        path = sandbox_path(host, network)
        state = read(path) if Path(path).exists() else None
        if state is None:
            yield _missing(network, host, path, "namespace")
            continue
        yield from _devices(network, state, [e for e in endpoints if e.host == host])
        if state.link(VXLAN) is not None:
            yield from _remote_entries(state, [Peer.of(e) for e in joined if e.host != host])
        for endpoint in (e for e in joined if e.host == host):
            yield from _sandbox_mtu(endpoint)
    yield from _published_ports(network, endpoints)


def _published_ports(network: Network, endpoints: Sequence[Endpoint]) -> Iterator[Finding]:
    for host in sorted({e.host for e in endpoints if gateway.port_rules(e)}):
        if not Path(host).exists():
            continue
        rules = gateway.port_prerequisites() + [
            rule for e in endpoints if e.host == host for rule in gateway.port_rules(e)]
        yield from published.missing(host, network, rules)


def _missing(network: Network, host: str, path: str, what: str,
             ref: NamespaceRef | None = None) -> Finding:
    where = ref or namespace_ref(host)
    text = f"overlay network {network.name}: {what} missing in {Path(path).name}"
    return DEVICE_MISSING.finding(
        where, what, text, evidence=[Evidence(text, where.id, "link", what)],
        repair=Repair("reconnect the endpoints so the driver rebuilds the overlay",
                      Safety.MANUAL, (ManualStep(f"netdiag net disconnect/connect "
                                                 f"{network.name} on {host}"),)))


def _devices(network: Network, state: NamespaceState,
             endpoints: list[Endpoint]) -> Iterator[Finding]:
    expected = int(endpoints[0].datum("mtu") or 0) if endpoints else 0
    names = [BRIDGE, VXLAN] + [e.host_ifname for e in endpoints if e.sandbox and e.host_ifname]
    for name in names:
        link = state.link(name)
        if link is None:
            yield _missing(network, state.ref.path, state.ref.path, name, state.ref)
        elif expected and link.mtu != expected:
            yield _mtu_finding(state.ref, name, link.mtu, expected)


def _mtu_finding(ref: NamespaceRef, name: str, mtu: int, expected: int) -> Finding:
    text = f"{name} has MTU {mtu}, the overlay's endpoint MTU is {expected}"
    return MTU_DIFFERS.finding(
        ref, name, text, evidence=[Evidence(f"{name} mtu {mtu}", ref.id, "link", name)],
        repair=Repair(f"set {name}'s MTU to {expected}", Safety.SAFE,
                      (SetMtu(ref.id, name, expected),)))


def _remote_entries(state: NamespaceState, peers: list[Peer]) -> Iterator[Finding]:
    fdb_entries = {(e.mac.lower(), e.dst) for e in state.fdb if e.ifname == VXLAN}
    neighbour_entries = {(n.address, (n.mac or "").lower()) for n in state.neighbours
                         if n.ifname == VXLAN and "permanent" in n.state}
    ref = state.ref
    for peer in peers:
        has_fdb = (peer.mac.lower(), peer.vtep) in fdb_entries
        # A dual-stack peer's IPv6 address needs its own entry: the proxy answers from them.
        unanswered = [address for address in (peer.ip, peer.ip6) if address
                      and (address, peer.mac.lower()) not in neighbour_entries]
        if has_fdb and not unanswered:
            continue
        lacking = ([] if has_fdb else ["FDB entry"]) + [
            "neighbour entry" if address == peer.ip else f"neighbour entry for {address}"
            for address in unanswered]
        text = (f"remote endpoint {peer.ip} ({peer.mac}) on VTEP {peer.vtep} has no "
                f"{' and no '.join(lacking)} on {VXLAN}")
        yield FDB_MISSING.finding(
            ref, peer.mac, text,
            evidence=[Evidence(text, ref.id, "fdb", f"{VXLAN}/{peer.mac}")],
            repair=Repair(f"program {peer.ip} on {VXLAN} again", Safety.SAFE,
                          (AddFdbEntry(ref.id, VXLAN, peer.mac, peer.vtep),
                           *(ReplaceNeighbour(ref.id, VXLAN, address, peer.mac)
                             for address in (peer.ip, peer.ip6) if address))))


def _sandbox_mtu(endpoint: Endpoint) -> Iterator[Finding]:
    expected = int(endpoint.datum("mtu") or 0)
    state = read(endpoint.sandbox)
    link = state.link(endpoint.ifname) if state else None
    if link is not None and expected and link.mtu != expected:
        yield _mtu_finding(state.ref, endpoint.ifname, link.mtu, expected)
