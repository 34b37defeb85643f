"""What the Podman rules (netdiag/checks/podman/) share: where netavark's work is in a snapshot.

Podman 4's netavark (iptables, either backend) writes, in the namespace the engine runs in:
filter FORWARD → NETAVARK_FORWARD (`-s SUBNET -j ACCEPT`, and the answers back in); nat
POSTROUTING `-s SUBNET -j NETAVARK-<hash>` (a MASQUERADE for what leaves the subnet); nat
PREROUTING and OUTPUT → NETAVARK-HOSTPORT-DNAT → NETAVARK-DN-<hash> (a DNAT per published
port). It writes nothing for an `--internal` network. Podman 5's netavark (1.17, nftables
driver) writes one `table inet netavark` instead, with the same parts as base chains and
`nv_<hash>` chains: the iptables judgements stand aside there (`engines` leaves such engines
out); the rules judge that the table is there at all (`nftables_engines`), and follow its
published ports with the flow engine. Source: netavark 1.4's src/firewall/iptables.rs and
varktables/, src/firewall/nft.rs and mod.rs (github.com/containers/netavark), and the rules
they wrote on Debian 12's Podman 4.3 and Debian unstable's 5.8 (tests/integration/
test_podman.py, tests/fixtures/podman5).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from netdiag.model import IptablesRule, NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerContainer, DockerEngine, DockerNetwork

NFTABLES_TABLE = "netavark"  # Podman 5: `table inet netavark`
# From Podman 5 on, netavark writes nftables unless told otherwise (its default_fw, chosen at
# build time: Debian's 1.17 writes `table inet netavark` with no firewall_driver set;
# containers.conf's firewall_driver overrides it): with neither its table nor its iptables
# chains there, the table is what is missing.
NFTABLES_FROM = 5


def engines(snapshot: Snapshot) -> Iterator[tuple[DockerEngine, NamespaceState]]:
    """Each Podman engine whose netavark rules are in iptables, with its namespace's state
    (a namespace whose firewall was not read gives nothing to judge; one whose chains were
    flushed, all the more)."""
    for engine, host in all_engines(snapshot):
        if not _on_nftables(engine, host):
            yield engine, host


def nftables_engines(snapshot: Snapshot) -> Iterator[tuple[DockerEngine, NamespaceState]]:
    """Each Podman engine whose netavark writes `table inet netavark` (the table is there, or
    Podman 5 and none of netavark's iptables chains are), with its namespace's state."""
    for engine, host in all_engines(snapshot):
        if _on_nftables(engine, host):
            yield engine, host


def all_engines(snapshot: Snapshot) -> Iterator[tuple[DockerEngine, NamespaceState]]:
    """Each Podman engine whose namespace's firewall was read, on either firewall."""
    unread = {gap.namespace for gap in snapshot.gaps if gap.collector == "firewall"}
    for engine, host in intent.engines(snapshot, runtime="podman"):
        if host.ref.id not in unread:
            yield engine, host


def _on_nftables(engine: DockerEngine, host: NamespaceState) -> bool:
    if nftables_netavark(host):
        return True
    major = engine.version.partition(".")[0]
    iptables = any(c.name.startswith("NETAVARK") for c in host.firewall.iptables_chains)
    return major.isdigit() and int(major) >= NFTABLES_FROM and not iptables


def nftables_netavark(host: NamespaceState) -> bool:
    return any(t.name == NFTABLES_TABLE and t.family == "inet" for t in host.firewall.nft_tables)


def owners(engine: DockerEngine) -> Iterator[DockerContainer]:
    """The running containers that own a namespace (a pod's infra container, a container not
    joined to another's): the ones whose ports and endpoints are the namespace's."""
    for container in engine.containers:
        if container.running and not container.shares:
            yield container


def networks_in_use(engine: DockerEngine) -> Iterator[DockerNetwork]:
    """The engine's bridge networks that some running container is on."""
    used = {e.network for c in owners(engine) for e in c.endpoints}
    for network in intent.bridge_networks(engine):
        if network.name in used:
            yield network


def addresses(engine: DockerEngine, container: DockerContainer) -> set[str]:
    """The container's IPv4 addresses on the engine's bridge networks (where ports are DNATed)."""
    bridges = {n.name for n in intent.bridge_networks(engine)}
    return {e.ip for e in container.endpoints if e.ip and e.network in bridges}


def chains(host: NamespaceState, table: str) -> dict[str, list[IptablesRule]]:
    """The IPv4 iptables rules of `table`, by chain, in order."""
    found: dict[str, list[IptablesRule]] = {}
    for rule in host.firewall.iptables_rules:
        if rule.family == 4 and rule.table == table:
            found.setdefault(rule.chain, []).append(rule)
    for rules in found.values():
        rules.sort(key=lambda r: r.position)
    return found


def reachable(table: dict[str, list[IptablesRule]], starts: tuple[str, ...],
              source: str = "") -> set[str]:
    """The chains a packet entering `starts` can be sent to by jumps (with `source`, only
    through rules whose source match is absent or that subnet)."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        chain = todo.pop()
        if chain in seen:
            continue
        seen.add(chain)
        for rule in table.get(chain, ()):
            if rule.target in table and (not source or from_subnet(rule, source, True)):
                todo.append(rule.target)
    return seen


def from_subnet(rule: IptablesRule, subnet: str, absent: bool = False) -> bool:
    """Whether the rule's source match is exactly `subnet` (or, with `absent`, missing)."""
    match = rule.match("source")
    if match is None:
        return absent
    if match.negated:
        return False
    try:
        return ipaddress.ip_network(match.value, strict=False) == ipaddress.ip_network(subnet)
    except ValueError:
        return False
