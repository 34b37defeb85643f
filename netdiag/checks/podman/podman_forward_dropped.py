"""podman-forward-dropped: filter FORWARD drops what a Podman network sends beyond the host.

What it finds
    On Podman 4's netavark (iptables, either backend), for every bridge network that is not
    internal and has a running container on it: the walk of filter FORWARD for traffic out of
    its bridge to another interface (jumps and RETURNs followed, as forward-policy-drop walks
    them) meets a DROP or REJECT before any ACCEPT — the FORWARD policy DROP, a blanket DROP, or
    a DROP that names the network's bridge. Podman's intent says the network reaches beyond
    the host (it is not `--internal`), so even a DROP naming its bridge is a fault here.
    Internal networks are left alone.
    On Podman 5's netavark (nftables), whose `table inet netavark` accepts its networks'
    traffic in a forward base chain of its own, that accept does not override another table's:
    each base chain on the forward hook must accept, so the FORWARD policy DROP Docker sets
    (iptables-nft's `table ip filter`), or a `table inet filter` forward chain with policy drop
    (a router's or a hardened host's), drops the containers' traffic all the same. There the
    flow engine follows a TCP connection, a DNS query and a ping from a container's address,
    arriving on the network's bridge, to an address beyond the host (the default gateway, else
    another route's gateway, else a neighbour on a subnet the host is on), in IPv4 and, on a
    network with IPv6, in IPv6: the network is named, once, when the host's firewall denies
    all three in either family (the family is named when the other gets through: Docker's
    FORWARD policy DROP is IPv4's alone unless it set ip6tables' too). A host that reaches
    nothing beyond itself is not judged; a table gone altogether is
    podman-network-rules-missing's. Sources: containers/podman#24486
    (Docker and Podman 5 on one host), containers/netavark#977 (a forward policy drop of the
    host's own), netavark's src/firewall/nft.rs (its chains: filter priority 0, policy accept).

Why it matters
    The containers can reach each other and the host, but nothing beyond it: "no internet in
    the containers". The usual causes: Docker on the same host set the FORWARD policy to DROP
    and a firewall reload flushed netavark's NETAVARK_FORWARD jump, or a firewall inserted its
    own DROP ahead of it; on Podman 5, Docker's FORWARD policy DROP alone, or the host's own
    nftables forward policy drop.

Example
    ND533 podman-forward-dropped  host: podman1
      network n1 (podman1): traffic out of podman1 is dropped in filter FORWARD (the FORWARD
      policy DROP): its containers cannot reach beyond the host
        · Podman (vm): network n1 (10.89.0.0/24), not internal
        · filter FORWARD policy DROP (nft backend); traffic out of podman1 meets the FORWARD
          policy DROP
      repair (manual): Let netavark's accept come first
        $ # podman network reload --all (and remove or narrow the DROP that catches
          podman1's traffic)

Repair
    `podman network reload --all` writes netavark's jump and accept rules again; remove or
    narrow a DROP that names the bridge, or accept the bridge's traffic ahead of it. On Podman
    5, accept the bridge's traffic in the chain that drops it (Docker's DOCKER-USER chain, or
    the host's own forward chain): netavark cannot.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from netdiag.checks import netavark
from netdiag.checks.forward_walk import OTHER, Direction, filter_chains, walk
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.flows.packet import DENIED, FIREWALL, Drop, Packet
from netdiag.flows.walk import Engine
from netdiag.model import NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerEngine, DockerNetwork
from netdiag.model.index import MAIN_TABLE

RULE = Rule(code="ND533", name="podman-forward-dropped", severity=Severity.ERROR,
            summary="filter FORWARD drops what a Podman network sends beyond the host")
WALKS_FLOWS = True  # on a big snapshot, run beside the other rules (checks/engine.py)


# What a container sends beyond the host, followed on Podman 5: (protocol, destination port).
PROBES = (("tcp", 443), ("udp", 53), ("icmp", 0))
CLIENT_PORT = 43210  # the simulated connections' source port


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    yield from _nftables_networks(snapshot)
    for engine, host in netavark.engines(snapshot):
        for backend, policy in _forward_policies(host).items():
            chains = filter_chains(host, backend)
            for network in netavark.networks_in_use(engine):
                if network.internal:
                    continue
                bridge = intent.bridge_name(network)
                end = walk(chains, "FORWARD", Direction(f"out of {bridge}", bridge, OTHER),
                           bridge)
                if end.outcome == "policy" and policy == "DROP":
                    where = "the FORWARD policy DROP"
                    key = "filter/FORWARD"
                elif end.outcome in ("drop", "handled") and end.rule is not None:
                    where = end.rule.text or f"a {end.rule.target} in {end.rule.chain}"
                    key = f"filter/{end.rule.chain}/{end.rule.position}"
                else:
                    continue
                subnets = ", ".join(intent.subnets(network, 4))
                yield RULE.finding(
                    host.ref, bridge,
                    f"network {network.name} ({bridge}): traffic out of {bridge} is dropped in "
                    f"filter FORWARD ({where}): its containers cannot reach beyond the host",
                    evidence=[Evidence(f"{intent.who(engine)}: network {network.name} "
                                       f"({subnets}), not internal", host.ref.id, "docker",
                                       network.name),
                              Evidence(f"filter FORWARD policy {policy} ({backend} backend); "
                                       f"traffic out of {bridge} meets {where}", host.ref.id,
                                       "firewall", key)],
                    repair=Repair("Let netavark's accept come first", Safety.MANUAL, (
                        ManualStep("podman network reload --all (and remove or narrow the "
                                   f"DROP that catches {bridge}'s traffic)", host.ref.id),)))


def _nftables_networks(snapshot: Snapshot) -> Iterator[Finding]:
    """Podman 5: each network's traffic beyond the host followed by the flow engine, in each
    family the network has."""
    flows: Engine | None = None
    for engine, host in netavark.nftables_engines(snapshot):
        if not netavark.nftables_netavark(host):
            continue  # no table at all: podman-network-rules-missing names it
        flows = flows or Engine(snapshot)
        bridges = {intent.bridge_name(n) for n in intent.bridge_networks(engine)}
        for network in netavark.networks_in_use(engine):
            if network.internal:
                continue
            bridge = intent.bridge_name(network)
            followed, dropped = 0, []
            for family in (4, 6):
                source = _member_address(engine, network, family)
                target = _beyond(host, family, bridges)
                if not source or not target:
                    continue
                followed += 1
                drop = _dropped(flows, host, bridge, source, target)
                if drop is not None:
                    dropped.append((family, target, drop))
            if dropped:
                yield _dropped_nftables(engine, host, network, dropped,
                                        every_family=len(dropped) == followed)


def _dropped(flows: Engine, host: NamespaceState, bridge: str, source: str, target: str
             ) -> Drop | None:
    """The host firewall's drop of a TCP connection, a DNS query and a ping from `source`,
    arriving on `bridge`, to `target`; None unless all three are dropped there."""
    drops = []
    for protocol, port in PROBES:
        packet = Packet(source, target, protocol, CLIENT_PORT if port else 0, port)
        fate = flows.arriving(host.ref.id, bridge, packet).forward
        if fate.disposition != DENIED or fate.drop is None \
                or fate.drop.namespace.id != host.ref.id or fate.drop.cause != FIREWALL:
            return None
        drops.append(fate.drop)
    return drops[0]


def _beyond(host: NamespaceState, family: int, bridges: set[str]) -> str:
    """An address beyond the host in `family`, out of an interface that is not one of the
    engine's bridges: the default route's gateway, else another route's, else a neighbour on
    a subnet the host is on (a host without a default route still forwards to its LAN); ""
    when the host reaches nothing beyond itself."""
    routes = sorted((r for r in host.routes
                     if r.family == family and r.table == MAIN_TABLE and r.type == "unicast"
                     and r.dev not in bridges and r.dev != "lo"),
                    key=lambda r: (r.dst != "default", r.metric, r.dst))
    for route in routes:
        gateway = route.gateway or next((g for g, _ in route.nexthops if g), "")
        if gateway:
            return gateway
    for address in sorted(host.addresses, key=lambda a: (a.ifname, a.address)):
        if address.family != family or address.scope != "global" \
                or address.ifname in bridges or address.ifname == "lo":
            continue
        subnet = ipaddress.ip_interface(address.cidr).network
        if subnet.num_addresses < 4:  # a /31, /32, /127, /128: no neighbour to name
            continue
        own = ipaddress.ip_address(address.address)
        return str(next(a for a in (subnet[1], subnet[2]) if a != own))
    return ""


def _member_address(engine: DockerEngine, network: DockerNetwork, family: int) -> str:
    """A running container's address of `family` on the network (where its traffic comes
    from)."""
    found = (e.ip if family == 4 else e.ipv6 for c in netavark.owners(engine)
             for e in c.endpoints if e.network == network.name)
    return min((a for a in found if a), default="")


def _dropped_nftables(engine: DockerEngine, host: NamespaceState, network: DockerNetwork,
                      dropped: list[tuple[int, str, Drop]], every_family: bool) -> Finding:
    """One finding per network, naming the family only when its other one gets through."""
    bridge = intent.bridge_name(network)
    family, _, drop = dropped[0]
    where = drop.rule or drop.where
    what = "traffic" if every_family else f"IPv{family} traffic"
    subnets = ", ".join(intent.subnets(network, 4) + intent.subnets(network, 6))
    return RULE.finding(
        host.ref, bridge,
        f"network {network.name} ({bridge}): {what} out of {bridge} is dropped in the forward "
        f"hook ({drop.reason}), which table inet {netavark.NFTABLES_TABLE}'s accept does not "
        "override: its containers cannot reach beyond the host",
        evidence=[Evidence(f"{intent.who(engine)}: network {network.name} ({subnets}), not "
                           "internal", host.ref.id, "docker", network.name),
                  *(Evidence(f"flow engine: TCP, DNS and ping from {network.name} to {target} "
                             f"(IPv{family}, beyond the host) are dropped by "
                             f"{d.rule or d.where}", host.ref.id, "firewall", d.where)
                    for family, target, d in dropped)],
        repair=Repair("Accept the network's traffic where it is dropped", Safety.MANUAL, (
            ManualStep(f"accept what leaves {bridge} and its replies ahead of {where} (Docker's "
                       f"policy: iptables -I DOCKER-USER -i {bridge} -j ACCEPT and iptables -I "
                       f"DOCKER-USER -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j "
                       "ACCEPT; a forward chain of your own: iifname "
                       f"{bridge} accept, oifname {bridge} ct state established,related accept)",
                       host.ref.id),)))


def _forward_policies(host: NamespaceState) -> dict[str, str]:
    """backend → the IPv4 filter FORWARD policy, per iptables backend read."""
    return {c.backend: c.policy for c in host.firewall.iptables_chains
            if c.family == 4 and c.table == "filter" and c.name == "FORWARD"}
