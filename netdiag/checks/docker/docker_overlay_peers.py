"""docker-overlay-peers: an overlay network's forwarding or neighbour entries disagree with
its peers.

What it finds
    In the namespace a Swarm node keeps for an overlay network, on its VXLAN device, against
    Docker's view from `docker network inspect --verbose` (the peer list, and each endpoint
    on another node with that node's VTEP):
    * a forwarding (FDB) entry whose VTEP is no node of the network: what a node that left,
      or changed address, leaves behind when gossip does not withdraw its entries;
    * a node in the peer list that has no permanent forwarding entry at all: its containers
      cannot be reached from this node (while they send to it, entries the kernel learns
      keep the path open and hide the fault; once traffic pauses, they age out);
    * an endpoint on another node without its permanent neighbour entry: the VXLAN device
      answers containers' ARP requests from those entries (proxy), and Docker ignores the
      kernel's misses in Swarm mode, so its address no longer resolves;
    * an endpoint whose forwarding entry points at another node than the one it runs on:
      its traffic goes to a VTEP that drops it (the endpoint moved, the entry stayed).

    Docker versions: every layout alike (Swarms of 20.10 and of 28): it reads the VXLAN
    device's forwarding and neighbour entries, never the firewall.

Why it matters
    Docker programs one permanent FDB and neighbour entry per remote endpoint and never ages
    them. An entry for a VTEP that is gone sends that container's traffic into the void; a
    peer without entries is a node this one cannot talk to over the overlay, although
    `docker service ps` shows its tasks running. Both go unnoticed until a request fails.

Example
    ND402 docker-overlay-peers  overlay app: vxlan0
      network app: FDB entry 02:42:0a:00:01:63 on vxlan0 points at VTEP 198.18.0.99, which
      is no node of the network (peers: 198.18.0.1, 198.18.0.2)
      repair (safe): Delete the entry
        $ bridge fdb del 02:42:0a:00:01:63 dev vxlan0 dst 198.18.0.99 self

Repair
    A stale entry is deleted (safe: no node of the network uses its VTEP). A missing
    neighbour entry is added as Docker writes it (safe when the endpoint's forwarding entry
    confirms its MAC). An entry pointing at the wrong node is moved to the endpoint's node
    (unsafe: Docker's view may be the stale one). A peer without entries needs Docker to
    program them again: restart the containers of the network on this node, or leave and
    rejoin the network.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import (
    AddFdbEntry,
    DeleteFdbEntry,
    ManualStep,
    Repair,
    ReplaceNeighbour,
    Safety,
)
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import FdbEntry, Link, NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerEngine, DockerNetwork, docker_mac

RULE = Rule(code="ND402", name="docker-overlay-peers", severity=Severity.ERROR,
            summary="an overlay's forwarding or neighbour entries disagree with the network's "
                    "peers and the nodes its endpoints run on")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for ns_id, (engine, network) in intent.overlay_namespaces(snapshot).items():
        if engine.swarm.state != "active" or not network.peers:
            continue
        state = snapshot.namespace(ns_id)
        peers = intent.peer_addresses(engine, network)
        listed = ", ".join(sorted({p.address for p in network.peers}))
        said = Evidence(f"{intent.who(engine)}: network {network.name} has peers {listed}",
                        ns_id, "docker", network.name)
        for link in state.links:
            if link.vxlan is None:
                continue
            # Docker's entries are permanent; learned ones come and go with traffic (and hide
            # a missing permanent entry only while traffic flows, moby/moby#52661).
            entries = [e for e in state.fdb if e.ifname == link.name and e.dst
                       and e.mac != "00:00:00:00:00:00" and "permanent" in e.state]
            for entry in entries:
                if entry.dst in peers or entry.dst == engine.swarm.node_addr:
                    continue
                yield RULE.finding(
                    state.ref, link.name,
                    f"network {network.name}: FDB entry {entry.mac} on {link.name} points at "
                    f"VTEP {entry.dst}, which is no node of the network (peers: {listed})",
                    evidence=[said, Evidence(f"fdb {entry.mac} dev {link.name} dst "
                                             f"{entry.dst}", ns_id, "fdb",
                                             f"{link.name}/{entry.mac}")],
                    repair=Repair("Delete the entry", Safety.SAFE, (DeleteFdbEntry(
                        ns_id, link.name, entry.mac, entry.dst),)))
            have = {e.dst for e in entries}
            for peer in sorted(peers - have):
                yield RULE.finding(
                    state.ref, link.name,
                    f"network {network.name}: node {peer} is a peer of the network, but "
                    f"{link.name} has no forwarding entry to it: its containers cannot be "
                    "reached from here",
                    evidence=[said, Evidence(f"no fdb entry on {link.name} with dst {peer}",
                                             ns_id, "fdb", link.name)],
                    repair=Repair("Let Docker program the entries again", Safety.MANUAL, (
                        ManualStep(f"restart this node's containers on {network.name} (or "
                                   "disconnect and connect them)", ns_id),)))
            yield from _endpoints(state, engine, network, link, entries, have & peers)


def _remote_endpoints(engine: DockerEngine, network: DockerNetwork) -> dict[str, str]:
    """Endpoint address → the VTEP of the node it runs on, for endpoints on other nodes."""
    peers = intent.peer_addresses(engine, network)
    return {address.split("/")[0]: vtep for vip in network.vips for address, vtep in vip.tasks
            if address and vtep in peers}


def _endpoints(state: NamespaceState, engine: DockerEngine, network: DockerNetwork, link: Link,
               entries: list[FdbEntry], programmed: set[str]) -> Iterator[Finding]:
    """Each remote endpoint against its neighbour and forwarding entries (only towards nodes
    that have entries at all: a node without any is reported once, above)."""
    ns_id = state.ref.id
    neighbours = {n.address for n in state.neighbours
                  if n.ifname == link.name and "permanent" in n.state}
    forwarding = {e.mac: e for e in entries}
    for address, vtep in sorted(_remote_endpoints(engine, network).items()):
        if vtep not in programmed:
            continue
        mac = docker_mac(address)
        said = Evidence(f"{intent.who(engine)}: network {network.name} has endpoint {address} "
                        f"on node {vtep}", ns_id, "docker", network.name)
        entry = forwarding.get(mac)
        if address not in neighbours:
            confirmed = entry is not None and entry.dst == vtep
            yield RULE.finding(
                state.ref, f"{link.name}/{address}",
                f"network {network.name}: endpoint {address} (on node {vtep}) has no neighbour "
                f"entry on {link.name}: containers here cannot resolve its address",
                evidence=[said, Evidence(f"no permanent neighbour {address} on {link.name}",
                                         ns_id, "neighbour", f"{link.name}/{address}")],
                repair=Repair("Add the neighbour entry as Docker writes it",
                              Safety.SAFE if confirmed else Safety.MANUAL,
                              (ReplaceNeighbour(ns_id, link.name, address, mac),)))
        if entry is not None and entry.dst != vtep:
            yield RULE.finding(
                state.ref, f"{link.name}/{mac}",
                f"network {network.name}: FDB entry {mac} ({address}) on {link.name} points at "
                f"node {entry.dst}, but the endpoint runs on node {vtep}: its traffic goes to "
                "the wrong host",
                evidence=[said, Evidence(f"fdb {mac} dev {link.name} dst {entry.dst}", ns_id,
                                         "fdb", f"{link.name}/{mac}")],
                repair=Repair("Point the entry at the endpoint's node", Safety.UNSAFE, (
                    DeleteFdbEntry(ns_id, link.name, mac, entry.dst),
                    AddFdbEntry(ns_id, link.name, mac, vtep))))
