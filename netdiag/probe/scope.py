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
"""

from __future__ import annotations

import ipaddress

from netdiag.model.index import InterfaceRef, SnapshotIndex


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
