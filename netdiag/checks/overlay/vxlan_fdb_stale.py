"""vxlan-fdb-stale: VXLAN forwarding and neighbour entries that send traffic to the wrong place.

What it finds
    On each VXLAN device:
    * a forwarding (FDB) entry whose `dst` VTEP has no usable route in the underlay namespace
      (the one the device was created in), or — when the snapshot holds the other VTEPs of the
      same overlay (a lab, or several hosts) — that no VTEP of that overlay owns (entries for a
      multicast group are not VTEPs and are left alone). An overlay is told by what connects
      its devices, not by its VNI alone: two independent Swarms on one machine both use VNI
      4096, and one's VTEPs are not the other's. On a Docker overlay whose peer list the
      snapshot holds, a VTEP in that list is a node of the network, and one that is not is
      docker-overlay-peers' finding. In a fleet snapshot the VTEPs are those of the nodes
      whose agents publish: an entry for a node that left (its agent gone with its lease)
      names the nodes that are left, and its repair is unsafe (a machine without an agent
      is not in the fleet either); one for a live node that is not on the overlay is
      fleet-overlay-mismatch's; and while a node of the fleet could not be read, none is
      called stale this way;
    * a permanent neighbour entry (IP → MAC) on the device whose MAC has no FDB entry, so
      frames for that IP are dropped or flooded; with Docker's MAC scheme (`02:42:` + the IPv4
      bytes), an FDB entry for the IP's own MAC shows which MAC the neighbour should have;
    * a permanent neighbour entry for an address that is now local: an interface on this side
      of the overlay (the bridge the VXLAN device is enslaved to, or a namespace wired to it)
      has it.

Why it matters
    Overlay control planes add `bridge fdb ... dst <VTEP> self permanent` and `ip neigh ...
    nud permanent` entries for every remote endpoint and are supposed to remove them when the
    endpoint goes. When a node leaves, changes address, or a container moves to this host,
    leftovers keep sending its traffic to a VTEP that is gone (silent loss) or across the
    overlay to a MAC that now lives next door. Permanent entries never age out: it stays
    broken until someone deletes them.

Example
    Node B (VTEP 10.0.0.2) left the cluster, but node A's `vxlan0` still has
    `02:42:0a:00:01:05 dst 10.0.0.2 self permanent`; 10.0.0.2 has no route in A's underlay any
    more, so packets for container 10.0.1.5 vanish.

Repair
    Safe: delete the stale FDB entry (`bridge fdb del MAC dev vxlan0 dst VTEP`) and the stale
    neighbour entry (`ip neigh del IP dev vxlan0`); the control plane re-adds correct entries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import DeleteFdbEntry, DeleteNeighbour, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import FdbEntry, Link, Neighbour, Snapshot, intent
from netdiag.model.docker import docker_mac
from netdiag.model.index import SnapshotIndex, index, ip_int, is_multicast

RULE = Rule(code="ND401", name="vxlan-fdb-stale", severity=Severity.ERROR,
            summary="A VXLAN FDB or neighbour entry points at a gone or wrong destination")

FLOOD_MAC = "00:00:00:00:00:00"  # the default entry: where unknown destinations are flooded
_NO_WAY = ("blackhole", "unreachable", "prohibit")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topology = index(snapshot)
    vteps = _vteps_by_overlay(topology)
    docker_overlays = intent.overlay_namespaces(snapshot)
    for state in snapshot.namespaces:
        for link in state.links:
            if link.vxlan is None:
                continue
            ns_id = state.ref.id
            entries = [e for e in state.fdb if e.ifname == link.name and e.dst]
            unicast = [e for e in entries if not is_multicast(e.dst)]
            neighbours = [n for n in state.neighbours
                          if n.ifname == link.name and "permanent" in n.state and n.mac]
            underlay = topology.underlay(ns_id, link)
            peers = _docker_peers(docker_overlays.get(ns_id))
            for entry in unicast:  # a multicast group is no VTEP, and not routed like one
                if peers is not None and entry.dst not in peers:
                    continue  # no node of the Docker network: docker-overlay-peers says so
                yield from _check_entry(topology, ns_id, link, underlay, entry, vteps,
                                        peers is not None)
            yield from _check_neighbours(topology, ns_id, link, entries, neighbours)


def _vteps_by_overlay(topology: SnapshotIndex) -> dict[int | None, dict[str, tuple[int, str]]]:
    """overlay → {VTEP address → (namespace, device)} for every VXLAN device in the snapshot."""
    vteps: dict[int | None, dict[str, tuple[int, str]]] = defaultdict(dict)
    for (ns_id, name), link in topology.links.items():
        if link.vxlan is None:
            continue
        underlay = topology.underlay(ns_id, link)
        if link.vxlan.local:
            addresses = [link.vxlan.local]
        elif underlay is not None:
            addresses = [a.address for a in topology.namespace(underlay).addresses
                         if a.scope == "global"]
        else:
            addresses = []
        for address in addresses:
            vteps[topology.overlay(ns_id, link)][address] = (ns_id, name)
    return vteps


def _docker_peers(placed) -> set[str] | None:
    """The VTEPs Docker's intent says the overlay has (its nodes), or None without intent."""
    if placed is None or not placed[1].peers:
        return None
    engine, network = placed
    return intent.peer_addresses(engine, network) | {engine.swarm.node_addr}


def _check_entry(topology: SnapshotIndex, ns_id: int, link: Link, underlay: int | None,
                 entry: FdbEntry, vteps: dict[int | None, dict[str, tuple[int, str]]],
                 a_peer: bool = False) -> Iterator[Finding]:
    """`a_peer`: Docker's intent lists the entry's VTEP as a node of the network, so only a
    broken underlay route makes it stale."""
    own = vteps[topology.overlay(ns_id, link)]
    here = {address for address, (n, name) in own.items() if (n, name) == (ns_id, link.name)}
    if entry.dst in here:
        return  # an entry pointing at this VTEP itself is odd, but not stale
    fdb = Evidence(f"fdb {entry.mac} dev {link.name} dst {entry.dst} "
                   f"{entry.state or ''}".rstrip(), ns_id, "fdb", f"{link.name}/{entry.mac}")
    problem = ""
    evidence: list[Evidence] = [fdb]
    if underlay is not None and topology.namespace(underlay) is not None:
        route = topology.lookup_route(underlay, entry.dst)
        where = topology.ref(underlay).display
        if route is None:
            problem = f"the underlay ({where}) has no route to VTEP {entry.dst}"
            evidence.append(Evidence(f"no route to {entry.dst} in {where}", underlay, "route",
                                     entry.dst))
        elif route.type in _NO_WAY:
            problem = f"the underlay's route to VTEP {entry.dst} is {route.type}"
            evidence.append(Evidence(f"route {route.dst} type {route.type}", underlay, "route",
                                     route.dst))
    others = set(own) - here
    # Only a snapshot that holds other VTEPs of this overlay shows who the peers are; a single
    # host's snapshot never contains its remote peers, so their absence proves nothing.
    machine = topology.ref(ns_id).machine
    safety = Safety.SAFE
    if machine and not problem:
        if any(topology.ref(holder).machine not in ("", machine)
               for holder, _ in topology.owners_of(entry.dst)):
            return  # a live node's, that is not on the overlay: fleet-overlay-mismatch's
        if any(m.problem for m in topology.snapshot.machines):
            return  # a node of the fleet was not read: the VTEP may be that node's
    if not problem and not a_peer and others and entry.dst not in others:
        if machine:  # a fleet snapshot: the VTEPs are the nodes whose agents publish
            nodes = ", ".join(f"{address} ({topology.ref(own[address][0]).machine})"
                              for address in sorted(others, key=ip_int))
            problem = (f"VTEP {entry.dst} is no node's of the fleet: the VNI "
                       f"{link.vxlan.vni} overlay's other VTEPs are {nodes} (a node that "
                       "left, and whose entries were never withdrawn? or one without an "
                       "agent)")
            # Whether the fleet is every node is not the snapshot's to know: a person says.
            safety = Safety.UNSAFE
        else:
            problem = (f"VTEP {entry.dst} is none of the VTEPs of this VNI {link.vxlan.vni} "
                       f"overlay in the snapshot ({', '.join(sorted(others, key=ip_int))})")
    if not problem:
        return
    title = f"delete the stale FDB entry {entry.mac} dst {entry.dst}"
    if safety is Safety.UNSAFE:
        title += f" (once you know no node without an agent is {entry.dst})"
    yield RULE.finding(
        topology.ref(ns_id), link.name,
        f"FDB entry {entry.mac} on {link.name} is stale: {problem}",
        evidence=evidence, related=(underlay,) if underlay not in (None, ns_id) else (),
        repair=Repair(title, safety, (DeleteFdbEntry(ns_id, link.name, entry.mac,
                                                     entry.dst),)))


def _check_neighbours(topology: SnapshotIndex, ns_id: int, link: Link, entries: list[FdbEntry],
                      neighbours: list[Neighbour]) -> Iterator[Finding]:
    by_mac = {e.mac.lower(): e for e in entries}
    local = _local_addresses(topology, ns_id, link)
    for neighbour in neighbours:
        mac = neighbour.mac.lower()
        evidence = [Evidence(f"neighbour {neighbour.address} lladdr {neighbour.mac} dev "
                             f"{link.name} {' '.join(neighbour.state)}", ns_id, "neighbour",
                             f"{link.name}/{neighbour.address}")]
        steps = [DeleteNeighbour(ns_id, link.name, neighbour.address)]
        if neighbour.address in local:
            owner_ns, owner = local[neighbour.address]
            evidence.append(Evidence(f"{neighbour.address} is on {owner} in "
                                     f"{topology.ref(owner_ns).display}", owner_ns, "address",
                                     neighbour.address))
            if mac in by_mac:
                entry = by_mac[mac]
                evidence.append(Evidence(f"fdb {entry.mac} dev {link.name} dst {entry.dst}",
                                         ns_id, "fdb", f"{link.name}/{entry.mac}"))
                steps.append(DeleteFdbEntry(ns_id, link.name, entry.mac, entry.dst))
            message = (f"permanent neighbour {neighbour.address} on {link.name} sends traffic "
                       f"across the overlay, but {neighbour.address} is now local ({owner})")
        elif mac not in by_mac:
            expected = docker_mac(neighbour.address)
            if expected and expected in by_mac:
                entry = by_mac[expected]
                evidence.append(Evidence(f"fdb {entry.mac} dev {link.name} dst {entry.dst}",
                                         ns_id, "fdb", f"{link.name}/{entry.mac}"))
                message = (f"neighbour {neighbour.address} on {link.name} says "
                           f"{neighbour.mac}, but the FDB knows {entry.mac} "
                           f"(behind {entry.dst}) for that address")
            elif FLOOD_MAC not in by_mac:
                message = (f"neighbour {neighbour.address} on {link.name} points at "
                           f"{neighbour.mac}, which has no FDB entry: its frames go nowhere")
            else:
                continue  # flooded to every VTEP: wasteful, but it gets there
            evidence.append(Evidence(f"no fdb entry for {neighbour.mac} on {link.name}", ns_id,
                                     "fdb", f"{link.name}/{neighbour.mac}"))
        else:
            continue
        yield RULE.finding(topology.ref(ns_id), link.name, message, evidence=evidence,
                           repair=Repair(f"delete the stale neighbour {neighbour.address}",
                                         Safety.SAFE, tuple(steps)))


def _local_addresses(topology: SnapshotIndex, ns_id: int, vxlan: Link
                     ) -> dict[str, tuple[int, str]]:
    """Addresses on this side of the overlay: the namespace itself and what its bridge reaches."""
    found: dict[str, tuple[int, str]] = {}
    state = topology.namespace(ns_id)
    for address in state.addresses:
        if address.ifname != vxlan.name:
            found.setdefault(address.address, (ns_id, address.ifname))
    for port in topology.bridge_ports(ns_id, vxlan.master) if vxlan.master else ():
        peer = topology.peer(ns_id, port)
        if peer is None or peer[0] == ns_id:
            continue
        peer_ns, peer_link = peer
        for address in topology.namespace(peer_ns).addresses:
            if address.ifname == peer_link.name:
                found.setdefault(address.address, (peer_ns, peer_link.name))
    return found
