"""podman-forward-dropped: filter FORWARD drops what a Podman network sends beyond the host.

What it finds
    On Podman 4's netavark (iptables, either backend), for every bridge network that is not
    internal and has a running container on it: the walk of filter FORWARD for traffic out of
    its bridge to another interface (jumps and RETURNs followed, as forward-policy-drop walks
    them) meets a DROP or REJECT before any ACCEPT — the FORWARD policy DROP, a blanket DROP, or
    a DROP that names the network's bridge. Podman's intent says the network reaches beyond
    the host (it is not `--internal`), so even a DROP naming its bridge is a fault here.
    Internal networks are left alone; Podman 5's `table inet netavark` is not judged.

Why it matters
    The containers can reach each other and the host, but nothing beyond it: "no internet in
    the containers". The usual causes: Docker on the same host set the FORWARD policy to DROP
    and a firewall reload flushed netavark's NETAVARK_FORWARD jump, or a firewall inserted its
    own DROP ahead of it.

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
    narrow a DROP that names the bridge, or accept the bridge's traffic ahead of it.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.checks import netavark
from netdiag.checks.forward_walk import OTHER, Direction, filter_chains, walk
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import NamespaceState, Snapshot, intent

RULE = Rule(code="ND533", name="podman-forward-dropped", severity=Severity.ERROR,
            summary="filter FORWARD drops what a Podman network sends beyond the host")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
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


def _forward_policies(host: NamespaceState) -> dict[str, str]:
    """backend → the IPv4 filter FORWARD policy, per iptables backend read."""
    return {c.backend: c.policy for c in host.firewall.iptables_chains
            if c.family == 4 and c.table == "filter" and c.name == "FORWARD"}
