"""ip-forward-disabled: a namespace that has to route packets has IPv4 or IPv6 forwarding off.

What it finds
    A namespace that acts as a router for a family whose forwarding switch is off —
    `net.ipv4.ip_forward = 0` for IPv4, `net.ipv6.conf.all.forwarding = 0` for IPv6. It acts
    as one when another namespace's route of that family uses one of its addresses as gateway
    (containers behind a bridge's gateway address, lab hosts behind a router, an IPv6 default
    route via the bridge's fe80:: address) and it has routes of that family out of another
    interface to forward to (a stub at the end of a line is not a router; IPv6's link-local
    routes, which every interface has, do not count); or when it NATs that family
    (MASQUERADE/SNAT, or DNAT to an address that is not its own loopback — Docker's embedded
    DNS rules inside containers, which NAT 127.0.0.11, do not count); or, for IPv6, when the
    Docker engine running in it has an IPv6 bridge network that routes out of the host
    (neither internal nor `gateway_mode_ipv6=isolated`), even before a container joins it.
    A host with no IPv6 networks to forward is not reported, whatever its IPv6 switch says.

    With IPv4 forwarding on, it also finds a router whose IPv4 forwarding is off on one
    interface (`net.ipv4.conf.IFACE.forwarding = 0`): the one others use as gateway, or the
    one its default route leaves by, where the replies come in.

    IPv6 has no such per-interface switch: `net.ipv6.conf.IFACE.forwarding` only makes an
    interface behave as a router rather than a host (router advertisements, the router flag
    in neighbour advertisements), and packets are forwarded when `all.forwarding` is 1. From
    kernel 6.17 on, `net.ipv6.conf.IFACE.force_forwarding = 1` forwards what comes in by that
    interface even with `all.forwarding = 0`; such interfaces are not reported.

Why it matters
    With forwarding off the kernel drops every packet of that family that is not for the
    namespace itself: containers cannot leave the host, published ports time out, a lab
    router routes nothing. The two families are switched separately, so IPv4 working proves
    nothing about IPv6. Docker turns IPv4 forwarding on when it starts, and IPv6 forwarding
    when it creates an IPv6 network; something (a sysctl.d file, a hardening script, a
    namespace created afterwards) turned it off again. A per-interface IPv4 switch is off
    only when someone set it so, or `net.ipv4.conf.default.forwarding = 0` held when the
    interface was created.

Example
    ND501 ip-forward-disabled  host: net.ipv4.ip_forward
      host is the gateway (172.18.0.1 on br-web) of route default in web; NATs
      (MASQUERADE: -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE), but
      net.ipv4.ip_forward is 0: it drops every IPv4 packet it should forward
      repair (unsafe): Enable IPv4 forwarding
        $ sysctl -w net.ipv4.ip_forward=1

    ND501 ip-forward-disabled  host: net.ipv6.conf.all.forwarding
      host is the gateway (fd00:db8::1 on br-web) of route default in web; NATs
      (MASQUERADE: -A POSTROUTING -s fd00:db8::/64 ! -o br-web -j MASQUERADE), but
      net.ipv6.conf.all.forwarding is 0: it drops every IPv6 packet it should forward
      repair (unsafe): Enable IPv6 forwarding
        $ sysctl -w net.ipv6.conf.all.forwarding=1

Repair
    `sysctl -w net.ipv4.ip_forward=1` (or `net.ipv6.conf.all.forwarding=1`, or
    `net.ipv4.conf.IFACE.forwarding=1` for one interface) in that namespace, and make it
    persistent (/etc/sysctl.d). Unsafe: it also enables forwarding between every other
    interface; setting IPv6's `all.forwarding` also makes every interface a router (it stops
    accepting router advertisements unless `accept_ra = 2`).
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import Repair, Safety, SetSysctl
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import IptablesRule, NamespaceState, Snapshot, intent
from netdiag.model.index import MAIN_TABLE, InterfaceRef, SnapshotIndex, index

RULE = Rule(code="ND501", name="ip-forward-disabled", severity=Severity.ERROR,
            summary="a namespace that routes for bridges or NATs has IPv4 or IPv6 forwarding "
                    "off")

SYSCTL = "net.ipv4.ip_forward"
SWITCHES = {4: SYSCTL, 6: "net.ipv6.conf.all.forwarding"}  # the one switch of each family
_LOOPBACK = {4: "127.", 6: "::1"}

# A reason a namespace has to forward: what it shows, the other namespace it concerns (if
# any), and the interface the forwarded packets come in by (if one is known).
Reason = tuple[Evidence, int | None, str]


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topo = index(snapshot)
    for family, switch in SWITCHES.items():
        yield from _switched_off(snapshot, topo, family, switch)
    yield from _ipv4_interfaces_off(snapshot, topo)


def _switched_off(snapshot: Snapshot, topo: SnapshotIndex, family: int, switch: str
                  ) -> Iterator[Finding]:
    """Namespaces that route or NAT `family` with the family's switch off."""
    suspects = [state for state in snapshot.namespaces if state.sysctl(switch) == "0"]
    if not suspects:
        return
    gateways = _gateway_users(snapshot, {a.address for s in suspects for a in s.addresses},
                              family)
    networks = _docker_ipv6_networks(snapshot) if family == 6 else {}
    for state in suspects:
        reasons = _router_reasons(topo, state, gateways, family)
        reasons += [r for r in networks.get(state.ref.id, ())  # unless its users said so
                    if r[2] not in {ifname for _, _, ifname in reasons}]
        if family == 6:  # kernel 6.17+: what comes in by such an interface is forwarded anyway
            reasons = [r for r in reasons if not _forced(state, r[2])]
        if not reasons:
            continue
        ns_id = state.ref.id
        evidence = [Evidence(f"{switch} = 0", ns_id, "sysctl", switch)] + [r[0] for r in reasons]
        message = (f"{state.ref.display} {'; '.join(r[0].text for r in reasons[:3])}, "
                   f"but {switch} is 0: it drops every IPv{family} packet it should forward")
        yield RULE.finding(state.ref, switch, message, evidence=evidence,
                           related=_related(ns_id, reasons),
                           repair=Repair(f"Enable IPv{family} forwarding", Safety.UNSAFE,
                                         (SetSysctl(ns_id, switch, "1"),)))


def _ipv4_interfaces_off(snapshot: Snapshot, topo: SnapshotIndex) -> Iterator[Finding]:
    """IPv4 forwarding on, but off on an interface a router's packets come in by: the one
    others use as gateway, or the one its default route leaves by (where replies come in).
    Each interface has a switch of its own, which only a hand-made setting turns off."""
    routers = [state for state in snapshot.namespaces if state.sysctl(SYSCTL) == "1"
               and any(s.value == "0" and s.name.startswith("net.ipv4.conf.")
                       and s.name.endswith(".forwarding") for s in state.sysctls)]
    if not routers:
        return
    gateways = _gateway_users(snapshot, {a.address for s in routers for a in s.addresses}, 4)
    for state in routers:
        reasons = [r for r in _router_reasons(topo, state, gateways, 4) if r[2]]
        if not reasons:
            continue
        default = topo.default_route(state.ref.id, 4)
        uplink = (default.dev or (default.nexthops[0][1] if default.nexthops else "")) \
            if default is not None else ""
        for ifname in dict.fromkeys([r[2] for r in reasons] + [uplink]):
            name = f"net.ipv4.conf.{ifname}.forwarding"
            if not ifname or state.sysctl(name) != "0":
                continue
            comes_in = "packets from them come in" if any(r[2] == ifname for r in reasons) \
                else "their replies come in"
            ns_id = state.ref.id
            yield RULE.finding(
                state.ref, name,
                f"{state.ref.display} {'; '.join(r[0].text for r in reasons[:3])}, and "
                f"{comes_in} by {ifname}, but {name} is 0: the kernel forwards nothing that "
                f"comes in by {ifname}",
                evidence=[Evidence(f"{SYSCTL} = 1", ns_id, "sysctl", SYSCTL),
                          Evidence(f"{name} = 0", ns_id, "sysctl", name)]
                + [r[0] for r in reasons],
                related=_related(ns_id, reasons),
                repair=Repair(f"Enable IPv4 forwarding on {ifname}", Safety.UNSAFE,
                              (SetSysctl(ns_id, name, "1"),)))


def _related(ns_id: int, reasons: list[Reason]) -> tuple[int, ...]:
    return tuple(sorted({other for _, other, _ in reasons if other is not None
                         and other != ns_id}))


def _forced(state: NamespaceState, ifname: str) -> bool:
    """IPv6 (kernel 6.17+): force_forwarding forwards what comes in by the interface even
    with all.forwarding = 0; for a reason with no interface, when any interface has it."""
    if ifname:
        return state.sysctl(f"net.ipv6.conf.{ifname}.force_forwarding") == "1"
    return any(s.name.startswith("net.ipv6.conf.") and s.name.endswith(".force_forwarding")
               and s.value == "1" for s in state.sysctls)


def _gateway_users(snapshot: Snapshot, addresses: set[str], family: int
                   ) -> dict[str, list[tuple[int, str, str]]]:
    """gateway address → [(namespace id, route dst, route dev)] of `family`'s routes via
    `addresses` (an IPv4 route may have an IPv6 next hop: its packets are still IPv4)."""
    users: dict[str, list[tuple[int, str, str]]] = {}
    for state in snapshot.namespaces:
        for route in state.routes:
            if route.family != family:
                continue
            if route.gateway in addresses:
                users.setdefault(route.gateway, []).append((state.ref.id, route.dst, route.dev))
            for gateway, dev in route.nexthops:
                if gateway in addresses:
                    users.setdefault(gateway, []).append((state.ref.id, route.dst, dev))
    return users


def _router_reasons(topo: SnapshotIndex, state: NamespaceState,
                    gateways: dict[str, list[tuple[int, str, str]]], family: int
                    ) -> list[Reason]:
    ns_id = state.ref.id
    reasons: list[Reason] = []
    for address in state.addresses:
        if not _leads_elsewhere(state, address.ifname, family):
            continue  # a stub at the end of the line: forwarding would have nowhere to go
        here = InterfaceRef(ns_id, address.ifname)
        for user_ns, dst, dev in gateways.get(address.address, ()):
            # The same gateway address may live on several hosts of a lab: only a user on
            # this interface's L2 segment depends on this namespace.
            if user_ns == ns_id or not topo.same_segment(here, InterfaceRef(user_ns, dev)):
                continue
            ref = topo.ref(user_ns)
            reasons.append((Evidence(
                f"is the gateway ({address.address} on {address.ifname}) of route {dst} in "
                f"{ref.display if ref else user_ns}", user_ns, "route", dst), user_ns,
                address.ifname))
            break
    for rule in state.firewall.iptables_rules:
        if rule.table == "nat" and rule.family == family and _forwarding_nat(rule):
            reasons.append((Evidence(f"NATs ({rule.target}: {rule.text or rule.chain})", ns_id,
                                     "firewall", f"{rule.table}/{rule.chain}/{rule.position}"),
                            None, ""))
            break
    return reasons


def _docker_ipv6_networks(snapshot: Snapshot) -> dict[int, list[Reason]]:
    """Engine namespace → a reason for each IPv6 bridge network its engine says it has that
    routes out of the host (not internal, not `isolated`), whose bridge is there."""
    found: dict[int, list[Reason]] = {}
    for engine, host in intent.engines(snapshot):
        for network in intent.bridge_networks(engine):
            bridge = intent.bridge_name(network)
            if not network.ipv6 or network.internal or host.link(bridge) is None \
                    or intent.gateway_mode(network, 6) == "isolated" \
                    or not _leads_elsewhere(host, bridge, 6):
                continue
            found.setdefault(host.ref.id, []).append((Evidence(
                f"has the IPv6 network {network.name} of {intent.who(engine)} on {bridge}",
                host.ref.id, "docker", network.name), None, bridge))
    return found


def _leads_elsewhere(state: NamespaceState, ifname: str, family: int = 4) -> bool:
    """Does the namespace have a `family` route out of an interface other than `ifname`?
    (Not counting IPv6's link-local routes, which every interface has and none forwards.)"""
    return any(route.dev and route.dev not in (ifname, "lo") for route in state.routes
               if route.family == family and route.table == MAIN_TABLE
               and route.type == "unicast" and not route.dst.startswith("fe80:"))


def _forwarding_nat(rule: IptablesRule) -> bool:
    """NAT for forwarded traffic, not Docker's embedded-DNS rules on 127.0.0.11 in containers."""
    loopback = _LOOPBACK[rule.family]
    source = rule.match("source")
    if source is not None and source.value.startswith(loopback):
        return False
    if rule.target in ("MASQUERADE", "SNAT"):
        return True
    return rule.target == "DNAT" and \
        not rule.target_option("to-destination").lstrip("[").startswith(loopback)
