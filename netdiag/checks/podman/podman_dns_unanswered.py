"""podman-dns-unanswered: no aardvark-dns answers on a Podman network with DNS.

What it finds
    For every Podman bridge network with DNS on (`dns_enabled`: the default for networks made
    with `podman network create`) and a running container on it: no UDP socket on the
    network's gateway address, port 53, in the namespace the engine runs in — where netavark
    starts aardvark-dns for it. The containers' resolv.conf names that address. A namespace
    whose sockets were not read is not judged.

Why it matters
    Containers on the network cannot resolve each other's names (nor anything else: aardvark-dns
    is their only resolver), while addresses work: "ping 10.89.0.3 works, ping web does not".
    aardvark-dns runs only while a container on a DNS network does; a crash, a kill or an OOM
    takes every such network's names away until netavark starts it again.

Example
    ND534 podman-dns-unanswered  host: n1
      network n1: nothing listens on 10.89.0.1:53 (udp), where its containers send their DNS
      queries: aardvark-dns is not running for it, names do not resolve
        · Podman (vm): network n1 (podman1) has DNS on, gateway 10.89.0.1
        · no udp socket on 10.89.0.1:53 among 6 sockets read
      repair (manual): Start aardvark-dns again
        $ # podman restart web (netavark starts aardvark-dns with it)

Repair
    Restarting a container of the network (or `podman network reload --all`) has netavark start
    aardvark-dns again; its log (journalctl, or the podman service's) says why it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Snapshot, intent

RULE = Rule(code="ND534", name="podman-dns-unanswered", severity=Severity.ERROR,
            summary="no aardvark-dns answers on a Podman network with DNS")

DNS_PORT = 53


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    no_sockets = {gap.namespace for gap in snapshot.gaps if gap.collector == "sockets"}
    for engine, host in intent.engines(snapshot, runtime="podman"):
        if host.ref.id in no_sockets:
            continue
        members: dict[str, list[str]] = {}
        for container in engine.containers:
            if container.running and not container.shares:
                for endpoint in container.endpoints:
                    members.setdefault(endpoint.network, []).append(container.pod
                                                                    or container.name)
        for network in intent.bridge_networks(engine):
            if not network.dns or network.name not in members:
                continue
            for ipam in network.ipam:
                gateway = ipam.gateway
                if not gateway or ":" in gateway or any(
                        s.protocol == "udp" and s.port == DNS_PORT
                        and s.address in (gateway, "0.0.0.0", "") for s in host.sockets):
                    continue
                first = sorted(members[network.name])[0]
                yield RULE.finding(
                    host.ref, network.name,
                    f"network {network.name}: nothing listens on {gateway}:{DNS_PORT} (udp), "
                    "where its containers send their DNS queries: aardvark-dns is not running "
                    "for it, names do not resolve",
                    evidence=[Evidence(f"{intent.who(engine)}: network {network.name} "
                                       f"({intent.bridge_name(network)}) has DNS on, gateway "
                                       f"{gateway}", host.ref.id, "docker", network.name),
                              Evidence(f"no udp socket on {gateway}:{DNS_PORT} among "
                                       f"{len(host.sockets)} sockets read", host.ref.id,
                                       "socket", f"udp/{DNS_PORT}")],
                    repair=Repair("Start aardvark-dns again", Safety.MANUAL, (ManualStep(
                        f"podman restart {first} (netavark starts aardvark-dns with it)",
                        host.ref.id),)))
