"""missing-default-route: a container can reach its own subnet but nothing beyond it.

What it finds
    A namespace other than the host's with an up, non-loopback interface that has an IPv4
    address, no IPv4 default route — while a router is right there on that interface's L2
    segment: another namespace with an address in the same subnet, forwarding on, and a
    default route of its own that leads elsewhere (the Docker bridge's gateway, a lab
    router — not the host whose upstream this namespace is). The same for IPv6, each family
    on its own: a global IPv6 address (link-local ones are on every interface and route
    nowhere), no IPv6 default route, and a router in the same IPv6 subnet with
    `net.ipv6.conf.all.forwarding = 1` and an IPv6 default route of its own — a host with no
    way out over IPv6 is no router for IPv6, however dual-stack its bridges are. Networks
    that are internal on
    purpose are not reported: Docker's intent says so (`--internal`), their gateway drops
    traffic leaving the subnet (Docker's internal-network rules, in both the classic and the
    modern firewall layout), or there is no router at all.

Why it matters
    Without a default route every destination outside the subnet fails with "Network is
    unreachable": DNS upstreams, registries, other hosts. It happens when a route was deleted
    by hand, when a DHCP or CNI step failed half-way, or when a namespace was wired by a
    script that forgot the gateway.

Example
    ND503 missing-default-route  container web: eth0
      web has 172.18.0.2/16 on eth0 and no default route, although 172.18.0.1 (host,
      br-web) forwards
      repair (unsafe): Route outside traffic via 172.18.0.1
        $ nsenter --net=/run/netns/web ip route add default via 172.18.0.1 dev eth0

Repair
    Add a default route via the router found on the segment (`::/0` for IPv6). Unsafe: it
    changes where all of the namespace's outside traffic goes.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import AddRoute, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Address, NamespaceState, Snapshot, intent
from netdiag.model.index import (
    InterfaceRef,
    SnapshotIndex,
    index,
    ip_int,
    is_container,
    is_link_local_ipv6,
    network_interval,
)

RULE = Rule(code="ND503", name="missing-default-route", severity=Severity.WARNING,
            summary="a container namespace has a routable interface but no default route")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topo = index(snapshot)
    internal = _internal_by_intent(snapshot)
    # (segment, family) → its members that forward that family
    forwarders: dict[tuple[int, int], list[InterfaceRef]] = {}
    for state in snapshot.namespaces:
        if not is_container(state.ref):
            continue
        for family in FORWARDING:
            if topo.default_route(state.ref.id, family):
                continue
            for address in _routable(state, family):
                router = _router(topo, state.ref.id, address, internal, forwarders)
                if router is None:
                    continue
                yield _finding(topo, state, address, router)
                break


FORWARDING = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}
DEFAULT = {4: "default", 6: "::/0"}  # as a repair's destination (netlink reads "default" as IPv4)


def _routable(state: NamespaceState, family: int) -> list[Address]:
    result = []
    for address in state.addresses:
        link = state.link(address.ifname)
        if (address.family == family and address.scope == "global" and link is not None
                and link.kind != "loopback" and link.up and "dadfailed" not in address.flags
                and not is_link_local_ipv6(address.address)):
            result.append(address)
    return result


def _internal_by_intent(snapshot: Snapshot) -> set[tuple[int, str]]:
    """(namespace, bridge) of the networks Docker's or Podman's intent says are internal."""
    return {(host.ref.id, intent.bridge_name(network))
            for engine, host in intent.engines(snapshot, runtime=None)
            for network in intent.bridge_networks(engine) if network.internal}


def _router(topo: SnapshotIndex, ns_id: int, address: Address, internal: set[tuple[int, str]],
            forwarders: dict[tuple[int, int], list[InterfaceRef]]) -> tuple[int, Address] | None:
    """A namespace on the same segment and subnet that forwards and does not isolate it.
    `forwarders` keeps each segment's forwarding members (an overlay of a thousand
    containers is looked through once, not once per container)."""
    family = address.family
    _, first, last, _ = network_interval(address.cidr)
    segment = topo.segment_ids.get(InterfaceRef(ns_id, address.ifname))
    members = forwarders.get((segment, family)) if segment is not None else None
    if members is None:
        members = [other for other in topo.segment(ns_id, address.ifname)
                   if topo.namespace(other.namespace) is not None and
                   topo.namespace(other.namespace).sysctl(FORWARDING[family]) == "1"]
        if segment is not None:
            forwarders[(segment, family)] = members
    for other in members:
        if other.namespace == ns_id or not _way_out(topo, other.namespace, ns_id, family):
            continue
        state = topo.namespace(other.namespace)
        for candidate in state.addresses:
            if (candidate.ifname == other.link and candidate.family == family
                    and first <= ip_int(candidate.address)[1] <= last
                    and (other.namespace, other.link) not in internal
                    and not _internal(state, other.link)):
                return other.namespace, candidate
    return None


def _way_out(topo: SnapshotIndex, router_ns: int, ns_id: int, family: int) -> bool:
    """Does the router have a `family` default route that does not lead back into `ns_id`?
    (A link-local gateway — IPv6 routes learnt from router advertisements — is `ns_id`'s
    only if `ns_id` holds it on the route's own link: every link has its fe80::1.)"""
    route = topo.default_route(router_ns, family)
    if route is None:
        return False
    for owner, held in topo.owners_of(route.gateway):
        if owner == ns_id and (not is_link_local_ipv6(route.gateway) or topo.same_segment(
                InterfaceRef(router_ns, route.dev), InterfaceRef(owner, held.ifname))):
            return False
    return True


def _internal(state: NamespaceState, ifname: str) -> bool:
    """Docker internal networks: the gateway drops what enters from the bridge and leaves the
    subnet (`! -d SUBNET -i BRIDGE -j DROP`, classic STAGE-1 and modern DOCKER-INTERNAL)."""
    for rule in state.firewall.iptables_rules:
        if rule.table != "filter" or rule.target not in ("DROP", "REJECT"):
            continue
        iif, dst = rule.match("in-interface"), rule.match("destination")
        if iif is not None and not iif.negated and iif.value == ifname \
                and dst is not None and dst.negated:
            return True
    return False


def _finding(topo: SnapshotIndex, state: NamespaceState, address: Address,
             router: tuple[int, Address]) -> Finding:
    ns_id = state.ref.id
    family = address.family
    router_ns, gateway = router
    router_ref = topo.ref(router_ns)
    where = router_ref.display if router_ref else str(router_ns)
    message = (f"{state.ref.display} has {address.cidr} on {address.ifname} and no "
               f"{'IPv6 ' if family == 6 else ''}default route, "
               f"although {gateway.address} ({where}, {gateway.ifname}) forwards")
    evidence = (
        Evidence(f"{address.cidr} on {address.ifname}", ns_id, "address", address.cidr),
        Evidence(f"no IPv{family} default route in the main table", ns_id, "route",
                 DEFAULT[family]),
        Evidence(f"{gateway.cidr} on {gateway.ifname} in {where}, {FORWARDING[family]} = 1",
                 router_ns, "address", gateway.cidr),
    )
    repair = Repair(f"Route outside traffic via {gateway.address}", Safety.UNSAFE,
                    (AddRoute(ns_id, DEFAULT[family], dev=address.ifname,
                              gateway=gateway.address),))
    subject = address.ifname if family == 4 else f"{address.ifname} (IPv6)"
    return RULE.finding(state.ref, subject, message, evidence=evidence, repair=repair,
                        related=(router_ns,))
