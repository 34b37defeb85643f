"""docker-network-rules-missing: a Docker bridge network lacks the masquerade or isolation rule
its configuration implies.

What it finds
    On an engine that programs iptables, for every bridge network:
    * not internal, with IP masquerading on (the daemon's `ip-masq` and the network's
      `com.docker.network.bridge.enable_ip_masquerade`, both on by default) and, on Docker 27
      and later, a NAT gateway mode (`com.docker.network.bridge.gateway_mode_ipv4` unset,
      `nat` or `nat-unprotected`; a `routed` or `isolated` network is never masqueraded): no
      `-t nat -A POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE`;
    * with inter-container communication off (the network's
      `com.docker.network.bridge.enable_icc=false`, which the daemon's `icc: false` sets on
      the default bridge only): no `-A FORWARD -i BRIDGE -o BRIDGE -j DROP`.

    Docker versions: 20.10's layout and 28's (the masquerade in nat POSTROUTING and the icc
    DROP naming the bridge on both sides, wherever in the filter table Docker puts it), with
    27+'s gateway modes. Docker 29's nftables backend (a `docker-bridges` table in the
    namespace) is not judged: the rule stands aside there.

Why it matters
    Without the masquerade rule, containers' packets leave the host with their private
    source address and the answers never find their way back: "no internet in containers"
    while the host itself is fine. It is what a firewall reload or `iptables -t nat -F` that
    wiped Docker's rules looks like. Without the drop rule, containers that were meant to be
    isolated from each other are not.

Example
    ND811 docker-network-rules-missing  host: nat/POSTROUTING
      network app (172.18.0.0/16): no MASQUERADE for -s 172.18.0.0/16 ! -o br-5e1c9a2f3b4d:
      containers' packets leave with their private source address and answers do not return
      repair (safe): Restore Docker's masquerade rule
        $ iptables -t nat -A POSTROUTING -s 172.18.0.0/16 ! -o br-5e1c9a2f3b4d -j MASQUERADE

Repair
    The rule exactly as Docker writes it (safe: it only restores what the daemon's own
    configuration asks for). Restarting the daemon also rewrites every rule; find what
    flushed them (firewalld, ufw, an iptables-restore of a saved file without Docker's).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import AddIptablesRule, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import IptablesRule, NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerEngine, DockerNetwork

RULE = Rule(code="ND811", name="docker-network-rules-missing", severity=Severity.ERROR,
            summary="a Docker bridge network lacks the masquerade or icc-drop rule its "
                    "configuration implies")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for engine, host in intent.engines(snapshot):
        if not engine.daemon.iptables or not host.firewall.iptables_rules or \
                intent.nftables_backend(host):
            continue  # Docker writes none (or writes nftables), or the firewall was not read
        for network in intent.bridge_networks(engine):
            yield from _masquerade(engine, host, network)
            yield from _icc(engine, host, network)


def _subnets(network: DockerNetwork) -> list[str]:
    return [str(ipaddress.ip_network(i.subnet, strict=False)) for i in network.ipam
            if ipaddress.ip_network(i.subnet, strict=False).version == 4]


def _said(engine: DockerEngine, network: DockerNetwork, ns_id: int, what: str) -> Evidence:
    return Evidence(f"{intent.who(engine)}: network {network.name} ({network.id[:12]}): {what}",
                    ns_id, "docker", network.name)


def _masquerade(engine: DockerEngine, host: NamespaceState, network: DockerNetwork
                ) -> Iterator[Finding]:
    if not intent.masqueraded(engine, network):
        return  # internal, masquerading off, or a routed or isolated network: by design
    bridge = intent.bridge_name(network)
    for subnet in _subnets(network):
        if any(_is_masquerade(rule, subnet, bridge) for rule in host.firewall.iptables_rules):
            continue
        args = ("-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE")
        yield RULE.finding(
            host.ref, "nat/POSTROUTING",
            f"network {network.name} ({subnet}): no MASQUERADE for -s {subnet} ! -o {bridge}: "
            "containers' packets leave with their private source address and answers do "
            "not return",
            evidence=[_said(engine, network, host.ref.id, "IP masquerading is on"),
                      Evidence(f"nat POSTROUTING has no MASQUERADE for {subnet}", host.ref.id,
                               "firewall", "nat/POSTROUTING")],
            repair=Repair("Restore Docker's masquerade rule", Safety.SAFE,
                          (AddIptablesRule(host.ref.id, "nat", "POSTROUTING", args),)))


def _is_masquerade(rule: IptablesRule, subnet: str, bridge: str) -> bool:
    if rule.table != "nat" or rule.chain != "POSTROUTING" or rule.target != "MASQUERADE" or \
            rule.family != 4:
        return False
    source = rule.match("source")
    out = rule.match("out-interface")
    return source is not None and not source.negated and _same_net(source.value, subnet) and \
        (out is None or (out.negated and out.value == bridge))


def _same_net(value: str, subnet: str) -> bool:
    try:
        return ipaddress.ip_network(value, strict=False) == ipaddress.ip_network(subnet)
    except ValueError:
        return False


def _icc(engine: DockerEngine, host: NamespaceState, network: DockerNetwork
         ) -> Iterator[Finding]:
    # The daemon's `icc` is written into the default bridge's options; user networks have
    # their own option, on unless set (the healthy matrix's icc-off engine shows both).
    if intent.flag(network.option(intent.ICC)):
        return
    bridge = intent.bridge_name(network)
    if any(_is_icc_drop(rule, bridge) for rule in host.firewall.iptables_rules):
        return
    args = ("-i", bridge, "-o", bridge, "-j", "DROP")
    yield RULE.finding(
        host.ref, "filter/FORWARD",
        f"network {network.name}: inter-container communication is off, but FORWARD has no "
        f"-i {bridge} -o {bridge} -j DROP: its containers can reach each other",
        severity=Severity.WARNING,
        evidence=[_said(engine, network, host.ref.id, "icc is off"),
                  Evidence(f"filter FORWARD has no DROP from {bridge} to {bridge}", host.ref.id,
                           "firewall", "filter/FORWARD")],
        repair=Repair("Restore Docker's isolation rule", Safety.SAFE,
                      (AddIptablesRule(host.ref.id, "filter", "FORWARD", args, position=1),)))


def _is_icc_drop(rule: IptablesRule, bridge: str) -> bool:
    if rule.table != "filter" or rule.target != "DROP" or rule.family != 4:
        return False
    source, out = rule.match("in-interface"), rule.match("out-interface")
    return source is not None and out is not None and not source.negated and \
        not out.negated and source.value == bridge and out.value == bridge
