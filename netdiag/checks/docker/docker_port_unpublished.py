"""docker-port-unpublished: a port Docker was asked to publish does not reach its container.

What it finds
    For every container with `-p` bindings, on an engine that writes firewall rules:
    * a container that could not start because its port was taken ("port is already
      allocated", "address already in use"), with who holds the port now: another
      container's publication, or a program listening on the host;
    * a running container whose published port has no DNAT rule to it in the engine's
      namespace (the nat table was flushed: a firewall reload, `iptables -t nat -F`), or whose
      DNAT leads to another address than the container's. A binding on an IPv6 host address
      (`[::]:8080`) is judged against the container's IPv6 address and Docker's IPv6 rules.

    Docker versions: 20.10's and 28's DNAT rules in the nat table's DOCKER chain, in
    iptables and, for IPv6 bindings, in ip6tables where the daemon writes IPv6 rules
    (ip6tables on: 27+'s default, 20.10's experimental option; known by Docker's DOCKER chain
    in ip6tables' nat table — with it off, IPv6 bindings are not judged). Docker 29's
    nftables backend: the `dnat to ADDRESS:PORT` rules of `nat-prerouting-and-output` in
    `table ip docker-bridges` (`ip6` for IPv6), as the table's prerouting or output chain
    reaches them. A network in the `routed` gateway mode is published without DNAT (at the
    container's own address): its containers' ports are not judged.

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

from netdiag.checks import docker_bridges
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
# Where a family's DNAT rules are (as the message and the evidence name it) and the rules.
Dnats = tuple[str, str, list[Publish | docker_bridges.NftDnat]]


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for engine, host in intent.engines(snapshot):
        if not engine.daemon.iptables:
            continue  # the user writes the rules: Docker's intent says nothing about them
        published = [p for p in publishes(host) if p.rule.family == 4]
        dnats = {family: _dnats(engine, host, family) for family in (
            (4, 6) if intent.ipv6_firewall(engine, host) else (4,))}
        for container in engine.containers:
            if not container.ports:
                continue
            if not container.running:
                yield from _not_started(engine, host, container, published)
            else:
                yield from _not_forwarded(engine, host, container, dnats)


def _dnats(engine: DockerEngine, host: NamespaceState, family: int) -> Dnats:
    """Where Docker's DNAT rules of `family` are in the namespace, and the rules."""
    if intent.nftables_backend(engine, host):
        table = f"{docker_bridges.table_family(family)} {intent.NFTABLES_BACKEND_TABLE}"
        return f"Docker's nftables table {table}", f"nft {table}", \
            docker_bridges.dnats(host, family)
    tool = "" if family == 4 else "ip6tables "
    return f"the {tool}nat table", f"{tool}nat/DOCKER", \
        [p for p in publishes(host) if p.rule.family == family]


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
                   dnats: dict[int, Dnats]) -> Iterator[Finding]:
    for bound in container.bound:
        family = 6 if ":" in bound.host_ip else 4
        targets = _addresses(engine, container, family)
        if not bound.host_port or family not in dnats or not targets:
            continue  # host or none network mode, a routed network, an address not known, or
            # IPv6 where the daemon writes no IPv6 rules: nothing to DNAT
        table, key, published = dnats[family]
        rules = [p for p in published if p.protocol == bound.protocol
                 and p.port == bound.host_port and p.covers(bound.host_ip)]
        if any(p.to_address in targets and p.to_port == bound.container_port for p in rules):
            continue
        subject = f"{bound.protocol}/{bound.host_port}"
        want = f"{sorted(targets)[0]}:{bound.container_port}" if family == 4 else \
            f"[{sorted(targets)[0]}]:{bound.container_port}"
        evidence = [Evidence(f"{intent.who(engine)} publishes {_binding(bound)} → "
                             f"{container.name}:{bound.container_port}", host.ref.id, "docker",
                             container.name)]
        evidence += [p.evidence(host.ref.id) for p in rules] or [Evidence(
            f"{key}: no DNAT for {subject} ({len(published)} DNAT rules read)", host.ref.id,
            "firewall", key)]
        if rules:
            message = (f"Docker publishes {_binding(bound)} → {container.name}:"
                       f"{bound.container_port}, but {table} takes {subject} to "
                       f"{', '.join(p.target for p in rules)}, not to {want}: the port leads "
                       "elsewhere")
        else:
            message = (f"Docker publishes {_binding(bound)} → {container.name}:"
                       f"{bound.container_port}, but {table} has no DNAT for {subject} to "
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


def _addresses(engine: DockerEngine, container: DockerContainer, family: int) -> set[str]:
    """The container's addresses of `family` on networks whose ports Docker DNATs (bridge
    networks in a NAT gateway mode: a routed network publishes at the container's own
    address)."""
    found = set()
    owner = engine.container(container.shares) if container.shares else container
    for endpoint in owner.endpoints if owner else ():
        network = engine.network(endpoint.network_id) or engine.network(endpoint.network)
        address = endpoint.ip if family == 4 else endpoint.ipv6.split("/")[0]
        if address and network is not None and network.driver == "bridge" and \
                intent.gateway_mode(network, family) in intent.NAT_MODES:
            found.add(address)
    return found


def _binding(port: DockerPort) -> str:
    host = f"[{port.host_ip}]" if ":" in port.host_ip else port.host_ip or "0.0.0.0"
    return f"{host}:{port.host_port or '*'}->{port.container_port}/{port.protocol}"
