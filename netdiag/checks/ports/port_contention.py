"""port-contention: two things claim one port, or a published port leads nowhere.

What it finds
    * two listening sockets of different programs on the same protocol, address and port
      (TCP; UDP only on one specific address, since UDP services such as mDNS share ports
      on purpose);
    * a published-port DNAT rule that captures a port a process in the same namespace
      listens on: outside traffic goes to the container, the process only sees local traffic
      (Docker holds its published ports on purpose and does not count: docker-proxy with the
      userland proxy on, dockerd itself — the port reservation — with it off; with Docker's
      intent, only for the ports its running containers bind; Podman's conmon likewise
      holds each port its containers publish and is excused the same way — by Podman's
      intent when its engine is read, by name otherwise);
    * with Docker's intent, a docker-proxy that holds a port no running container of its
      engine binds (warning): a proxy that outlived its container, so the next `docker run -p`
      on that port fails with "port is already allocated";
    * two DNAT rules that send the same host port to different backends: only the first one
      ever matches;
    * a dangling publish: a DNAT to an address in a namespace of the snapshot where nothing
      listens on the target port (warning);
    * a published host port inside the namespace's ephemeral range, `ip_local_port_range`,
      that no socket holds (Docker's userland proxy off), so outgoing connections may take it
      first (warning). Docker's `-P` picks host ports from that range.
    Docker's embedded-DNS rules (127.0.0.11) belong to dns-unreachable and are skipped here.
    With `check --probe`, the TCP connects to the port from the namespace are cited.

    Docker versions: DNAT rules of 20.10 and 28 alike (`-A DOCKER ... -j DNAT` in iptables,
    either backend), docker-proxy and dockerd's port reservation on both. Docker 29's
    nftables maps are not read: their publications are neither judged nor counted.

Why it matters
    "Bind for 0.0.0.0:8080 failed: port is already allocated" is the loud version. The quiet
    versions are worse: a host service that silently stopped receiving outside traffic, a
    stale rule left by a crashed container pointing at an address now used by another one, a
    published port that refuses connections because the service inside listens elsewhere.

Example
    ND301 port-contention  host: tcp/9090
      DNAT rule nat/DOCKER/4 takes tcp/9090 to 172.18.0.2:80 (web), shadowing python3
      (pid 4242) on tcp 0.0.0.0:9090 in this namespace: outside traffic never reaches it
        · nft nat/DOCKER/4: -A DOCKER ! -i br-web -p tcp -m tcp --dport 9090 -j DNAT
          --to-destination 172.18.0.2:80
        · python3 (pid 4242) on tcp 0.0.0.0:9090

Repair
    Decide which one should own the port (manual): stop the process or publish on another
    port; end a leftover docker-proxy by its pid (or restart the daemon); delete the shadowed
    duplicate DNAT rule (unsafe: the printed command removes it); start the service or fix
    the container's port for a dangling publish; move published ports out of the ephemeral
    range.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from itertools import chain

from netdiag.checks.dnat import Publish, publishes
from netdiag.findings import probes as probe_evidence
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import DeleteIptablesRule, ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Match, NamespaceState, Snapshot, Socket, intent
from netdiag.model.facts import WILDCARD_ADDRESSES
from netdiag.model.index import SnapshotIndex, index

RULE = Rule(code="ND301", name="port-contention", severity=Severity.ERROR,
            summary="two sockets or DNAT rules claim one port, or a published port leads nowhere")

# The engine's own holders of the ports it publishes: Docker's userland proxy, or with the proxy
# off the daemon itself, which binds each published port to reserve it; Podman's conmon, which
# binds each port its container publishes (to reserve it) and keeps it while the container runs.
PORT_KEEPERS = ("docker-proxy", "dockerd", "conmon")
EPHEMERAL_SYSCTL = "net.ipv4.ip_local_port_range"


Reserved = set[tuple[str, int]] | None  # (protocol, host port) Docker holds; None: unknown


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topo = index(snapshot)
    no_sockets = {gap.namespace for gap in snapshot.gaps if gap.collector == "sockets"}
    reservations = _reservations(snapshot)
    for state in snapshot.namespaces:
        published = publishes(state)
        reserved = reservations.get(state.ref.id)
        for finding in chain(_socket_clashes(state),
                             _captured_listeners(topo, state, published, reserved),
                             _conflicting_dnats(topo, state, published),
                             _dangling(topo, state, published, no_sockets),
                             _ephemeral(state, published), _leftover_proxies(state, reserved)):
            yield _with_probes(snapshot, finding)


def _reservations(snapshot: Snapshot) -> dict[int, set[tuple[str, int]]]:
    """Per engine namespace (Docker's and Podman's), the host ports its running containers and
    services bind."""
    found: dict[int, set[tuple[str, int]]] = defaultdict(set)
    for engine, host in intent.engines(snapshot, runtime=None):
        ports = found[host.ref.id]
        for container in engine.containers:
            if container.running:
                ports.update((p.protocol, p.host_port) for p in container.bound if p.host_port)
        for service in engine.services:
            ports.update((p.protocol, p.host_port) for p in service.ports if p.host_port)
    return found


def _is_reservation(sock: Socket, reserved: Reserved) -> bool:
    """Is `sock` Docker holding a port it publishes? By intent where there is one, by the
    holder's name otherwise (a version-1 snapshot, an engine that cannot be placed)."""
    if sock.process not in PORT_KEEPERS:
        return False
    return reserved is None or (sock.protocol, sock.port) in reserved


def _leftover_proxies(state: NamespaceState, reserved: Reserved) -> Iterator[Finding]:
    if reserved is None:
        return
    for sock in state.sockets:
        if sock.process != "docker-proxy" or (sock.protocol, sock.port) in reserved:
            continue
        yield RULE.finding(
            state.ref, f"{sock.protocol}/{sock.port}",
            f"{_describe_socket(sock)} holds a port that no running container publishes: a "
            f"proxy that outlived its container; publishing {sock.port} again fails with "
            "\"port is already allocated\"",
            severity=Severity.WARNING,
            evidence=(_socket_evidence(state.ref.id, sock),
                      Evidence(f"Docker: no running container binds {sock.protocol}/{sock.port}",
                               state.ref.id, "docker", f"{sock.protocol}/{sock.port}")),
            repair=Repair("End the leftover proxy", Safety.MANUAL, (ManualStep(
                f"kill {sock.pid}" if sock.pid else "restart the Docker daemon",
                state.ref.id),)))


def _with_probes(snapshot: Snapshot, finding: Finding) -> Finding:
    """With `check --probe`, what a connect to the finding's port from its namespace gave."""
    port = finding.subject.rpartition(":")[2].rpartition("/")[2]
    measured = probe_evidence.ports_on(snapshot, finding.namespace.id, int(port)) \
        if port.isdigit() else ()
    return replace(finding, evidence=finding.evidence + measured) if measured else finding


def _describe_socket(sock: Socket) -> str:
    owner = sock.process or "unknown process"
    pid = f" (pid {sock.pid})" if sock.pid else ""
    return f"{owner}{pid} on {sock.protocol} {sock.address or '*'}:{sock.port}"


def _socket_evidence(ns_id: int, sock: Socket) -> Evidence:
    return Evidence(_describe_socket(sock), ns_id, "socket",
                    f"{sock.protocol}/{sock.address}:{sock.port}")


# --- sockets against sockets ------------------------------------------------------------------


def _socket_clashes(state: NamespaceState) -> Iterator[Finding]:
    groups: dict[tuple[str, int, int], list[Socket]] = defaultdict(list)
    for sock in state.sockets:
        groups[(sock.protocol, sock.family, sock.port)].append(sock)
    for (protocol, _, port), socks in sorted(groups.items()):
        for i, a in enumerate(socks):
            clash = next((b for b in socks[i + 1:] if _clash(a, b)), None)
            if clash is not None:
                yield RULE.finding(
                    state.ref, f"{protocol}/{port}",
                    f"{_describe_socket(a)} and {_describe_socket(clash)} claim the same port: "
                    "the kernel splits connections between them",
                    evidence=(_socket_evidence(state.ref.id, a),
                              _socket_evidence(state.ref.id, clash)),
                    repair=Repair("Stop one of the two programs, or move it to another port",
                                  Safety.MANUAL, (ManualStep(
                                      f"stop {_describe_socket(clash)} or {_describe_socket(a)}",
                                      state.ref.id),)))
                break


def _clash(a: Socket, b: Socket) -> bool:
    if a.process and b.process and a.process == b.process:
        return False  # SO_REUSEPORT workers of one program
    if a.pid is not None and a.pid == b.pid:
        return False
    if a.protocol == "udp":
        return a.address == b.address and a.address not in WILDCARD_ADDRESSES
    return (a.address == b.address or a.address in WILDCARD_ADDRESSES
            or b.address in WILDCARD_ADDRESSES)


# --- DNAT rules -------------------------------------------------------------------------------


def _local(state: NamespaceState, address: str) -> bool:
    return any(a.address == address for a in state.addresses)


def _captures(publish: Publish, state: NamespaceState, sock: Socket, reserved: Reserved
              ) -> bool:
    if sock.protocol != publish.protocol or sock.port != publish.port:
        return False
    if _is_reservation(sock, reserved):
        return False
    if publish.to_port == sock.port and (sock.address in WILDCARD_ADDRESSES
                                         or sock.address == publish.to_address) \
            and _local(state, publish.to_address):
        return False  # the DNAT leads to this very socket
    if publish.destination is not None and not publish.destination.negated \
            and sock.address not in WILDCARD_ADDRESSES:
        return publish.destination.value.split("/")[0] == sock.address
    return True


def _backend(topo: SnapshotIndex, ns_id: int, publish: Publish) -> tuple[str, tuple[int, ...]]:
    """The DNAT target as people know it — "172.18.0.2:80 (web)" — and its namespace."""
    owner = topo.owner_seen_from(ns_id, publish.to_address)
    ref = topo.ref(owner[0]) if owner else None
    if ref is None:
        return publish.target, ()
    return f"{publish.target} ({ref.display})", (ref.id,)


def _captured_listeners(topo: SnapshotIndex, state: NamespaceState, publishes: list[Publish],
                        reserved: Reserved) -> Iterator[Finding]:
    ns_id = state.ref.id
    for publish in publishes:
        sock = next((s for s in state.sockets if _captures(publish, state, s, reserved)), None)
        if sock is None:
            continue
        backend, related = _backend(topo, ns_id, publish)
        yield RULE.finding(
            state.ref, f"{publish.protocol}/{publish.port}",
            f"DNAT rule {publish.key} takes {publish.protocol}/{publish.port} to "
            f"{backend}, shadowing {_describe_socket(sock)} in this namespace: outside "
            "traffic never reaches it",
            evidence=(publish.evidence(ns_id), _socket_evidence(ns_id, sock)),
            related=tuple(i for i in related if i != ns_id),
            repair=Repair("Give the port to one of them", Safety.MANUAL, (ManualStep(
                f"stop {_describe_socket(sock)}, or publish the container on another port",
                ns_id),)))


def _compatible(a: Match | None, b: Match | None) -> bool:
    """Can one packet match both conditions? Only two different positive values exclude it."""
    if a is None or b is None or a.negated or b.negated:
        return True
    return a.value == b.value


def _conflicting_dnats(topo: SnapshotIndex, state: NamespaceState, publishes: list[Publish]
                       ) -> Iterator[Finding]:
    groups: dict[tuple[str, int, int, str], list[Publish]] = defaultdict(list)
    for publish in publishes:
        groups[(publish.rule.backend, publish.rule.family, publish.port,
                publish.protocol)].append(publish)
    ns_id = state.ref.id
    for (_, _, port, protocol), group in sorted(groups.items()):
        group.sort(key=lambda p: (p.rule.chain, p.rule.position))
        reported = False
        for i, first in enumerate(group):
            for later in group[i + 1:]:
                if reported or first.target == later.target \
                        or not _compatible(first.destination, later.destination) \
                        or not _compatible(first.in_interface, later.in_interface):
                    continue
                reported = True
                (first_name, first_ns), (later_name, later_ns) = (
                    _backend(topo, state.ref.id, first), _backend(topo, state.ref.id, later))
                yield RULE.finding(
                    state.ref, f"{protocol}/{port}",
                    f"two DNAT rules take {protocol}/{port} to different backends: "
                    f"{first_name} by {first.key} and {later_name} by {later.key}; "
                    "the second never matches",
                    evidence=(first.evidence(ns_id), later.evidence(ns_id)),
                    related=tuple(dict.fromkeys(i for i in first_ns + later_ns if i != ns_id)),
                    repair=_delete(ns_id, later))


def _delete(ns_id: int, publish: Publish) -> Repair:
    args = tuple(shlex.split(publish.rule.text)[2:]) if publish.rule.text.startswith("-A ") \
        else ()
    if not args:
        return Repair("Delete the stale DNAT rule", Safety.MANUAL,
                      (ManualStep(f"delete DNAT rule {publish.key}", ns_id),))
    return Repair(f"Delete the stale DNAT rule to {publish.target}", Safety.UNSAFE,
                  (DeleteIptablesRule(ns_id, "nat", publish.rule.chain, args,
                                      publish.rule.family),))


def _dangling(topo: SnapshotIndex, state: NamespaceState, publishes: list[Publish],
              no_sockets: set[int | None]) -> Iterator[Finding]:
    for publish in publishes:
        owner = topo.owner_seen_from(state.ref.id, publish.to_address)
        for target_ns, _ in (owner,) if owner else ():
            target = topo.namespace(target_ns)
            if target is None or target_ns in no_sockets:
                continue
            if any(s.protocol == publish.protocol and s.port == publish.to_port
                   and (s.address in WILDCARD_ADDRESSES or s.address == publish.to_address)
                   for s in target.sockets):
                continue
            where = target.ref.display
            yield RULE.finding(
                state.ref, f"{publish.protocol}/{publish.port}",
                f"published {publish.protocol}/{publish.port} leads to {publish.target} in "
                f"{where}, where nothing listens on {publish.protocol} port {publish.to_port}",
                severity=Severity.WARNING, related=(target_ns,) if target_ns != state.ref.id
                else (),
                evidence=(publish.evidence(state.ref.id),
                          Evidence(f"no {publish.protocol} listener on port {publish.to_port} "
                                   f"in {where}", target_ns, "socket",
                                   f"{publish.protocol}/{publish.to_address}:{publish.to_port}")),
                repair=Repair("Start the service, or fix the published port", Safety.MANUAL,
                              (ManualStep(f"make something listen on {publish.target} in "
                                          f"{where}, or remove the publish", target_ns),)))


def _ephemeral(state: NamespaceState, publishes: list[Publish]) -> Iterator[Finding]:
    bounds = _port_range(state.sysctl(EPHEMERAL_SYSCTL))
    if bounds is None:
        return
    low, high = bounds
    # A port some socket has bound (docker-proxy, by default) is never picked as a source
    # port, so only unheld published ports can be taken by outgoing connections.
    held = {(s.protocol, s.port) for s in state.sockets}
    seen: set[tuple[str, int]] = set()
    for publish in publishes:
        key = (publish.protocol, publish.port)
        if key in seen or key in held or not low <= publish.port <= high:
            continue
        seen.add(key)
        yield RULE.finding(
            state.ref, f"{publish.protocol}/{publish.port}",
            f"published {publish.protocol}/{publish.port} is inside the ephemeral range "
            f"{low}-{high}: an outgoing connection may take it first",
            severity=Severity.WARNING,
            evidence=(publish.evidence(state.ref.id),
                      Evidence(f"{EPHEMERAL_SYSCTL} = {low} {high}", state.ref.id, "sysctl",
                               EPHEMERAL_SYSCTL)),
            repair=Repair("Publish on a port outside the ephemeral range", Safety.MANUAL,
                          (ManualStep(f"publish on a port below {low}, or reserve "
                                      f"{publish.port} in net.ipv4.ip_local_reserved_ports",
                                      state.ref.id),)))


def _port_range(value: str | None) -> tuple[int, int] | None:
    parts = (value or "").split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])
