"""link-down: an interface that should carry traffic is up administratively but has no carrier.

What it finds
    An interface that has addresses, or is a bridge port, and is set up (`ip link set up`)
    but is operationally down — and, for veths, why: the peer is set down. A veth whose peer
    is in no namespace netdiag read is not reported: a veth dies with its peer, so the peer
    is alive somewhere not read (a namespace made after the read began — Docker plumbing a
    Swarm's ingress, say — or out of `--ns`'s scope), and its state is unknown. A bridge is
    reported only when some port is up: a bridge without running
    ports (docker0 on a host with no containers) is down by design. Interfaces set down on
    purpose are not reported, nor is a bridge port whose veth peer, still in the same
    namespace, is down with no address and no master: that is an endpoint being made or
    unmade (Docker and Podman create the pair in the host's namespace, attach one end to the
    bridge, and only then move the other end into the container), and nothing routes
    through it yet.

Why it matters
    Routes through a link without carrier are still in the table, so traffic is silently
    blackholed instead of failing fast; a container whose veth peer is down looks configured
    but cannot reach anything.

Example
    ND901 link-down  host: veth3a1f2b7
      veth3a1f2b7 is up but has no carrier: its peer eth0 in web is set down
        · veth3a1f2b7: admin up, operational state lowerlayerdown
        · peer eth0 in web: admin down, operational state down
      repair (safe): Set eth0 up
        $ nsenter --net=/run/netns/web ip link set dev eth0 up

Repair
    Set the peer (or the interface itself, for a lower device) up.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety, SetLinkUp
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Link, NamespaceState, Snapshot
from netdiag.model.index import SnapshotIndex, index

RULE = Rule(code="ND901", name="link-down", severity=Severity.WARNING,
            summary="an interface with addresses, or a bridge port, is up but has no carrier")

_DOWN_STATES = ("down", "lowerlayerdown", "notpresent")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topo = index(snapshot)
    for state in snapshot.namespaces:
        with_addresses = {a.ifname for a in state.addresses}
        for link in state.links:
            if _expected_up(topo, state, link, with_addresses) and _is_down(link):
                finding = _finding(topo, state, link)
                if finding is not None:
                    yield finding


def _is_down(link: Link) -> bool:
    return link.admin_up and link.oper_state in _DOWN_STATES


def _expected_up(topo: SnapshotIndex, state: NamespaceState, link: Link, with_addresses: set[str]
                 ) -> bool:
    if link.kind == "loopback":
        return False
    if link.kind == "bridge":
        ports = topo.bridge_ports(state.ref.id, link.name)
        return any(port.up for port in ports)
    return link.name in with_addresses or bool(link.master)


def _endpoint_in_the_making(state: NamespaceState, link: Link, peer_ns: int, peer: Link
                            ) -> bool:
    """The inner end of a container's veth before it is moved into the container (or after
    the container is gone): the outer end a bridge port, the inner one beside it, set down,
    bare."""
    return (bool(link.master) and peer_ns == state.ref.id and not peer.admin_up
            and not peer.master and not any(a.ifname == peer.name for a in state.addresses))


def _finding(topo: SnapshotIndex, state: NamespaceState, link: Link) -> Finding | None:
    ns_id = state.ref.id
    evidence = [Evidence(f"{link.name}: admin up, operational state {link.oper_state}",
                         ns_id, "link", link.name)]
    related: tuple[int, ...] = ()
    if link.kind == "veth":
        peer = topo.peer(ns_id, link)
        if peer is None:
            return None  # its peer lives in a namespace not read: nothing known of it
        peer_ns, peer_link = peer
        if _endpoint_in_the_making(state, link, peer_ns, peer_link):
            return None
        related = (peer_ns,) if peer_ns != ns_id else ()
        peer_ref = topo.ref(peer_ns)
        where = peer_ref.display if peer_ref else str(peer_ns)
        evidence.append(Evidence(f"peer {peer_link.name} in {where}: admin "
                                 f"{'up' if peer_link.admin_up else 'down'}, operational state "
                                 f"{peer_link.oper_state}", peer_ns, "link", peer_link.name))
        if not peer_link.admin_up:
            message = (f"{link.name} is up but has no carrier: its peer {peer_link.name} in "
                       f"{where} is set down")
            repair = Repair(f"Set {peer_link.name} up", Safety.SAFE,
                            (SetLinkUp(peer_ns, peer_link.name),))
            return RULE.finding(state.ref, link.name, message, evidence=evidence, repair=repair,
                                related=related)
    lower = _lower(state, link)
    if lower is not None and not lower.admin_up:
        evidence.append(Evidence(f"lower device {lower.name} is set down", ns_id, "link",
                                 lower.name))
        return RULE.finding(state.ref, link.name,
                            f"{link.name} is up but its lower device {lower.name} is set down",
                            evidence=evidence, repair=Repair(f"Set {lower.name} up", Safety.SAFE,
                                                             (SetLinkUp(ns_id, lower.name),)))
    message = f"{link.name} is up but has no carrier (operational state {link.oper_state})"
    repair = Repair("Find out why the link has no carrier (cable, peer, lower device)",
                    Safety.MANUAL, (ManualStep(f"check the other side of {link.name}", ns_id),))
    return RULE.finding(state.ref, link.name, message, evidence=evidence, repair=repair,
                        related=related)


def _lower(state: NamespaceState, link: Link) -> Link | None:
    if link.parent:
        return state.link(link.parent)
    return None
