"""docker-prerequisite-missing: the kernel lacks a setting the daemon's configuration relies on.

What it finds
    On an engine that programs iptables, in the namespace it runs in:
    * with the userland proxy off (`userland-proxy: false`), a bridge port of a container that
      publishes ports has hairpin mode off: Docker turns it on for every endpoint, so that a
      container reaches its own published port through the host's address;
    * a network with inter-container communication off (`enable_icc=false`, the daemon's
      `icc: false` on the default bridge) while `net.bridge.bridge-nf-call-iptables` is 0:
      frames between two containers on one bridge are switched without passing iptables, so
      Docker's DROP rule never sees them.
    (IPv4 forwarding, which every Docker host needs, is ip-forward-disabled's.)

    Docker versions: every layout alike (20.10, 28, 29's nftables backend): hairpin mode and
    `bridge-nf-call-iptables` are kernel settings, whatever writes the rules.

Why it matters
    Without hairpin mode, a container that calls its own service by the host's address and
    published port (a common pattern behind a proxy or with a public DNS name) times out,
    although everyone else gets through. With bridge-nf-call-iptables off, "isolated"
    containers talk to each other freely: a security setting that silently does nothing —
    `docker info` only warns "bridge-nf-call-iptables is disabled".

Example
    ND511 docker-prerequisite-missing  host: vethab12cd3
      the userland proxy is off, but vethab12cd3 (web's port on br-5e1c9a2f3b4d) has hairpin
      mode off: web cannot reach its own published ports through the host's address
      repair (safe): Turn hairpin mode back on
        $ bridge link set dev vethab12cd3 hairpin on

Repair
    Hairpin mode back on (safe: it is what Docker set). bridge-nf-call-iptables back to 1
    (unsafe: it sends every bridged frame of the namespace through iptables), and make it
    persistent in /etc/sysctl.d.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import Repair, Safety, SetHairpin, SetSysctl
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerEngine

RULE = Rule(code="ND511", name="docker-prerequisite-missing", severity=Severity.WARNING,
            summary="hairpin mode or bridge-nf-call-iptables is off although the daemon's "
                    "configuration relies on it")

BRIDGE_NF = "net.bridge.bridge-nf-call-iptables"


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for engine, host in intent.engines(snapshot):
        if not engine.daemon.iptables:
            continue
        if not engine.daemon.userland_proxy:
            yield from _hairpin(snapshot, engine, host)
        yield from _bridge_nf(engine, host)


def _hairpin(snapshot: Snapshot, engine: DockerEngine, host: NamespaceState
             ) -> Iterator[Finding]:
    bridges = {intent.bridge_name(n) for n in intent.bridge_networks(engine)}
    for container in engine.containers:
        if not container.running or not container.bound or container.netns == host.ref.id:
            continue
        state = intent.namespace_of(snapshot, container)
        for link in state.links if state else ():
            if link.kind != "veth" or link.peer_namespace != host.ref.id:
                continue
            port = host.link(link.peer_name)
            if port is None or port.master not in bridges or port.port is None or \
                    port.port.hairpin:
                continue
            yield RULE.finding(
                host.ref, port.name,
                f"the userland proxy is off, but {port.name} ({container.name}'s port on "
                f"{port.master}) has hairpin mode off: {container.name} cannot reach its own "
                "published ports through the host's address",
                evidence=[Evidence(f"{intent.who(engine)}: userland-proxy false; "
                                   f"{container.name} publishes "
                                   f"{', '.join(str(p.host_port) for p in container.bound)}",
                                   host.ref.id, "docker", container.name),
                          Evidence(f"{port.name} master {port.master} hairpin off",
                                   host.ref.id, "link", port.name)],
                related=(container.netns,),
                repair=Repair("Turn hairpin mode back on", Safety.SAFE,
                              (SetHairpin(host.ref.id, port.name),)))


def _bridge_nf(engine: DockerEngine, host: NamespaceState) -> Iterator[Finding]:
    if host.sysctl(BRIDGE_NF) != "0":
        return  # on, or this kernel has no br_netfilter (then there is nothing to set)
    isolated = [n.name for n in intent.bridge_networks(engine)
                if not intent.flag(n.option(intent.ICC))]
    if not isolated:
        return
    yield RULE.finding(
        host.ref, BRIDGE_NF,
        f"inter-container communication is off on {', '.join(isolated)}, but {BRIDGE_NF} is "
        "0: frames between its containers skip iptables, and Docker's DROP rule never sees "
        "them",
        evidence=[Evidence(f"{intent.who(engine)}: enable_icc=false on "
                           f"{', '.join(isolated)}", host.ref.id, "docker", isolated[0]),
                  Evidence(f"{BRIDGE_NF} = 0", host.ref.id, "sysctl", BRIDGE_NF)],
        repair=Repair("Send bridged frames through iptables again", Safety.UNSAFE,
                      (SetSysctl(host.ref.id, BRIDGE_NF, "1"),)))
