"""docker-overlay-peers: an overlay network's forwarding entries disagree with its peer list.

What it finds
    In the namespace a Swarm node keeps for an overlay network, on its VXLAN device:
    * a forwarding (FDB) entry whose VTEP is no node of the network (Docker's peer list, from
      `docker network inspect --verbose`): what a node that left, or changed address, leaves
      behind when gossip does not withdraw its entries;
    * a node in the peer list that has no permanent forwarding entry at all: its containers
      cannot be reached from this node (while they send to it, entries the kernel learns
      keep the path open and hide the fault; once traffic pauses, they age out).

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
    A stale entry is deleted (safe: no node of the network uses its VTEP). A peer without
    entries needs Docker to program them again: restart the containers of the network on
    this node, or leave and rejoin the network.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.checks import intent
from netdiag.checks.api import CheckConfig, Rule
from netdiag.checks.finding import Evidence, Finding, Severity
from netdiag.model import Snapshot
from netdiag.repair.steps import DeleteFdbEntry, ManualStep, Repair, Safety

RULE = Rule(code="ND402", name="docker-overlay-peers", severity=Severity.ERROR,
            summary="an overlay's forwarding entries point at a VTEP that is no node of the "
                    "network, or miss a node that is")


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
