"""dns-unreachable: a namespace whose configured nameservers cannot answer it.

What it finds
    For each of the first three `nameserver` lines of a namespace's resolv.conf (the resolver
    ignores the rest): a server the namespace has no route to (or only a blackhole,
    unreachable or prohibit route); Docker's embedded resolver 127.0.0.11 configured while the
    NAT rules that redirect it (`DOCKER_OUTPUT`) are missing (unless native nftables rules
    redirect it, which are not read further), or while nothing listens on the ports those
    rules point to; another loopback or local nameserver with nothing listening on
    port 53. With `check --probe`, also a server that did not answer a real query. A
    namespace that has neither its own resolv.conf nor a process (it only shows the host's
    file, and nothing in it resolves names) is not judged, nor are outside nameservers of a
    namespace that has only loopback (Docker's `--network none` copies the host's file) or
    whose container is on internal networks only (Podman lists the host's nameservers after
    its aardvark-dns even there).

Why it matters
    Name resolution is the first thing every client does, and its failure looks like "the
    service is down" or a 5-second hang (the resolver's timeout) before each connection.
    127.0.0.11 is not a real address: without the DNAT rules queries go to a closed port on
    loopback; without the daemon's sockets they are redirected into nothing.

Example
    A container's resolv.conf says `nameserver 127.0.0.11`, but its nat table has no
    `DOCKER_OUTPUT` chain (someone ran `iptables -t nat -F` inside it): `nslookup web` times
    out although the daemon's resolver is running.

Repair
    Manual: for the embedded resolver, restart the container (or the daemon) so the rules and
    sockets are set up again; for a server without a route, add the route or point
    resolv.conf at a reachable server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from netdiag.findings import probes as probe_evidence
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import NamespaceState, Snapshot
from netdiag.model.facts import MAX_NAMESERVERS, has_own_resolv_conf
from netdiag.model.index import SnapshotIndex, index

RULE = Rule(code="ND601", name="dns-unreachable", severity=Severity.ERROR,
            summary="A configured nameserver has no route, no NAT rules or no listener")

EMBEDDED_DNS = "127.0.0.11"
_NO_WAY = ("blackhole", "unreachable", "prohibit")


@dataclass(frozen=True, slots=True)
class _Problem:
    what: str
    evidence: tuple[Evidence, ...]
    fix: str


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topology = index(snapshot)
    gaps = {(gap.namespace, gap.collector) for gap in snapshot.gaps}
    probes = {(p.namespace, p.server): p for p in (snapshot.probes.dns if snapshot.probes else ())}
    internal = _on_internal_networks_only(snapshot)
    for state in snapshot.namespaces:
        if not has_own_resolv_conf(state):
            continue
        cut_off = _loopback_only(state) or state.ref.id in internal
        for server in state.dns.nameservers[:MAX_NAMESERVERS]:
            if cut_off and not server.startswith("127."):
                continue
            ns_id = state.ref.id
            problem = _static_problem(topology, state, server, gaps)
            probe = probes.get((ns_id, server))
            if problem is None and probe is not None and not probe.answered:
                problem = _Problem(f"did not answer a DNS query ({probe.error})", (),
                                   f"find out why {server} does not answer (firewall, "
                                   "server down) or point resolv.conf at another server")
            if problem is None:
                continue
            evidence = (Evidence(f"{state.dns.source or 'resolv.conf'}: nameserver {server}",
                                 ns_id, "dns", f"nameserver {server}"),) + problem.evidence
            evidence += probe_evidence.dns(snapshot, ns_id, server)
            yield RULE.finding(
                state.ref, server, f"nameserver {server} is unreachable: {problem.what}",
                evidence=evidence,
                repair=Repair(f"make nameserver {server} reachable", Safety.MANUAL,
                              (ManualStep(problem.fix, ns_id),)))


def _loopback_only(state: NamespaceState) -> bool:
    """A namespace cut off on purpose (Docker's `--network none`): Docker still copies the
    host's nameservers into its resolv.conf, but nothing outside is meant to be reachable."""
    return all(link.kind == "loopback" for link in state.links)


def _on_internal_networks_only(snapshot: Snapshot) -> set[int]:
    """The namespaces of running containers whose every network is internal (`--internal`):
    cut off from outside on purpose, by the engine's intent."""
    found = set()
    for engine in snapshot.docker:
        internal = {n.name for n in engine.networks if n.internal}
        for container in engine.containers:
            if container.running and container.netns and container.endpoints and all(
                    e.network in internal for e in container.endpoints):
                found.add(container.netns)
    return found


def _static_problem(topology: SnapshotIndex, state: NamespaceState, server: str,
                    gaps: set[tuple[int | None, str]]) -> _Problem | None:
    try:
        address = ipaddress.ip_address(server.partition("%")[0])
    except ValueError:
        return None  # not an address netdiag can reason about
    ns_id = state.ref.id
    if server == EMBEDDED_DNS:
        if (ns_id, "firewall") in gaps or (ns_id, "dns") in gaps:
            return None  # the NAT rules were not read: unknown, not missing
        return _embedded_problem(state, gaps)
    local = address.is_loopback or any(o == ns_id for o, _ in topology.owners_of(str(address)))
    if local:
        return _listener_problem(state, str(address), (("udp", 53),), gaps)
    route = topology.lookup_route(ns_id, str(address))
    if route is None:
        return _Problem("the namespace has no route to it (and no default route)", (),
                        f"add a route to {server}, or use a nameserver this namespace "
                        "can reach")
    if route.type in _NO_WAY:
        return _Problem(f"the route to it is of type {route.type}",
                        (Evidence(f"route {route.dst} type {route.type}", ns_id, "route",
                                  route.dst),),
                        f"remove the {route.type} route {route.dst}, or use another nameserver")
    return None


def _embedded_problem(state: NamespaceState, gaps: set[tuple[int | None, str]]) -> _Problem | None:
    embedded = state.dns.embedded
    if embedded is None and _nft_redirects_embedded(state):
        return None  # native nftables rules (Docker's nftables backend): not read, not missing
    if embedded is None:
        return _Problem(
            "127.0.0.11 is Docker's embedded resolver, but the NAT rules that redirect it "
            "to the daemon (nat DOCKER_OUTPUT) are missing",
            (Evidence("no DNAT rule for 127.0.0.11:53 in the nat table", state.ref.id,
                      "firewall", "nat/DOCKER_OUTPUT"),),
            "restart the container (or the Docker daemon) so that the embedded DNS rules "
            "are written again")
    ports = tuple((proto, port) for proto, port in (("udp", embedded.udp_port),
                                                     ("tcp", embedded.tcp_port)))
    return _listener_problem(state, EMBEDDED_DNS, ports, gaps)


def _nft_redirects_embedded(state: NamespaceState) -> bool:
    return any(EMBEDDED_DNS in rule.text and "dnat" in rule.text
               for rule in state.firewall.nft_rules)


def _listener_problem(state: NamespaceState, address: str, ports: tuple[tuple[str, int], ...],
                      gaps: set[tuple[int | None, str]]) -> _Problem | None:
    ns_id = state.ref.id
    missing_rules = [proto for proto, port in ports if port == 0]
    if missing_rules:
        return _Problem(f"no {'/'.join(missing_rules)} DNAT rule redirects {address}:53",
                        (Evidence(f"no {'/'.join(missing_rules)} DNAT rule for {address}:53",
                                  ns_id, "firewall", "nat/DOCKER_OUTPUT"),),
                        "restart the container so that the embedded DNS rules are written "
                        "again")
    if (ns_id, "sockets") in gaps:
        return None
    silent = [(proto, port) for proto, port in ports
              if not _listening(state, address, proto, port)]
    if not silent:
        return None
    where = ", ".join(f"{proto} port {port}" for proto, port in silent)
    redirected = address == EMBEDDED_DNS
    return _Problem(
        f"nothing listens on {where}" + (" where its NAT rules send queries" if redirected
                                         else ""),
        tuple(Evidence(f"no {proto} socket bound to port {port}", ns_id, "socket",
                       f"{proto}/{port}") for proto, port in silent),
        "restart the container (or the Docker daemon) so that its resolver sockets are "
        "opened again" if redirected else f"start the resolver that should listen on {address}")


def _listening(state: NamespaceState, address: str, protocol: str, port: int) -> bool:
    # Docker's resolver binds 127.0.0.11 itself; a wildcard bind serves it too.
    return any(s.protocol == protocol and s.port == port
               and s.address in (address, "0.0.0.0", "::", "*", "")
               for s in state.sockets)
