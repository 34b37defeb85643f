"""ip-forward-disabled: a namespace that has to route packets has IPv4 forwarding turned off.

What it finds
    A namespace with `net.ipv4.ip_forward = 0` that nevertheless acts as a router: another
    namespace's route uses one of its addresses as gateway (containers behind a bridge's
    gateway address, lab hosts behind a router) and it has routes out of another interface
    to forward to (a stub at the end of a line is not a router), or it NATs (MASQUERADE/SNAT,
    or DNAT to an address that is not its own loopback — Docker's embedded DNS rules inside
    containers, which NAT 127.0.0.11, do not count).

Why it matters
    With forwarding off the kernel drops every packet that is not for the namespace itself:
    containers cannot leave the host, published ports time out, a lab router routes nothing.
    Docker turns forwarding on when it starts; something (a sysctl.d file, a hardening
    script, a namespace created afterwards) turned it off again.

Example
    ND501 ip-forward-disabled  host: net.ipv4.ip_forward
      host is the gateway (172.18.0.1 on br-web) of route default in web; NATs
      (MASQUERADE: -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE), but
      net.ipv4.ip_forward is 0: it drops every packet it should forward
      repair (unsafe): Enable IPv4 forwarding
        $ sysctl -w net.ipv4.ip_forward=1

Repair
    `sysctl -w net.ipv4.ip_forward=1` in that namespace, and make it persistent
    (/etc/sysctl.d). Unsafe: it also enables forwarding between every other interface.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.checks import topology
from netdiag.checks.api import CheckConfig, Rule
from netdiag.checks.finding import Evidence, Finding, Severity
from netdiag.checks.topology import Topology
from netdiag.model import IptablesRule, NamespaceState, Snapshot
from netdiag.repair.steps import Repair, Safety, SetSysctl

RULE = Rule(code="ND501", name="ip-forward-disabled", severity=Severity.ERROR,
            summary="a namespace that routes for bridges or NATs has net.ipv4.ip_forward = 0")

SYSCTL = "net.ipv4.ip_forward"


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topo = topology.index(snapshot)
    suspects = [state for state in snapshot.namespaces if state.sysctl(SYSCTL) == "0"]
    gateways = _gateway_users(snapshot, {a.address for s in suspects for a in s.addresses})
    for state in suspects:
        reasons = _router_reasons(topo, state, gateways)
        if not reasons:
            continue
        ns_id = state.ref.id
        evidence = [Evidence(f"{SYSCTL} = 0", ns_id, "sysctl", SYSCTL)] + [r[0] for r in reasons]
        related = tuple(sorted({other for _, other in reasons if other is not None
                                and other != ns_id}))
        message = (f"{state.ref.display} {'; '.join(e.text for e, _ in reasons[:3])}, "
                   f"but {SYSCTL} is 0: it drops every packet it should forward")
        yield RULE.finding(state.ref, SYSCTL, message, evidence=evidence, related=related,
                           repair=Repair("Enable IPv4 forwarding", Safety.UNSAFE,
                                         (SetSysctl(ns_id, SYSCTL, "1"),)))


def _gateway_users(snapshot: Snapshot, addresses: set[str]
                   ) -> dict[str, list[tuple[int, str, str]]]:
    """gateway address → [(namespace id, route dst, route dev)] of routes via `addresses`."""
    users: dict[str, list[tuple[int, str, str]]] = {}
    for state in snapshot.namespaces:
        for route in state.routes:
            if route.gateway in addresses:
                users.setdefault(route.gateway, []).append((state.ref.id, route.dst, route.dev))
            for gateway, dev in route.nexthops:
                if gateway in addresses:
                    users.setdefault(gateway, []).append((state.ref.id, route.dst, dev))
    return users


def _router_reasons(topo: Topology, state: NamespaceState,
                    gateways: dict[str, list[tuple[int, str, str]]]
                    ) -> list[tuple[Evidence, int | None]]:
    ns_id = state.ref.id
    reasons: list[tuple[Evidence, int | None]] = []
    for address in state.addresses:
        if not _leads_elsewhere(state, address.ifname):
            continue  # a stub at the end of the line: forwarding would have nowhere to go
        here = topology.Endpoint(ns_id, address.ifname)
        for user_ns, dst, dev in gateways.get(address.address, ()):
            # The same gateway address may live on several hosts of a lab: only a user on
            # this interface's L2 segment depends on this namespace.
            if user_ns == ns_id or not topo.same_segment(here, topology.Endpoint(user_ns, dev)):
                continue
            ref = topo.ref(user_ns)
            reasons.append((Evidence(
                f"is the gateway ({address.address} on {address.ifname}) of route {dst} in "
                f"{ref.display if ref else user_ns}", user_ns, "route", dst), user_ns))
            break
    for rule in state.firewall.iptables_rules:
        if rule.table == "nat" and rule.family == 4 and _forwarding_nat(rule):
            reasons.append((Evidence(f"NATs ({rule.target}: {rule.text or rule.chain})", ns_id,
                                     "firewall", f"{rule.table}/{rule.chain}/{rule.position}"),
                            None))
            break
    return reasons


def _leads_elsewhere(state: NamespaceState, ifname: str) -> bool:
    """Does the namespace have an IPv4 route out of an interface other than `ifname`?"""
    return any(route.dev and route.dev not in (ifname, "lo") for route in state.routes
               if route.family == 4 and route.table == topology.MAIN_TABLE
               and route.type == "unicast")


def _forwarding_nat(rule: IptablesRule) -> bool:
    """NAT for forwarded traffic, not Docker's embedded-DNS rules on 127.0.0.11 in containers."""
    source = rule.match("source")
    if source is not None and source.value.startswith("127."):
        return False
    if rule.target in ("MASQUERADE", "SNAT"):
        return True
    return rule.target == "DNAT" and not rule.target_option("to-destination").startswith("127.")
