"""podman-network-rules-missing: a Podman network lacks the masquerade or forward rule netavark
writes for it.

What it finds
    On Podman 4's netavark (iptables, either backend), for every bridge network that is not
    internal and has a running container on it, per IPv4 subnet:
    * no MASQUERADE that nat POSTROUTING reaches for the subnet's traffic (netavark's
      `-s SUBNET -j NETAVARK-<hash>` and, in that chain, `! -d 224.0.0.0/4 -j MASQUERADE`);
    * no ACCEPT that filter FORWARD reaches for the subnet's traffic (netavark's
      `-j NETAVARK_FORWARD` and, in it, `-s SUBNET -j ACCEPT`), while the FORWARD policy is
      ACCEPT (a warning: nothing is lost yet). With the policy DROP the traffic is lost, and
      podman-forward-dropped names it, with what drops it: one cause, one finding.
    Both are what a firewall reload (`iptables -F`, firewalld, an iptables-restore of a
    saved file) leaves of netavark's chains. Internal networks get neither, by design.
    On Podman 5's netavark (nftables): no `table inet netavark` at all while a network that is
    not internal has a running container on it — what firewalld's reload or an `nft flush
    ruleset` leaves. The table's contents are the flow engine's to judge (`path`).

Why it matters
    Without the masquerade, containers' packets leave the host with their private source
    address and the answers never come back: "no internet in the containers" while the host
    is fine. Without the forward accept, the containers' traffic meets whatever FORWARD does
    with strangers: nothing while its policy is ACCEPT, everything lost once something (Docker,
    a firewall) sets it to DROP.

Example
    ND532 podman-network-rules-missing  host: nat/POSTROUTING
      network n1 (10.89.0.0/24): nat POSTROUTING reaches no MASQUERADE for its traffic:
      containers' packets leave with their private source address and answers do not return
        · Podman (vm): network n1 (podman1), not internal
        · nat POSTROUTING reaches no MASQUERADE for -s 10.89.0.0/24
      repair (manual): Let netavark write its rules again
        $ # podman network reload --all (after fixing what flushed the rules)

    ND532 podman-network-rules-missing  host: inet netavark
      table inet netavark is gone: networks front (10.89.0.0/24), podman (10.88.0.0/16) have
      no masquerade and no forward accept, and their published ports no DNAT
        · Podman (vm) 5.8.6: networks front, podman in use, not internal
        · nftables: no table inet netavark (2 tables read)
      repair (manual): Let netavark write its rules again
        $ # podman network reload --all (after fixing what flushed the rules)

Repair
    `podman network reload --all` has netavark write every running container's rules again;
    find what flushed them, or it happens again at the next reload.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.checks import netavark
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerEngine, DockerNetwork

RULE = Rule(code="ND532", name="podman-network-rules-missing", severity=Severity.ERROR,
            summary="a Podman network lacks netavark's masquerade or forward-accept rule")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    yield from _tables_missing(snapshot)
    for engine, host in netavark.engines(snapshot):
        nat = netavark.chains(host, "nat")
        filter_ = netavark.chains(host, "filter")
        for network in netavark.networks_in_use(engine):
            if network.internal:
                continue
            for subnet in intent.subnets(network, 4):
                if not _reaches(nat, "POSTROUTING", subnet, "MASQUERADE"):
                    yield _finding(
                        engine, host, network, subnet, "nat/POSTROUTING", Severity.ERROR,
                        "nat POSTROUTING reaches no MASQUERADE for its traffic: containers' "
                        "packets leave with their private source address and answers do not "
                        "return", f"nat POSTROUTING reaches no MASQUERADE for -s {subnet}")
                policy = _forward_policy(host)
                if policy != "DROP" and not _reaches(filter_, "FORWARD", subnet, "ACCEPT",
                                                     exact=True):
                    yield _finding(
                        engine, host, network, subnet, "filter/FORWARD", Severity.WARNING,
                        f"filter FORWARD reaches no ACCEPT for its traffic: it meets the "
                        f"FORWARD policy ({policy or 'unknown'}), and is lost as soon as that "
                        "becomes DROP", f"filter FORWARD reaches no ACCEPT for -s {subnet}")


def _tables_missing(snapshot: Snapshot) -> Iterator[Finding]:
    """Podman 5: `table inet netavark` gone while a network that needs it is in use."""
    for engine, host in netavark.nftables_engines(snapshot):
        if netavark.nftables_netavark(host):
            continue
        needing = [n for n in netavark.networks_in_use(engine) if not n.internal]
        if not needing:
            continue
        names = ", ".join(n.name for n in needing)
        subnets = ", ".join(f"{n.name} ({', '.join(intent.subnets(n, 4))})" for n in needing)
        yield RULE.finding(
            host.ref, f"inet {netavark.NFTABLES_TABLE}",
            f"table inet {netavark.NFTABLES_TABLE} is gone: networks {subnets} have no "
            "masquerade and no forward accept, and their published ports no DNAT",
            evidence=[Evidence(f"{intent.who(engine)} {engine.version}: networks {names} in "
                               "use, not internal", host.ref.id, "docker", needing[0].name),
                      Evidence(f"nftables: no table inet {netavark.NFTABLES_TABLE} "
                               f"({len(host.firewall.nft_tables)} tables read)", host.ref.id,
                               "firewall", f"inet {netavark.NFTABLES_TABLE}")],
            repair=Repair("Let netavark write its rules again", Safety.MANUAL, (ManualStep(
                "podman network reload --all (after fixing what flushed the rules)",
                host.ref.id),)))


def _reaches(table: dict, start: str, subnet: str, target: str, exact: bool = False) -> bool:
    """Whether a rule with `target` for the subnet's traffic is in a chain `start` reaches
    (`exact`: its source must be the subnet; else absent or the subnet). A MASQUERADE limited
    to marked packets is netavark's for published ports, not the network's."""
    for chain in netavark.reachable(table, (start,), subnet):
        for rule in table.get(chain, ()):
            if rule.target == target and netavark.from_subnet(rule, subnet, absent=not exact) \
                    and rule.match("mark") is None:
                return True
    return False


def _forward_policy(host: NamespaceState) -> str:
    return next((c.policy for c in host.firewall.iptables_chains if c.family == 4
                 and c.table == "filter" and c.name == "FORWARD"), "")


def _finding(engine: DockerEngine, host: NamespaceState, network: DockerNetwork, subnet: str,
             subject: str, severity: Severity, what: str, missing: str) -> Finding:
    return RULE.finding(
        host.ref, subject, f"network {network.name} ({subnet}): {what}", severity=severity,
        evidence=[Evidence(f"{intent.who(engine)}: network {network.name} "
                           f"({intent.bridge_name(network)}), not internal", host.ref.id,
                           "docker", network.name),
                  Evidence(missing, host.ref.id, "firewall", subject)],
        repair=Repair("Let netavark write its rules again", Safety.MANUAL, (ManualStep(
            "podman network reload --all (after fixing what flushed the rules)",
            host.ref.id),)))
