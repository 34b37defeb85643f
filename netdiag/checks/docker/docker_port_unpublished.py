"""docker-port-unpublished: a port Docker was asked to publish does not reach its container.

What it finds
    For every container with `-p` bindings, on an engine that programs iptables:
    * a container that could not start because its port was taken ("port is already
      allocated", "address already in use"), with who holds the port now: another
      container's publication, or a program listening on the host;
    * a running container whose published port has no DNAT rule to it in the engine's
      namespace (the nat table was flushed: a firewall reload, `iptables -t nat -F`), or whose
      DNAT leads to another address than the container's.

    Docker versions: 20.10's and 28's DNAT rules in the nat table's DOCKER chain (IPv4).
    With Docker 29's nftables backend (a `docker-bridges` table in the namespace) only the
    container that could not start is judged: its nftables maps are not read for the DNAT.

Why it matters
    Clients get "connection refused" or time out on the published port, while `docker ps`
    shows the mapping as if it worked. With the userland proxy on, connections from outside
    still reach the container through docker-proxy, but with the client's address lost;
    with it off, nothing answers.

Example
    ND311 docker-port-unpublished  host: tcp/8080
      Docker publishes 0.0.0.0:8080 → web:80/tcp, but the nat table has no DNAT for tcp/8080
      to 172.18.0.2:80: the port does not reach the container
      repair (manual): Restore Docker's rules
        $ systemctl restart docker   (or: docker restart web)

Repair
    Docker writes its rules when a container starts: restart the container (or the daemon,
    which rewrites every rule) after fixing whatever flushed them. For a container that could
    not start, free the port or publish another, then start it.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.checks.dnat import Publish, publishes
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerContainer, DockerEngine, DockerPort

RULE = Rule(code="ND311", name="docker-port-unpublished", severity=Severity.ERROR,
            summary="a port Docker publishes has no DNAT to its container, or the container "
                    "could not start because the port was taken")

PORT_TAKEN = ("port is already allocated", "address already in use")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for engine, host in intent.engines(snapshot):
        if not engine.daemon.iptables:
            continue  # the user writes the rules: Docker's intent says nothing about them
        published = [p for p in publishes(host) if p.rule.family == 4]
        for container in engine.containers:
            if not container.ports:
                continue
            if not container.running:
                yield from _not_started(engine, host, container, published)
            elif not intent.nftables_backend(host):  # 29's nftables maps are not read here
                yield from _not_forwarded(engine, host, container, published)


def _not_started(engine: DockerEngine, host: NamespaceState, container: DockerContainer,
                 published: list[Publish]) -> Iterator[Finding]:
    if not any(text in container.error for text in PORT_TAKEN):
        return
    for port in container.ports:
        holders = _holders(engine, host, container, port, published)
        subject = f"{port.protocol}/{port.host_port}"
        if not holders and port.host_port and str(port.host_port) not in container.error:
            continue  # the error is about another of its ports
        evidence = [Evidence(f"{intent.who(engine)}: {container.name} is {container.state}: "
                             f"{container.error}", host.ref.id, "docker", container.name)]
        evidence += [e for _, e in holders] or [Evidence(
            f"no container publishes {subject} and no program listens on it now", host.ref.id,
            "socket", subject)]
        held = "; ".join(text for text, _ in holders) or "no holder is visible any more"
        yield RULE.finding(
            host.ref, subject,
            f"{container.name} wants {_binding(port)} but could not start: the port was "
            f"taken ({held})",
            evidence=evidence,
            repair=Repair("Free the port or publish another, then start the container",
                          Safety.MANUAL, (ManualStep(
                              f"free {subject} (or publish another port), then "
                              f"docker start {container.name}", host.ref.id),)))


def _holders(engine: DockerEngine, host: NamespaceState, container: DockerContainer,
             port: DockerPort, published: list[Publish]) -> list[tuple[str, Evidence]]:
    """Who holds the port now: another container's publication, or a listening program."""
    found = []
    for other in engine.containers:
        if other.id == container.id or not other.running:
            continue
        for bound in other.bound:
            if bound.protocol == port.protocol and bound.host_port == port.host_port:
                found.append((f"published by {other.name}", Evidence(
                    f"{other.name} publishes {_binding(bound)}", host.ref.id, "docker",
                    other.name)))
                break
    if found:
        return found
    for sock in host.sockets:
        if sock.protocol == port.protocol and sock.port == port.host_port and \
                sock.process not in ("docker-proxy", "dockerd") and sock.state in ("listen",
                                                                                   "unconn"):
            who = f"{sock.process} (pid {sock.pid})" if sock.process else "a program"
            found.append((f"{who} listens on {sock.address or '*'}:{sock.port}", Evidence(
                f"{sock.protocol} {sock.address}:{sock.port} {sock.state} {who}", host.ref.id,
                "socket", f"{sock.protocol}/{sock.port}")))
    return found


def _not_forwarded(engine: DockerEngine, host: NamespaceState, container: DockerContainer,
                   published: list[Publish]) -> Iterator[Finding]:
    targets = _addresses(engine, container)
    if not targets:
        return  # host or none network mode, or the address is not known: nothing to DNAT
    for bound in container.bound:
        if ":" in bound.host_ip or not bound.host_port:
            continue  # IPv6 bindings: ip6tables, with or without the proxy; not judged here
        rules = [p for p in published if p.protocol == bound.protocol
                 and p.port == bound.host_port and p.covers(bound.host_ip)]
        if any(p.to_address in targets and p.to_port == bound.container_port for p in rules):
            continue
        subject = f"{bound.protocol}/{bound.host_port}"
        want = f"{sorted(targets)[0]}:{bound.container_port}"
        evidence = [Evidence(f"{intent.who(engine)} publishes {_binding(bound)} → "
                             f"{container.name}:{bound.container_port}", host.ref.id, "docker",
                             container.name)]
        evidence += [p.evidence(host.ref.id) for p in rules] or [Evidence(
            f"nat: no DNAT for {subject} ({len(published)} DNAT rules read)", host.ref.id,
            "firewall", "nat/DOCKER")]
        if rules:
            message = (f"Docker publishes {_binding(bound)} → {container.name}:"
                       f"{bound.container_port}, but the nat table takes {subject} to "
                       f"{', '.join(p.target for p in rules)}, not to {want}: the port leads "
                       "elsewhere")
        else:
            message = (f"Docker publishes {_binding(bound)} → {container.name}:"
                       f"{bound.container_port}, but the nat table has no DNAT for {subject} to "
                       f"{want}: the port does not reach the container")
        proxy = engine.daemon.userland_proxy and not rules
        if proxy:
            message += " (docker-proxy still relays connections to the host's addresses, " \
                       "without the client's address)"
        related = (container.netns,) if container.netns else ()
        yield RULE.finding(
            host.ref, subject, message, evidence=evidence, related=related,
            severity=Severity.WARNING if proxy else Severity.ERROR,
            repair=Repair("Let Docker write its rules again", Safety.MANUAL, (ManualStep(
                f"docker restart {container.name} (or restart the daemon, which rewrites "
                "every rule), after fixing what removed them", host.ref.id),)))


def _addresses(engine: DockerEngine, container: DockerContainer) -> set[str]:
    """The container's addresses on networks whose ports Docker DNATs (bridge networks)."""
    found = set()
    owner = engine.container(container.shares) if container.shares else container
    for endpoint in owner.endpoints if owner else ():
        network = engine.network(endpoint.network_id) or engine.network(endpoint.network)
        if endpoint.ip and network is not None and network.driver == "bridge":
            found.add(endpoint.ip)
    return found


def _binding(port: DockerPort) -> str:
    host = port.host_ip if port.host_ip not in ("", "::") else "0.0.0.0"
    return f"{host}:{port.host_port or '*'}->{port.container_port}/{port.protocol}"
