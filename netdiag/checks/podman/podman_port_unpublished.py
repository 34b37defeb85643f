"""podman-port-unpublished: a port Podman publishes does not reach its container.

What it finds
    For every running Podman container (or pod) with published ports, on Podman 4's netavark
    (iptables, either backend): a published IPv4 port with no DNAT to the container's address
    and port in a nat chain that PREROUTING or OUTPUT reaches (netavark's
    NETAVARK-HOSTPORT-DNAT → NETAVARK-DN-<hash>), or one whose DNAT leads elsewhere.
    On Podman 5's netavark (nftables), whose `table inet netavark` jumps from its PREROUTING
    and OUTPUT chains to the same DNAT chains (NETAVARK-HOSTPORT-DNAT → nv_<hash>_dnat), the
    flow engine follows a connection from the host itself to the port (on the address it is
    bound to, or the host's first global address outside Podman's networks: from inside
    them netavark marks the connection for a masquerade), in IPv4 and, for a container with
    an IPv6 address (a network made with `--ipv6`), in IPv6, where netavark DNATs too: a
    port whose connection is delivered on the host (conmon's socket takes it when the DNAT
    is gone) or refused there (Podman 5.8's conmon holds the IPv4 port alone), named once,
    with the family when the other one is delivered. A port the flow engine cannot follow is
    not judged; a table gone altogether is podman-network-rules-missing's. IPv6 on Podman
    4's iptables (ip6tables' DNAT) is not judged.

Why it matters
    Podman's conmon keeps holding the published port while the container runs, so nothing
    looks wrong on the host: `ss` shows the port listening, and connections to it are
    accepted by conmon's placeholder socket and never answered. It is what a firewall reload,
    `iptables -t nat -F` or an iptables-restore of a saved file does to Podman's rules.

Example
    ND531 podman-port-unpublished  host: tcp/8080
      Podman publishes 0.0.0.0:8080/tcp → web:80, but the nat table has no DNAT for tcp/8080
      to 10.88.0.2:80: the port does not reach the container (conmon's socket holds it)
        · Podman (vm) publishes 0.0.0.0:8080/tcp → web:80
        · nat: no DNAT for tcp/8080 (1 DNAT rules read)
      repair (manual): Let netavark write its rules again
        $ # podman network reload web (after fixing what removed the rules)

Repair
    `podman network reload NAME` (or `--all`) has netavark write the container's rules
    again; find what removed them (firewalld, a firewall script, a saved rule set restored)
    or it happens again at the next reload.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from netdiag.checks import netavark
from netdiag.checks.dnat import publishes
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.flows.packet import DELIVERED, NO_LISTENER, Packet
from netdiag.flows.walk import Engine
from netdiag.model import NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerContainer, DockerEngine, DockerPort
from netdiag.model.facts import WILDCARD_ADDRESSES

RULE = Rule(code="ND531", name="podman-port-unpublished", severity=Severity.ERROR,
            summary="a port Podman publishes has no DNAT to its container")
WALKS_FLOWS = True  # on a big snapshot, run beside the other rules (checks/engine.py)



CLIENT_PORT = 43210  # the simulated connection's source port


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    yield from _nftables_ports(snapshot)
    for engine, host in netavark.engines(snapshot):
        nat = netavark.chains(host, "nat")
        live = netavark.reachable(nat, ("PREROUTING", "OUTPUT"))
        published = [p for p in publishes(host) if p.rule.family == 4]
        for container in netavark.owners(engine):
            targets = netavark.addresses(engine, container)
            if not targets:
                continue  # host or none network mode: nothing to DNAT
            for bound in container.bound:
                if ":" in bound.host_ip or not bound.host_port:
                    continue  # IPv6 bindings: not judged here
                rules = [p for p in published if p.protocol == bound.protocol
                         and p.port == bound.host_port and p.covers(bound.host_ip)]
                working = [p for p in rules if p.rule.chain in live]
                if any(p.to_address in targets and p.to_port == bound.container_port
                       for p in working):
                    continue
                name = container.pod or container.name
                subject = f"{bound.protocol}/{bound.host_port}"
                want = f"{sorted(targets)[0]}:{bound.container_port}"
                evidence = [Evidence(f"{intent.who(engine)} publishes {_binding(bound)} → "
                                     f"{name}:{bound.container_port}", host.ref.id, "docker",
                                     container.name)]
                evidence += [p.evidence(host.ref.id) for p in rules] or [Evidence(
                    f"nat: no DNAT for {subject} ({len(published)} DNAT rules read)",
                    host.ref.id, "firewall", "nat/NETAVARK-HOSTPORT-DNAT")]
                if working:
                    trouble = (f"the nat table takes {subject} to "
                               f"{', '.join(p.target for p in working)}, not to {want}: the "
                               "port leads elsewhere")
                elif rules:
                    trouble = (f"its DNAT to {want} is in a chain neither PREROUTING nor OUTPUT "
                               "reaches any more: the port does not reach the container "
                               "(conmon's socket holds it)")
                else:
                    trouble = (f"the nat table has no DNAT for {subject} to {want}: the port "
                               "does not reach the container (conmon's socket holds it)")
                yield RULE.finding(
                    host.ref, subject,
                    f"Podman publishes {_binding(bound)} → {name}:{bound.container_port}, "
                    f"but {trouble}",
                    evidence=evidence,
                    related=(container.netns,) if container.netns else (),
                    repair=Repair("Let netavark write its rules again", Safety.MANUAL, (
                        ManualStep(f"podman network reload {container.name} (after fixing what "
                                   "removed the rules)", host.ref.id),)))


def _nftables_ports(snapshot: Snapshot) -> Iterator[Finding]:
    """Podman 5: each published port followed from the host by the flow engine, in IPv4 and,
    for a container with an IPv6 address, in IPv6 (netavark DNATs both)."""
    flows: Engine | None = None
    for engine, host in netavark.nftables_engines(snapshot):
        if not netavark.nftables_netavark(host):
            continue  # no table at all: podman-network-rules-missing names it
        for container in netavark.owners(engine):
            if not container.netns or not netavark.addresses(engine, container):
                continue
            for bound in container.bound:
                if bound.protocol not in ("tcp", "udp"):
                    continue
                undelivered, followed = [], 0
                for family in (4, 6):
                    address = _address(engine, host, bound, family)
                    if not address or not _targets(engine, container, family):
                        continue
                    followed += 1
                    flows = flows or Engine(snapshot)
                    packet = Packet("", address, bound.protocol, CLIENT_PORT, bound.host_port)
                    fate = flows.path(host.ref.id, packet).forward
                    # Delivered on the host (conmon's socket), or refused there (conmon holds
                    # IPv4's port alone): no DNAT took it (lost on the way, or unknown, is
                    # other rules' to say).
                    end = fate.drop.namespace.id if fate.drop else fate.namespace
                    if fate.disposition in (DELIVERED, NO_LISTENER) and end == host.ref.id:
                        undelivered.append((family, address, fate.disposition))
                if undelivered:
                    yield _undelivered(engine, host, container, bound, undelivered,
                                       every_family=len(undelivered) == followed)


def _targets(engine: DockerEngine, container: DockerContainer, family: int) -> list[str]:
    """Where netavark DNATs the container's ports in `family`, as `address:` prefixes."""
    if family == 4:
        return [f"{a}:" for a in sorted(netavark.addresses(engine, container))]
    bridges = {n.name for n in intent.bridge_networks(engine)}
    return sorted(f"[{e.ipv6}]:" for e in container.endpoints
                  if e.ipv6 and e.network in bridges)


def _address(engine: DockerEngine, host: NamespaceState, bound: DockerPort, family: int
             ) -> str:
    """Where the host connects to a published port in `family`: the address it is bound to,
    or, bound to every address, the host's first global address of the family outside
    Podman's networks."""
    if not bound.host_port:
        return ""
    if bound.host_ip not in WILDCARD_ADDRESSES:  # one address: its family's alone
        return bound.host_ip if (":" in bound.host_ip) == (family == 6) else ""
    # Every address: netavark 1.17 DNATs both families for `-p 8080:80` and for
    # `-p 0.0.0.0:8080:80` alike, and Podman reports both as 0.0.0.0.
    podman = [ipaddress.ip_network(s) for n in intent.bridge_networks(engine)
              for s in intent.subnets(n, family)]
    for address in host.addresses:
        if address.family == family and address.scope == "global" and not any(
                ipaddress.ip_address(address.address) in subnet for subnet in podman):
            return address.address
    return ""


def _undelivered(engine: DockerEngine, host: NamespaceState, container: DockerContainer,
                 bound: DockerPort, undelivered: list[tuple[int, str, str]],
                 every_family: bool) -> Finding:
    """One finding per port, naming the family only when its other one is delivered."""
    name = container.pod or container.name
    subject = f"{bound.protocol}/{bound.host_port}"
    wants = " nor ".join(f"{_targets(engine, container, family)[0]}{bound.container_port}"
                         for family, _, _ in undelivered)
    what = "connection" if every_family else f"IPv{undelivered[0][0]} connection"
    held = "conmon's socket holds it" if undelivered[0][2] == DELIVERED else \
        "the host refuses it: nothing holds the port"
    return RULE.finding(
        host.ref, subject,
        f"Podman publishes {_binding(bound)} → {name}:{bound.container_port}, but table inet "
        f"{netavark.NFTABLES_TABLE} takes no {what} to {subject} to {wants}: the port does "
        f"not reach the container ({held})",
        evidence=[Evidence(f"{intent.who(engine)} publishes {_binding(bound)} → "
                           f"{name}:{bound.container_port}", host.ref.id, "docker",
                           container.name),
                  *(Evidence(f"flow engine: a connection from the host to "
                             f"{_joined(address, bound.host_port)} is "
                             f"{'delivered' if end == DELIVERED else 'refused'} on the host, "
                             f"not delivered in {name}'s namespace", host.ref.id, "firewall",
                             f"inet {netavark.NFTABLES_TABLE}")
                    for _, address, end in undelivered)],
        related=(container.netns,),
        repair=Repair("Let netavark write its rules again", Safety.MANUAL, (
            ManualStep(f"podman network reload {container.name} (after fixing what removed "
                       "the rules)", host.ref.id),)))


def _joined(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _binding(port: DockerPort) -> str:
    return f"{port.host_ip or '0.0.0.0'}:{port.host_port}/{port.protocol}"
