"""Where a probe may go: only to namespaces the snapshot describes, unless the user says otherwise.

netdiag runs on hosts that are in production. A probe to an address netdiag did not read —
the host's upstream resolver, a gateway beyond the machine, an address on the office network
that happens to repeat a container's — is traffic the user never asked for, to machines netdiag
knows nothing about. So a target is *inside* only when both hold:

* the address is held by a namespace of the snapshot (or is loopback in the source itself,
  such as Docker's 127.0.0.11), and
* the first hop stays inside: the source's route to it is local, or leaves by an interface
  whose L2 segment holds the next hop (the gateway, or the address itself) in a namespace of
  the snapshot.

Private addresses repeat across hosts (every Docker host has 172.17.0.1), so "some namespace
holds it" alone would let a probe follow the default route to a real machine that shares a
container's address; the first-hop test closes that. Anything else is probed only with
`--probe-external`, which no test, benchmark or demo passes.

Inside is not yet reachable: `reach` follows the routes hop by hop through the namespaces of
the snapshot — a router with no route onward, or a repeated address that the path reaches in
another namespace than the one meant, is no target a sweep could say anything about. The
plan uses it to probe what a namespace can plausibly reach, nearest first.
"""

from __future__ import annotations

import ipaddress

from netdiag.model.index import InterfaceRef, SnapshotIndex

MAX_HOPS = 8  # routers between two namespaces of one machine: a few at most


def outside_reason(topology: SnapshotIndex, ns_id: int, address: str) -> str:
    """Why `address` is not a target a probe from `ns_id` may be sent to; "" when it is."""
    try:
        parsed = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return f"{address} is not an IP address"
    if parsed.is_loopback:
        return ""  # it never leaves the source namespace
    if any(owner == ns_id for owner, _ in topology.owners_of(address)):
        return ""
    if not topology.owners_of(address):
        return f"{address} is held by no namespace netdiag read"
    found = topology.egress(ns_id, address)
    if found is None:
        return f"no route to {address}"
    route, link = found
    if route.type == "local":
        return ""
    next_hop = route.gateway or address
    for owner, held in topology.owners_of(next_hop):
        if topology.same_segment(InterfaceRef(ns_id, link.name), InterfaceRef(owner, held.ifname)):
            return ""
    return (f"the route to {address} leaves through {next_hop}, which no namespace netdiag "
            "read holds")


def reach(topology: SnapshotIndex, ns_id: int, address: str) -> tuple[int, int] | None:
    """(namespace holding `address` that a packet from `ns_id` gets to, routers it crosses),
    following each namespace's route to the address; None when a namespace on the way has no
    route onward (or an unreachable, blackhole or prohibit one), or its next hop is held by no
    namespace on the segment the route leaves by."""
    here, hops, seen = ns_id, 0, set()
    while here not in seen and hops <= MAX_HOPS:
        seen.add(here)
        if any(owner == here for owner, _ in topology.owners_of(address)):
            return here, hops
        found = topology.egress(here, address)
        if found is None or found[0].type != "unicast":
            return None
        route, link = found
        next_hop = route.gateway or address
        holder = next((owner for owner, held in topology.owners_of(next_hop)
                       if topology.same_segment(InterfaceRef(here, link.name),
                                                InterfaceRef(owner, held.ifname))), None)
        if holder is None:
            return None
        here, hops = holder, hops + (1 if route.gateway else 0)
    return None
