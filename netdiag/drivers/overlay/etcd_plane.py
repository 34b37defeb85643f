"""The overlay control plane on etcd: hosts that are not namespaces of one process learn of each
other's endpoints through etcd, and a dead host's endpoints are withdrawn everywhere.

Layout (beside the drivers' store, netdiag/store/etcd.py):

    /netdiag/overlay/v1/host/HOST                   the host's agent is alive (on its lease)
    /netdiag/overlay/v1/peer/NETWORK/ENDPOINT       a joined endpoint (Peer, JSON), on the
                                                    lease of its host's agent

Every host runs an agent (`netdiag net agent --host-ns HOST --store etcd://...`, `run_agent`
here): it keeps a lease alive and names it under host/, and it watches peer/: a remote
endpoint's key appearing is a join delivered to this host (its overlay namespace learns the
VXLAN forwarding and neighbour entries), a key disappearing — withdrawn, or gone with a dead
agent's lease — a leave. Announcing puts the peer's key on its host's agent's lease, so an
agent that dies takes its host's endpoints with it: the others forget them within the lease's
TTL. A host without an agent cannot announce (the error says to start one).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from urllib.parse import quote

from netdiag.drivers.overlay.controlplane import Deliver, Event, Peer
from netdiag.errors import DriverError, NetdiagError, NotFound
from netdiag.etcd import Etcd, StoreUnavailable, decode, encode, prefix_end
from netdiag.store.etcd import EtcdStore
from netdiag.store.records import Network

PREFIX = "/netdiag/overlay/v1/"
HOST_TTL = 5  # seconds: how long a dead agent's endpoints stay known
IDLE_SECONDS = 2  # a watch stream without news is reopened this often


def _host_key(host: str) -> str:
    return f"{PREFIX}host/{quote(host, safe='')}"


PEERS = PREFIX + "peer/"


def _peer_key(network_id: str, endpoint_id: str = "") -> str:
    """An endpoint's key; without the endpoint, the prefix of the network's."""
    return f"{PEERS}{network_id}/{endpoint_id}"


def _peer_of(value: bytes) -> Peer:
    return Peer(**json.loads(value))


def agent_alive(store: EtcdStore, host: str) -> bool:
    """Whether an agent speaks for `host` (its key is on the agent's live lease)."""
    found = store.etcd.post("read", "/kv/range", {"key": encode(_host_key(host)),
                                                  "count_only": True})
    return int(found.get("count", 0)) > 0


class EtcdControlPlane:
    """announce/withdraw/peers on etcd (the ControlPlane protocol)."""

    def __init__(self, etcd: Etcd):
        self.etcd = etcd

    def announce(self, network: Network, peer: Peer) -> None:
        found = self.etcd.post("read", "/kv/range", {"key": encode(_host_key(peer.host))})
        if not found.get("kvs"):
            raise DriverError(f"no overlay agent runs for host {peer.host}: start `netdiag net "
                              f"agent --host-ns {peer.host} --store {self.etcd.url}` there")
        self._put(network, peer, int(found["kvs"][0].get("lease", 0)))

    def _put(self, network: Network, peer: Peer, lease: int) -> None:
        self.etcd.post("announce", "/kv/put", {
            "key": encode(_peer_key(network.id, peer.endpoint_id)),
            "value": encode(json.dumps(asdict(peer))), "lease": lease})

    def withdraw(self, network: Network, peer: Peer) -> None:
        self.etcd.post("withdraw", "/kv/deleterange",
                       {"key": encode(_peer_key(network.id, peer.endpoint_id))})

    def peers(self, network: Network) -> tuple[Peer, ...]:
        prefix = _peer_key(network.id)
        found = self.etcd.post("read", "/kv/range", {"key": encode(prefix),
                                                     "range_end": prefix_end(prefix)})
        return tuple(_peer_of(decode(kv["value"])) for kv in found.get("kvs", []))


def run_agent(store: EtcdStore, host: str, deliver: Deliver, stop: threading.Event,
              ttl: int = HOST_TTL, ready: Callable[[], None] = lambda: None,
              log: Callable[[str], None] = lambda line: None) -> None:
    """Be `host`'s agent until `stop` is set: keep its lease alive, and deliver every other
    host's joins and leaves to it. Starting (again, after a crash that withdrew them) it
    announces its host's joined endpoints and teaches the host everyone else's. On the way
    out the lease is revoked: this host's endpoints are withdrawn at once."""
    etcd = store.etcd

    def network_of(network_id: str) -> Network:
        return store.network(network_id)

    lease = int(etcd.post("lease grant", "/lease/grant", {"TTL": ttl})["ID"])
    etcd.post("register", "/kv/put", {"key": encode(_host_key(host)), "value": encode(host),
                                      "lease": lease})
    keeper = threading.Thread(target=_keep_alive, args=(etcd, lease, ttl, stop), daemon=True)
    keeper.start()
    try:
        watcher = _Watcher(etcd, host, network_of, deliver, log)
        watcher.revision = _resync(EtcdControlPlane(etcd), store, host, lease, deliver)
        ready()
        watcher.run(stop)
    finally:
        stop.set()
        try:
            etcd.post("lease revoke", "/lease/revoke", {"ID": lease})
        except StoreUnavailable:
            pass  # it runs out by itself


def _resync(plane: EtcdControlPlane, store: EtcdStore, host: str, lease: int,
            deliver: Deliver) -> int:
    """Announce `host`'s joined overlay endpoints on `lease` and deliver every other host's
    to it; the revision the watch goes on from (nothing after it is missed)."""
    revision = int(store.etcd.post("read", "/kv/range", {"key": encode(PEERS),
                                                         "count_only": True})
                   ["header"]["revision"])
    for network in store.networks():
        if network.driver != "overlay":
            continue
        for endpoint in store.endpoints(network.id, host=host):
            if endpoint.sandbox and endpoint.datum("vtep"):
                plane._put(network, Peer.of(endpoint), lease)
        for peer in plane.peers(network):
            if peer.host != host:
                deliver(network, host, Event.JOIN, peer)
    return revision


def _keep_alive(etcd: Etcd, lease: int, ttl: int, stop: threading.Event) -> None:
    while not stop.wait(ttl / 3):
        try:
            answer = etcd.post("lease keepalive", "/lease/keepalive", {"ID": lease})
        except StoreUnavailable:
            continue  # etcd is away: try again; the lease may run out meanwhile
        if int(answer.get("result", {}).get("TTL", 0) or 0) <= 0:
            stop.set()  # the lease is gone: this agent no longer speaks for its host


def _lines(raw) -> Iterator[bytes]:
    """The stream's lines as they come: each HTTP chunk as it arrives (iter_lines would wait
    for 512 bytes, holding a small event back until the next ones)."""
    pending = b""
    for chunk in raw.read_chunked():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())


class _Watcher:
    """The stream of peer/ changes, applied to `host`."""

    def __init__(self, etcd: Etcd, host: str, network_of: Callable[[str], Network],
                 deliver: Deliver, log: Callable[[str], None]):
        self.etcd, self.host, self.network_of, self.deliver = etcd, host, network_of, deliver
        self.log = log
        self.revision = 0  # the last one applied (or, before any event, the watch's start)

    def apply(self, event: dict, networks: dict[str, Network | None]) -> None:
        """Deliver one event; `networks` caches the lookups of one batch of events (a dead
        agent's lease takes all its host's endpoints in one batch: one store read, not one
        per endpoint)."""
        key = decode(event["kv"]["key"]).decode()
        network_id = key.removeprefix(PEERS).split("/")[0]
        leaving = event.get("type") == "DELETE"  # PUT, the enum's zero, is left out
        value = event.get("prev_kv", {}).get("value") if leaving else event["kv"].get("value")
        if not value:
            return  # a deletion etcd kept no earlier value for: nothing known to undo
        peer = _peer_of(decode(value))
        if peer.host == self.host:
            return  # our own endpoints are programmed where they join
        if network_id not in networks:
            try:
                networks[network_id] = self.network_of(network_id)
            except NotFound:
                networks[network_id] = None  # a network this store no longer has
        network = networks[network_id]
        if network is None:
            return
        event_kind = Event.LEAVE if leaving else Event.JOIN
        try:
            self.deliver(network, self.host, event_kind, peer)
        except NetdiagError as exc:  # one peer that cannot be programmed stops no other
            self.log(f"{event_kind.value} {peer.ip} of {peer.host} on {network.name}: {exc}")
            return
        self.log(f"{event_kind.value} {peer.ip} ({peer.mac} at {peer.vtep}) on {network.name}")

    def run(self, stop: threading.Event) -> None:
        """Watch from now until `stop`, reconnecting from the last revision seen when the
        stream breaks or has been idle for IDLE_SECONDS (that is how `stop` is noticed), so
        neither an etcd restart nor a reconnect loses an event."""
        while not stop.is_set():
            request = {"create_request": {"key": encode(PEERS), "range_end": prefix_end(PEERS),
                                          "prev_kv": True}}
            if self.revision:
                request["create_request"]["start_revision"] = self.revision + 1
            try:
                self._stream(request, stop)
            except Exception:  # noqa: BLE001 - broken, idle or refused: reconnect
                if self.revision == 0:
                    stop.wait(0.5)  # etcd is away before the first answer: not in a loop

    def _stream(self, request: dict, stop: threading.Event) -> None:
        """Apply one watch stream's events until it ends, keeping the revision they reached
        (in self: a stream ends by an exception as often as not)."""
        import requests

        url = self.etcd.client.get_url("/watch")
        with requests.post(url, json=request, stream=True,
                           timeout=(5, IDLE_SECONDS)) as answer:
            for line in _lines(answer.raw):
                if stop.is_set():
                    return
                result = json.loads(line).get("result", {})
                if result.get("created"):  # the watch starts after the store's revision now
                    self.revision = max(self.revision, int(result["header"]["revision"]))
                networks: dict[str, Network | None] = {}
                for event in result.get("events", []):
                    self.apply(event, networks)
                    self.revision = max(self.revision, int(event["kv"].get("mod_revision", 0)))
