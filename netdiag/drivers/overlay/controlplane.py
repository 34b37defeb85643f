"""The overlay control plane: how every host on a network learns where remote endpoints are.

`ControlPlane` is the interface the driver uses — announce a local endpoint, withdraw it, list
the peers of a network. The embedded implementation keeps the truth in the driver store (the
endpoint records carry their host's VTEP) and delivers each event by calling `deliver` for
every other host that has the network, which works because every host is a namespace on this
machine. A distributed implementation would publish the same events to remote agents (gossip,
etcd watch) that call the same per-host handler; nothing else in the driver would change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from netdiag.drivers.ipam import IPV6_ADDRESS
from netdiag.store import Store
from netdiag.store.records import Endpoint, Network


@dataclass(frozen=True, slots=True)
class Peer:
    """An endpoint as remote hosts need it: where it lives and what to program for it."""

    endpoint_id: str
    host: str  # host namespace path
    vtep: str  # the host's underlay address
    ip: str
    mac: str
    ip6: str = ""  # its IPv6 address on a dual-stack network (no prefix length), else ""

    @classmethod
    def of(cls, endpoint: Endpoint) -> Peer:
        return cls(endpoint.id, endpoint.host, endpoint.datum("vtep"), endpoint.ip, endpoint.mac,
                   endpoint.datum(IPV6_ADDRESS).split("/")[0])


class Event(str, Enum):
    JOIN = "join"
    LEAVE = "leave"


# What a host does with an event about a remote peer: (network, host path, event, peer).
Deliver = Callable[[Network, str, Event, Peer], None]


class ControlPlane(Protocol):
    def announce(self, network: Network, peer: Peer) -> None: ...

    def withdraw(self, network: Network, peer: Peer) -> None: ...

    def peers(self, network: Network) -> tuple[Peer, ...]: ...


class EmbeddedControlPlane:
    """Store-backed control plane for hosts that are namespaces on one machine."""

    def __init__(self, store: Store, deliver: Deliver):
        self.store = store
        self.deliver = deliver

    def peers(self, network: Network) -> tuple[Peer, ...]:
        """Every joined endpoint of the network (the store holds them once they have joined)."""
        return tuple(Peer.of(e) for e in self.store.endpoints(network.id)
                     if e.sandbox and e.datum("vtep"))

    def _hosts(self, network: Network, peer: Peer) -> list[str]:
        hosts = {e.host for e in self.store.endpoints(network.id) if e.id != peer.endpoint_id}
        return sorted(hosts - {peer.host})

    def announce(self, network: Network, peer: Peer) -> None:
        for host in self._hosts(network, peer):
            self.deliver(network, host, Event.JOIN, peer)

    def withdraw(self, network: Network, peer: Peer) -> None:
        for host in self._hosts(network, peer):
            self.deliver(network, host, Event.LEAVE, peer)
