"""forward-policy-drop on native nftables forward chains, over IPv6: a chain with policy drop
of an `inet` or `ip6` table is run on IPv6 probes too for a bridge that routes IPv6 (it has a
global IPv6 address). The rules' expressions are as `nft -j list ruleset` printed them for the
same rules in a namespace (nftables 1.0.6); none names the bridge, so the flow model's probes
decide, not the rule's text."""

from __future__ import annotations

import json
from dataclasses import replace

from netdiag.model import NftChain, NftRule, NftTable
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.rules import run_rule


def _prefix(protocol: str, field: str, addr: str, length: int) -> str:
    return json.dumps([{"match": {"op": "==", "left": {"payload": {
        "protocol": protocol, "field": field}}, "right": {"prefix": {"addr": addr,
                                                                      "len": length}}}},
                       {"accept": None}])


IPV4_ONLY = ((_prefix("ip", "saddr", "10.60.1.0", 24), "ip saddr 10.60.1.0/24 accept"),
             (_prefix("ip", "daddr", "10.60.1.0", 24), "ip daddr 10.60.1.0/24 accept"))
IPV6_TOO = ((_prefix("ip6", "saddr", "fd00:61::", 64), "ip6 saddr fd00:61::/64 accept"),
            (_prefix("ip6", "daddr", "fd00:61::", 64), "ip6 daddr fd00:61::/64 accept"))


def _host(rules, family: str = "inet", ipv6: bool = True):
    """A host with br0 (10.60.1.1/24, and fd00:61::1/64 with `ipv6`) and a VM's port on it,
    and a native forward chain with policy drop in a table of `family`."""
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br0").link(host, "vnet0", master="br0")
    b.address(host, "br0", "10.60.1.1/24")
    if ipv6:
        b.address(host, "br0", "fd00:61::1/64")
    snapshot = b.build()
    state = snapshot.namespace(host)
    firewall = replace(state.firewall, nft_tables=(NftTable(family, "fw"),),
                       nft_chains=(NftChain(family, "fw", "forward", type="filter",
                                            hook="forward", policy="drop"),),
                       nft_rules=tuple(NftRule(family, "fw", "forward", i + 1, text, expr)
                                       for i, (expr, text) in enumerate(rules)))
    return replace(snapshot, namespaces=(replace(state, firewall=firewall),))


def test_an_inet_chain_that_lets_only_ipv4_through_is_named_for_ipv6():
    (finding,) = run_rule("forward-policy-drop", _host(IPV4_ONLY))
    assert finding.subject == "br0 (IPv6)"
    assert finding.message == ("nftables chain inet fw/forward (hook forward, policy drop) has "
                               "no rule for br0's IPv6 traffic: it is dropped")
    assert run_rule("forward-policy-drop", _host(IPV4_ONLY + IPV6_TOO)) == []


def test_a_bridge_without_a_global_ipv6_address_is_judged_for_ipv4_only():
    assert run_rule("forward-policy-drop", _host(IPV4_ONLY, ipv6=False)) == []


def test_an_ip6_chain_judges_ipv6_alone():
    (finding,) = run_rule("forward-policy-drop", _host((), family="ip6"))
    assert finding.subject == "br0 (IPv6)"
    assert run_rule("forward-policy-drop", _host(IPV6_TOO, family="ip6")) == []
