"""Resolve each veth's peer to its namespace and name, from the collected links alone.

A veth reports its peer only as IFLA_LINK (the peer's ifindex) plus, when the peer lives in
another namespace, IFLA_LINK_NETNSID — an id that is local to the reporting namespace and
cannot be compared across namespaces. So two veths A and B in different namespaces are taken
to be a pair when A.index == B.parent_index and B.index == A.parent_index.

Interface indexes are allocated per namespace, so one (index, parent_index) combination can
occur in several namespaces (two hubs that both have a veth 5 paired with some container's
eth0 2). Such a pair cannot be told apart from the links alone, and a wrong peer is worse
than none, so a veth is resolved only when both its own (index, parent_index) and the
mirrored one occur exactly once among all cross-namespace veths (not counting the two ends
themselves when index == parent_index); otherwise it stays
unresolved (peer_namespace None). The work is linear: one dict lookup per veth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from netdiag.model import Link, NamespaceState

Key = tuple[int, int]  # (index, parent_index)


def resolve(states: Sequence[NamespaceState]) -> list[NamespaceState]:
    crossing = _cross_namespace_veths(states)
    return [_resolve_namespace(state, crossing) for state in states]


def _cross_namespace_veths(states: Sequence[NamespaceState]) -> dict[Key, list[tuple[int, Link]]]:
    found: dict[Key, list[tuple[int, Link]]] = defaultdict(list)
    for state in states:
        for link in state.links:
            if link.kind == "veth" and link.parent_netnsid is not None and link.parent_index:
                found[(link.index, link.parent_index)].append((state.ref.id, link))
    return found


def _resolve_namespace(state: NamespaceState,
                       crossing: dict[Key, list[tuple[int, Link]]]) -> NamespaceState:
    by_index = {link.index: link for link in state.links}
    links = tuple(_resolve_link(state.ref.id, link, by_index, crossing) for link in state.links)
    if links == state.links:
        return state
    return replace(state, links=links)


def _resolve_link(ns_id: int, link: Link, by_index: dict[int, Link],
                  crossing: dict[Key, list[tuple[int, Link]]]) -> Link:
    if link.kind != "veth" or not link.parent_index:
        return link
    if link.parent_netnsid is None:  # both ends live here
        peer = by_index.get(link.parent_index)
        if peer is None or peer.kind != "veth" or peer.index == link.index:
            return link
        return replace(link, peer_namespace=ns_id, peer_name=peer.name)
    me = (ns_id, link.index)
    # When index == parent_index (eth0@if2 paired with a 2 elsewhere) both keys are the same
    # list, which holds this link and its peer: so each side leaves the other out.
    peers = [(n, peer) for n, peer in crossing.get((link.parent_index, link.index), ())
             if (n, peer.index) != me]
    if len(peers) != 1:
        return link  # peer not collected (namespace not read), or ambiguous: see module doc
    peer_ns, peer = peers[0]
    rivals = [n for n, other in crossing.get((link.index, link.parent_index), ())
              if (n, other.index) != (peer_ns, peer.index)]
    if rivals != [ns_id]:
        return link
    return replace(link, peer_namespace=peer_ns, peer_name=peer.name)
