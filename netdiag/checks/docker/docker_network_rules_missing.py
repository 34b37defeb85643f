"""docker-network-rules-missing: a Docker bridge network lacks the masquerade or isolation rule
its configuration implies.

What it finds
    On an engine that writes firewall rules (`iptables` on), for every bridge network:
    * not internal, with IP masquerading on (the daemon's `ip-masq` and the network's
      `com.docker.network.bridge.enable_ip_masquerade`, both on by default) and, on Docker 27
      and later, a NAT gateway mode for the family (`com.docker.network.bridge.gateway_mode_
      ipv4` / `_ipv6` unset, `nat` or `nat-unprotected`; a `routed` or `isolated` network is
      never masqueraded): no `-t nat -A POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE`
      (for an IPv6 subnet in ip6tables), or, with Docker 29's nftables backend, no
      `oifname != BRIDGE ip saddr SUBNET masquerade` (`ip6 saddr` in the ip6 table) that
      the table's postrouting chain reaches through its verdict maps;
    * with inter-container communication off (the network's
      `com.docker.network.bridge.enable_icc=false`, which the daemon's `icc: false` sets on
      the default bridge only): no `-A FORWARD -i BRIDGE -o BRIDGE -j DROP`, or, on
      nftables, no reachable `iifname BRIDGE drop` in `filter-forward-in__BRIDGE` (on an
      internal network, the chain's unconditional drop).

    Docker versions: 20.10's layout and 28's (the masquerade in nat POSTROUTING and the icc
    DROP naming the bridge on both sides, wherever in the filter table Docker puts it), with
    27+'s gateway modes; IPv6 networks (`EnableIPv6`) where the daemon writes IPv6 rules
    (ip6tables on: 27+'s default, 20.10's experimental option), known by the daemon's
    `ip6tables` setting or, unset, by Docker's DOCKER chain in ip6tables' nat table; with
    ip6tables off nothing IPv6 is judged. Docker 29's nftables backend (the daemon's
    `firewall-backend: nftables`, or a `docker-bridges` table; `table ip6 docker-bridges`
    with ip6tables on) as moby writes it: per-bridge chains reached through verdict maps keyed
    by the bridge's name; a rule whose chain no packet reaches (its map element gone)
    counts as missing. The icc drop is judged in each family the network has subnets of
    (28 writes it in ip6tables too for an IPv6 network, 29 in its ip6 table).

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
    The rule exactly as Docker writes it, with iptables or ip6tables (safe: it only restores
    what the daemon's own configuration asks for). Restarting the daemon also rewrites every
    rule; find what flushed them (firewalld, ufw, an iptables-restore of a saved file without
    Docker's). With Docker 29's nftables backend the repair is manual: restart the daemon,
    which writes its own tables again (its chains and verdict maps are the daemon's; netdiag
    adds nothing to them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from netdiag.checks import docker_bridges
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import AddIptablesRule, ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import IptablesRule, NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerEngine, DockerNetwork

RULE = Rule(code="ND811", name="docker-network-rules-missing", severity=Severity.ERROR,
            summary="a Docker bridge network lacks the masquerade or icc-drop rule its "
                    "configuration implies")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for engine, host in intent.engines(snapshot):
        nftables = intent.nftables_backend(engine, host)
        if not engine.daemon.iptables or not (nftables or host.firewall.iptables_rules):
            continue  # Docker writes none, or the firewall was not read
        families = (4, 6) if intent.ipv6_firewall(engine, host) else (4,)
        for network in intent.bridge_networks(engine):
            for family in families:
                if nftables:
                    yield from _nft_masquerade(engine, host, network, family)
                    yield from _nft_icc(engine, host, network, family)
                else:
                    yield from _masquerade(engine, host, network, family)
                    yield from _icc(engine, host, network, family)


def _said(engine: DockerEngine, network: DockerNetwork, ns_id: int, what: str) -> Evidence:
    return Evidence(f"{intent.who(engine)}: network {network.name} ({network.id[:12]}): {what}",
                    ns_id, "docker", network.name)


def _masquerade(engine: DockerEngine, host: NamespaceState, network: DockerNetwork,
                family: int) -> Iterator[Finding]:
    if not intent.masqueraded(engine, network, family):
        return  # internal, masquerading off, or a routed or isolated network: by design
    bridge = intent.bridge_name(network)
    command = "iptables" if family == 4 else "ip6tables"
    for subnet in intent.subnets(network, family):
        if any(_is_masquerade(rule, subnet, bridge, family)
               for rule in host.firewall.iptables_rules):
            continue
        host_ip = network.option(intent.HOST_IP[family])
        args = ("-s", subnet, "!", "-o", bridge, "-j",
                *(("SNAT", "--to-source", host_ip) if host_ip else ("MASQUERADE",)))
        yield RULE.finding(
            host.ref, "nat/POSTROUTING",
            f"network {network.name} ({subnet}): no MASQUERADE for -s {subnet} ! -o {bridge}"
            f"{'' if family == 4 else ' in ip6tables'}: containers' packets leave with their "
            "private source address and answers do not return",
            evidence=[_said(engine, network, host.ref.id, "IP masquerading is on"),
                      Evidence(f"{command} nat POSTROUTING has no MASQUERADE for {subnet}",
                               host.ref.id, "firewall", "nat/POSTROUTING")],
            repair=Repair("Restore Docker's masquerade rule", Safety.SAFE,
                          (AddIptablesRule(host.ref.id, "nat", "POSTROUTING", args,
                                           family=family),)))


def _nft_masquerade(engine: DockerEngine, host: NamespaceState, network: DockerNetwork,
                    family: int) -> Iterator[Finding]:
    if not intent.masqueraded(engine, network, family):
        return
    bridge = intent.bridge_name(network)
    table = f"{docker_bridges.table_family(family)} {intent.NFTABLES_BACKEND_TABLE}"
    for subnet in intent.subnets(network, family):
        if docker_bridges.masquerades(host, family, subnet, bridge):
            continue
        chain = f"nat-postrouting-out__{bridge}"
        yield RULE.finding(
            host.ref, f"nft {table}",
            f"network {network.name} ({subnet}): Docker's nftables table {table} masquerades "
            f"nothing from {subnet} (no reachable `oifname != {bridge} "
            f"{docker_bridges.table_family(family)} saddr {subnet} masquerade`): containers' "
            "packets leave with their private source address and answers do not return",
            evidence=[_said(engine, network, host.ref.id, "IP masquerading is on"),
                      Evidence(f"nft {table}: no masquerade for {subnet} in {chain} or any "
                               "chain its postrouting reaches", host.ref.id, "firewall",
                               f"nft {table}")],
            repair=_restart("masquerade rule", host))


def _restart(what: str, host: NamespaceState) -> Repair:
    # Docker 29's tables are the daemon's own (chains and verdict maps per bridge): netdiag
    # has no nft step to add to them safely, and the daemon writes them all when it starts.
    return Repair(f"Let Docker write its {what} again", Safety.MANUAL, (ManualStep(
        "systemctl restart docker (the daemon rewrites its nftables tables), after "
        "fixing what removed the rule (a `flush ruleset` in another nftables.conf)",
        host.ref.id),))


def _is_masquerade(rule: IptablesRule, subnet: str, bridge: str, family: int) -> bool:
    # With `com.docker.network.host_ipv4` (`_ipv6`) set, Docker writes SNAT to that address
    # instead of MASQUERADE: either is the network's source NAT.
    if rule.table != "nat" or rule.chain != "POSTROUTING" or \
            rule.target not in ("MASQUERADE", "SNAT") or rule.family != family:
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


def _icc_off(network: DockerNetwork, family: int) -> bool:
    # The daemon's `icc` is written into the default bridge's options; user networks have
    # their own option, on unless set (the healthy matrix's icc-off engine shows both).
    # Docker writes the drop in each family the network has addresses of (28 and 29 write
    # the same rule in ip6tables, or the ip6 table, for an IPv6 network).
    return not intent.flag(network.option(intent.ICC)) and \
        (family == 4 or bool(intent.subnets(network, family)))


def _icc(engine: DockerEngine, host: NamespaceState, network: DockerNetwork, family: int
         ) -> Iterator[Finding]:
    if not _icc_off(network, family):
        return
    bridge = intent.bridge_name(network)
    if any(_is_icc_drop(rule, bridge, family) for rule in host.firewall.iptables_rules):
        return
    command = "iptables" if family == 4 else "ip6tables"
    args = ("-i", bridge, "-o", bridge, "-j", "DROP")
    yield RULE.finding(
        host.ref, "filter/FORWARD",
        f"network {network.name}: inter-container communication is off, but "
        f"{'' if family == 4 else 'ip6tables '}FORWARD has no -i {bridge} -o {bridge} -j DROP:"
        f" its containers can reach each other{'' if family == 4 else ' over IPv6'}",
        severity=Severity.WARNING,
        evidence=[_said(engine, network, host.ref.id, "icc is off"),
                  Evidence(f"{command} filter FORWARD has no DROP from {bridge} to {bridge}",
                           host.ref.id, "firewall", "filter/FORWARD")],
        repair=Repair("Restore Docker's isolation rule", Safety.SAFE,
                      (AddIptablesRule(host.ref.id, "filter", "FORWARD", args, position=1,
                                       family=family),)))


def _nft_icc(engine: DockerEngine, host: NamespaceState, network: DockerNetwork, family: int
             ) -> Iterator[Finding]:
    if not _icc_off(network, family):
        return
    bridge = intent.bridge_name(network)
    if docker_bridges.icc_drops(host, bridge, network.internal, family):
        return
    table = f"{docker_bridges.table_family(family)} {intent.NFTABLES_BACKEND_TABLE}"
    yield RULE.finding(
        host.ref, f"nft {table}",
        f"network {network.name}: inter-container communication is off, but Docker's "
        f"nftables table {table} has no reachable `iifname {bridge} drop` in "
        f"filter-forward-in__{bridge}: its containers can reach each other",
        severity=Severity.WARNING,
        evidence=[_said(engine, network, host.ref.id, "icc is off"),
                  Evidence(f"nft {table}: nothing drops {bridge} to {bridge} in the chains its "
                           "forward hook reaches", host.ref.id, "firewall", f"nft {table}")],
        repair=_restart("isolation rule", host))


def _is_icc_drop(rule: IptablesRule, bridge: str, family: int) -> bool:
    if rule.table != "filter" or rule.target != "DROP" or rule.family != family:
        return False
    source, out = rule.match("in-interface"), rule.match("out-interface")
    return source is not None and out is not None and not source.negated and \
        not out.negated and source.value == bridge and out.value == bridge
