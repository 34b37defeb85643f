"""podman-port-unpublished: a port Podman publishes does not reach its container.

What it finds
    For every running Podman container (or pod) with published ports, on Podman 4's netavark
    (iptables, either backend): a published IPv4 port with no DNAT to the container's address
    and port in a nat chain that PREROUTING or OUTPUT reaches (netavark's
    NETAVARK-HOSTPORT-DNAT → NETAVARK-DN-<hash>), or one whose DNAT leads elsewhere. Podman 5's
    `table inet netavark` is not judged: the rule stands aside there.

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

from collections.abc import Iterator

from netdiag.checks import netavark
from netdiag.checks.dnat import publishes
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Snapshot, intent
from netdiag.model.docker import DockerPort

RULE = Rule(code="ND531", name="podman-port-unpublished", severity=Severity.ERROR,
            summary="a port Podman publishes has no DNAT to its container")



def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
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


def _binding(port: DockerPort) -> str:
    return f"{port.host_ip or '0.0.0.0'}:{port.host_port}/{port.protocol}"
