"""macvlan-host-isolation: macvlan children the namespace that owns their parent cannot reach.

What it finds
    An interface with addresses (so the namespace holding it uses it itself) that is the
    parent of macvlan interfaces living in other namespaces — containers — while that
    namespace has no macvlan interface of its own on the same parent (a "shim").

Why it matters
    The kernel does not pass traffic between a macvlan parent and its macvlan children: frames
    the host sends out of the parent leave on the wire and never come back to the children, and
    the children's frames to the host's address are not delivered to the host. So the host
    cannot reach its own macvlan containers (health checks, a reverse proxy on the host, the
    host's DNS) although every other machine on the LAN can. It is documented behaviour, not a
    bug, which is why it is reported as information.

Example
    The host has 192.168.1.10/24 on eth0; containers on a macvlan network with
    `-o parent=eth0` get 192.168.1.64/26. `curl 192.168.1.70` from the host times out, while
    it works from a laptop on the same LAN.

Repair
    Manual: give the host a macvlan shim on the same parent and route the containers' range
    through it: `ip link add mvshim link eth0 type macvlan mode bridge`,
    `ip addr add 192.168.1.63/32 dev mvshim`, `ip link set mvshim up`,
    `ip route add 192.168.1.64/26 dev mvshim`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Link, NsKind, Snapshot
from netdiag.model.index import SnapshotIndex, index

RULE = Rule(code="ND902", name="macvlan-host-isolation", severity=Severity.INFO,
            summary="Macvlan children cannot talk to the namespace that owns their parent")

_NOT_A_PARENT = ("macvlan", "macvtap", "ipvlan", "loopback")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topology = index(snapshot)
    for (parent_ns, parent_name), children in sorted(_children_by_parent(topology).items()):
        state = topology.namespace(parent_ns)
        addresses = [a for a in state.addresses
                     if a.ifname == parent_name and a.scope != "link"]
        if not addresses or _has_shim(state.links, parent_name):
            continue
        evidence = [Evidence(f"{parent_name} has address {a.cidr}", parent_ns, "address",
                             a.cidr) for a in addresses]
        evidence.append(Evidence(f"no macvlan on {parent_name} in this namespace (no shim)",
                                 parent_ns, "link", parent_name))
        for child_ns, child in children:
            child_addresses = [a.cidr for a in topology.namespace(child_ns).addresses
                               if a.ifname == child.name and a.scope != "link"]
            mode = child.macvlan.mode if child.macvlan else "?"
            evidence.append(Evidence(
                f"macvlan {child.name} (mode {mode}) in "
                f"{topology.ref(child_ns).display} on parent {parent_name}"
                + (f", addresses {', '.join(child_addresses)}" if child_addresses else ""),
                child_ns, "link", child.name))
        names = ", ".join(topology.ref(n).display for n in dict.fromkeys(n for n, _ in children))
        yield RULE.finding(
            state.ref, parent_name,
            f"{len(children)} macvlan interface(s) on {parent_name} ({names}) cannot reach "
            f"this namespace's own addresses on {parent_name}, nor it them",
            evidence=evidence, related=tuple(dict.fromkeys(n for n, _ in children)),
            repair=Repair(f"add a macvlan shim on {parent_name}", Safety.MANUAL, (
                ManualStep(f"create a macvlan shim on {parent_name} (mode bridge), give it an "
                           "address and route the macvlan children's addresses through it",
                           parent_ns),)))


def _children_by_parent(topology: SnapshotIndex) -> dict[tuple[int, str], list[tuple[int, Link]]]:
    """(namespace, parent name) → the macvlan children that live in other namespaces."""
    children: dict[tuple[int, str], list[tuple[int, Link]]] = defaultdict(list)
    candidates = _parent_candidates(topology)
    for state in topology.namespaces.values():
        for link in state.links:
            if link.kind != "macvlan" or link.parent_netnsid is None or not link.parent_index:
                continue
            found = _parent(topology, state.ref.id, candidates.get(link.parent_index, ()))
            if found is not None:
                ns_id, parent = found
                children[(ns_id, parent.name)].append((state.ref.id, link))
    return children


def _parent(topology: SnapshotIndex, child_ns: int, candidates: list[tuple[int, Link]]
            ) -> tuple[int, Link] | None:
    """The one candidate parent; ifindexes repeat across namespaces and a macvlan reports only
    its parent's index and a namespace-local id, so an ambiguous child is left unresolved —
    unless one candidate is the host's: Docker's macvlan driver makes every child there."""
    found = [(ns_id, parent) for ns_id, parent in candidates if ns_id != child_ns]
    if len(found) > 1:
        found = [(ns_id, parent) for ns_id, parent in found
                 if topology.ref(ns_id).kind is NsKind.HOST]
    return found[0] if len(found) == 1 else None


def _parent_candidates(topology: SnapshotIndex) -> dict[int, list[tuple[int, Link]]]:
    by_index: dict[int, list[tuple[int, Link]]] = defaultdict(list)
    for (ns_id, _), link in topology.links.items():
        if link.kind not in _NOT_A_PARENT:
            by_index[link.index].append((ns_id, link))
    return by_index


def _has_shim(links: tuple[Link, ...], parent: str) -> bool:
    return any(link.kind == "macvlan" and link.parent == parent for link in links)
