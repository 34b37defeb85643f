"""Published ports on a bridge: host-port allocation plus Docker's DNAT/accept rules.

Shared by every driver that publishes a container port through a Linux bridge in a host
namespace: the bridge driver (its own `br-…` bridge) and the overlay driver (each host's
`docker_gwbridge`, like Docker's `-p` on an overlay network). `publish` takes the host ports
from the store (port 0 → the lowest free one of `ip_local_port_range`) and writes
firewall.port_rules, giving the ports back when writing fails; `unpublish` deletes the rules and
gives the ports back; `missing` is the check side, one RULE_MISSING finding per absent rule.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from netdiag.drivers.api import namespace_ref
from netdiag.drivers.common import firewall, iptables
from netdiag.drivers.common.iptables import FwRule, RulePlacement
from netdiag.findings.driver_rules import RULE_MISSING
from netdiag.findings.finding import Evidence, Finding
from netdiag.findings.repair import AddIptablesRule, Repair, Safety
from netdiag.model import NamespaceRef
from netdiag.netns import entered
from netdiag.store import Store
from netdiag.store.records import Network, PortBinding

PORT_RANGE_FALLBACK = (49153, 65535)


def port_range() -> tuple[int, int]:
    """The calling thread's namespace's ephemeral range (Docker picks host ports there)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return PORT_RANGE_FALLBACK


def publish(store: Store, host: str, owner: str, bridge: str, ip: str,
            ports: Sequence[PortBinding], *, default_host_ip: str, hairpin: bool,
            chains: Iterable[tuple[str, str]] = firewall.CHAINS,
            prerequisites: Sequence[FwRule] = (), ip6: str = "") -> tuple[PortBinding, ...]:
    """Allocate `ports` on `host` for `owner` and DNAT them to `ip` behind `bridge` (and
    those bound on every address to `ip6` too, when the endpoint has an IPv6 address).

    `prerequisites` are rules written (when missing) before the port rules and never removed
    by `unpublish` — the host-wide jumps a driver that has no network rules of its own needs.
    """
    with entered(host):
        low_high = port_range()
        with store.transaction() as tx:
            taken = tuple(tx.take_port(host, replace(p, host_ip=p.host_ip or default_host_ip),
                                       owner, low_high) for p in ports)
        mine = firewall.port_rules(bridge, ip, taken, hairpin=hairpin, ip6=ip6)
        rules = list(prerequisites) + mine
        try:
            for family in sorted({rule.family for rule in rules}):
                iptables.apply_add(chains, [r for r in rules if r.family == family],
                                   family=family)
        except Exception:
            iptables.apply_delete(mine)  # a family written before the one that failed
            with store.transaction() as tx:
                tx.release_ports(owner)
            raise
    return taken


def unpublish(store: Store, host: str, owner: str, bridge: str, ip: str,
              ports: Sequence[PortBinding], *, hairpin: bool, ip6: str = "") -> None:
    """Delete the port rules (those still present) and give `owner`'s host ports back."""
    rules = firewall.port_rules(bridge, ip, ports, hairpin=hairpin, ip6=ip6)
    with entered(host):
        iptables.apply_delete(rules)
    with store.transaction() as tx:
        tx.release_ports(owner)


def missing(host: str, network: Network, rules: Sequence[FwRule]) -> Iterator[Finding]:
    """RULE_MISSING findings (with the re-add repair) for `rules` absent from `host`."""
    if not rules:
        return
    with entered(host):
        saved = iptables.read()
    ref = namespace_ref(host)
    for rule in iptables.missing(saved, rules):
        yield missing_rule(ref, network, rule)


def missing_rule(ref: NamespaceRef, network: Network, rule: FwRule) -> Finding:
    """A driver check's finding: a firewall rule the network needs is not there."""
    position = 1 if rule.where in (RulePlacement.INSERT, RulePlacement.FIRST) else 0
    tool = "iptables-save" if rule.family == 4 else "ip6tables-save"
    return RULE_MISSING.finding(
        ref, f"{rule.table}/{rule.chain}",
        f"rule missing for network {network.name}: -t {rule.table} {rule.line}",
        evidence=[Evidence(f"{tool} -t {rule.table} has no `{rule.line}`", ref.id,
                           "firewall", f"{rule.table}/{rule.chain}")],
        repair=Repair("re-add the rule", Safety.SAFE,
                      (AddIptablesRule(ref.id, rule.table, rule.chain,
                                       tuple(shlex.split(rule.spec)), position,
                                       rule.family),)))
