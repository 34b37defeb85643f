"""The one explicit list of rules, and the one catalogue of every code netdiag reports.

Add a rule by importing its module and putting it in RULES (one line each, grouped by domain);
`check --rule/--skip` and the config file find rules here by name. The catalogue is RULES and
the rules the drivers' own checks report (netdiag/findings/driver_rules.py): `netdiag explain`
documents every code in it, and a test fails when a module is missing from RULES or when two
entries of the catalogue share a code or a name.
"""

from __future__ import annotations

from netdiag.checks.addressing import duplicate_address, overlapping_subnets
from netdiag.checks.dns import dns_unreachable
from netdiag.checks.docker import (
    docker_bridge_broken,
    docker_endpoint_broken,
    docker_network_rules_missing,
    docker_overlay_peers,
    docker_port_unpublished,
    docker_prerequisite_missing,
)
from netdiag.checks.exposure import exposure_firewall_bypass, exposure_unpublished_port
from netdiag.checks.firewall import bridge_isolation_broken
from netdiag.checks.fleet import fleet_node_stale, fleet_overlay_mismatch
from netdiag.checks.flows import expected_flow_blocked
from netdiag.checks.forwarding import (
    forward_policy_drop,
    ip_forward_disabled,
    missing_default_route,
)
from netdiag.checks.lb import ipvs_no_backends
from netdiag.checks.links import link_down, macvlan_host_isolation
from netdiag.checks.mtu import mtu_mismatch
from netdiag.checks.overlay import vxlan_fdb_stale
from netdiag.checks.podman import (
    podman_dns_unanswered,
    podman_forward_dropped,
    podman_network_rules_missing,
    podman_port_unpublished,
)
from netdiag.checks.ports import port_contention
from netdiag.errors import UsageError
from netdiag.findings.driver_rules import DRIVER_RULES
from netdiag.findings.rule import Rule, RuleModule

RULES: tuple[RuleModule, ...] = (
    overlapping_subnets,
    duplicate_address,
    mtu_mismatch,
    port_contention,
    vxlan_fdb_stale,
    ip_forward_disabled,
    forward_policy_drop,
    missing_default_route,
    dns_unreachable,
    ipvs_no_backends,
    bridge_isolation_broken,
    link_down,
    macvlan_host_isolation,
    docker_port_unpublished,
    docker_bridge_broken,
    docker_endpoint_broken,
    docker_network_rules_missing,
    docker_overlay_peers,
    docker_prerequisite_missing,
    podman_port_unpublished,
    podman_network_rules_missing,
    podman_forward_dropped,
    podman_dns_unanswered,
    expected_flow_blocked,
    exposure_firewall_bypass,
    exposure_unpublished_port,
    fleet_node_stale,
    fleet_overlay_mismatch,
)


def names() -> tuple[str, ...]:
    return tuple(module.RULE.name for module in RULES)


def find(name: str) -> RuleModule:
    """The rule called `name` or with that code, in any case (`ND921`, `nd921`,
    `MTU-Mismatch`); one clear line listing the known ones if none."""
    wanted = name.strip().lower()
    for module in RULES:
        if wanted in (module.RULE.name.lower(), module.RULE.code.lower()):
            return module
    raise UsageError(f"unknown rule {name!r}; known rules: {', '.join(names())}")


def catalogue() -> tuple[tuple[Rule, str], ...]:
    """Every rule whose code a finding can carry, with its documentation: the rule engine's
    (the module docstring) and the drivers' checks' (the record's own)."""
    return tuple((module.RULE, module.__doc__ or "") for module in RULES) + \
        tuple((rule, rule.doc) for rule in DRIVER_RULES)


def describe(name: str) -> tuple[Rule, str]:
    """The catalogue's entry called `name` or with that code, in any case; one clear line
    listing the known ones if none."""
    wanted = name.strip().lower()
    entries = catalogue()
    for rule, doc in entries:
        if wanted in (rule.name.lower(), rule.code.lower()):
            return rule, doc
    raise UsageError(f"unknown rule {name!r}; known rules: "
                     f"{', '.join(rule.name for rule, _ in entries)}")
