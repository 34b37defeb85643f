"""Who is at the other end of a connection, from the snapshot alone (`show connections`).

The peer's address is looked up among the namespaces' addresses (the index's owners; a
loopback peer is the namespace itself). Where the other end's own socket is in the snapshot
— the connection seen from the peer's side, its local end our peer — it settles which
namespace that is (private addresses repeat across namespaces) and names its process; else
the socket listening on the peer's port there names it. A connection that came in through a
published port, or goes out to one, says which. A peer held by no namespace read is
"outside".
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from netdiag.model import Connection, NamespaceState, Snapshot, Socket
from netdiag.model.docker import DockerEngine, DockerPort
from netdiag.model.index import index

OUTSIDE = "outside"


@dataclass(frozen=True, slots=True)
class PeerEnd:
    """The other end of one connection."""

    label: str  # the namespace's label, or OUTSIDE, or what makes it ambiguous
    namespace: int | None = None  # the namespace holding the peer's address; None: not known
    # the other end's own socket, when the snapshot holds it: its side of the connection, or
    # the listening (unconnected UDP) socket it reached
    socket: Connection | Socket | None = None
    via: str = ""  # a published port it came in through, or goes out to

    @property
    def text(self) -> str:
        """`client curl[812]`, `outside, published :8080`."""
        owner = self.socket
        process = f"{owner.process}[{owner.pid}]" if owner and owner.pid else ""
        return ", ".join(part for part in (f"{self.label} {process}".strip(), self.via) if part)


def unmapped(address: str) -> str:
    """An IPv4-mapped IPv6 address (a dual-stack socket's ::ffff:10.0.0.1) as IPv4."""
    if address.startswith("::ffff:"):
        mapped = ipaddress.IPv6Address(address).ipv4_mapped
        return str(mapped) if mapped else address
    return address


def _loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


class PeerFinder:
    """Answers `peer_end` for the connections of one snapshot (built once for all of them)."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.index = index(snapshot)
        self.labels = {ns.ref.id: ns.ref.display for ns in snapshot.namespaces}
        # (namespace, protocol, local address, local port) → the connections bound there
        self.ends: dict[tuple[int, str, str, int], list[Connection]] = defaultdict(list)
        for ns in snapshot.namespaces:
            for conn in ns.connections:
                self.ends[ns.ref.id, conn.protocol, unmapped(conn.address), conn.port].append(
                    conn)

    def peer_end(self, ns: NamespaceState, conn: Connection) -> PeerEnd:
        peer, local = unmapped(conn.peer), unmapped(conn.address)
        holders = [ns.ref.id] if _loopback(peer) else \
            list(dict.fromkeys(ns_id for ns_id, _ in self.index.owners_of(peer)))
        # the other end's socket in each holder: its side of the connection, else a listener
        answering = {ns_id: self._other_socket(ns_id, conn, peer, local) or
                     self._listener(ns_id, conn, peer) for ns_id in holders}
        talking = [n for n, sock in answering.items() if isinstance(sock, Connection)]
        waiting = [n for n, sock in answering.items() if sock is not None]
        if len(talking) == 1 or (not talking and len(waiting) == 1):
            holder: int | None = (talking or waiting)[0]
        elif len(holders) == 1:
            holder = holders[0]
        else:
            seen = self.index.owner_seen_from(ns.ref.id, peer) if holders else None
            holder = seen[0] if seen else None
        via = _published_to(self.snapshot.docker, ns.ref.id, conn, holder)
        if holder is None:
            label = f"one of {len(holders)} namespaces holding {peer}" if holders else OUTSIDE
            return PeerEnd(label, via=via)
        label = "this namespace" if holder == ns.ref.id else \
            self.labels.get(holder, f"inode:{holder}")
        return PeerEnd(label, holder, answering.get(holder), via)

    def _listener(self, ns_id: int, conn: Connection, peer: str) -> Socket | None:
        """The socket waiting on the peer's port in `ns_id` (a connection not yet accepted,
        a UDP server that answers unconnected)."""
        state = self.index.namespace(ns_id)
        return next((s for s in state.sockets if s.protocol == conn.protocol and
                     s.port == conn.peer_port and unmapped(s.address) in (peer, "0.0.0.0", "::")),
                    None) if state else None

    def _other_socket(self, ns_id: int, conn: Connection, peer: str,
                      local: str) -> Connection | None:
        """The peer's socket of this connection in `ns_id`: bound to our peer, and talking to
        us (or, through NAT, to someone else: then only when it is the one bound there)."""
        bound = [c for c in self.ends.get((ns_id, conn.protocol, peer, conn.peer_port), ())
                 if c is not conn]
        talking = [c for c in bound if (unmapped(c.peer), c.peer_port) == (local, conn.port)]
        if talking:
            return talking[0]
        return bound[0] if len(bound) == 1 else None


_LAST: tuple[Snapshot | None, PeerFinder | None] = (None, None)


def peer_finder(snapshot: Snapshot) -> PeerFinder:
    """The PeerFinder of a snapshot; every namespace shown from it shares the same one."""
    global _LAST
    cached, built = _LAST
    if cached is snapshot and built is not None:
        return built
    built = PeerFinder(snapshot)
    _LAST = (snapshot, built)
    return built


def _published_to(engines: tuple[DockerEngine, ...], ns_id: int, conn: Connection,
                  holder: int | None) -> str:
    """The published port a connection came through (we are the container behind it, the
    client outside) or goes to (the peer is a host port a container publishes)."""
    for engine in engines:
        for container in engine.containers:
            if not container.running:
                continue
            for port in _bindings(container.bound or container.ports, conn.protocol):
                # from a peer no namespace holds: DNAT kept the client's address
                if container.netns == ns_id and holder is None and \
                        port.container_port == conn.port:
                    return f"published :{port.host_port}"
                if holder == engine.namespace and engine.namespace and \
                        port.host_port == conn.peer_port and \
                        port.host_ip in ("", "0.0.0.0", "::", unmapped(conn.peer)):
                    return f"published → {container.name}:{port.container_port}"
    return ""


def _bindings(ports: tuple[DockerPort, ...], protocol: str) -> list[DockerPort]:
    return [p for p in ports if p.protocol == protocol and p.host_port]
