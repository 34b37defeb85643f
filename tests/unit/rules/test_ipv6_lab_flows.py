"""A dual-stack lab's expected flows over IPv6 (netdiag/flows/expected.py), on the snapshot of
the real `dual-stack` lab (tests/fixtures/lab_dual_stack/README.md): each program's neighbour
also reaches its node over IPv6 (ICMPv6: the lab's programs listen on IPv4 only); healthy, the
flows are kept and nothing is said; an ip6tables rule that stops one is named."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netdiag.checks import engine
from netdiag.collect.iptables_save import parse
from netdiag.flows import expected
from netdiag.model.serialize import load
from tests.fixtures.rules import run_rule

HEALTHY = Path(__file__).parents[2] / "fixtures" / "lab_dual_stack" / "healthy.json"
TO_DB = "web reaches db at fd00:28::2 over IPv6 (ICMPv6) on network petnet"
TO_WEB = "db reaches web at fd00:28::3 over IPv6 (ICMPv6) on network petnet"


@pytest.fixture(scope="module")
def healthy():
    return load(HEALTHY)


def _node(snapshot, node: str):
    return next(s for s in snapshot.namespaces if s.ref.node == node)


def _changed(snapshot, state, **fields):
    return replace(snapshot, namespaces=tuple(replace(s, **fields) if s is state else s
                                              for s in snapshot.namespaces))


def test_the_dual_stack_lab_promises_its_ipv6_flows_and_keeps_them(healthy):
    promised = {e.what: e for e in expected.lab_expectations(healthy)}
    assert {TO_DB, TO_WEB} <= set(promised)
    assert promised[TO_DB].packet.family == 6 and promised[TO_DB].packet.proto == "icmp"
    assert promised[TO_DB].source == _node(healthy, "web").ref.id
    assert list(expected.judge(healthy)) == []
    assert [f for f in engine.run(healthy).findings if f.severity.rank >= 1] == []


def test_an_ip6tables_drop_of_echo_requests_in_db_is_named(healthy):
    db = _node(healthy, "db")
    chains, rules = parse("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p ipv6-icmp -m icmp6 "
                          "--icmpv6-type 128 -j DROP\nCOMMIT\n", "nft", 6)
    firewall = db.firewall
    snapshot = _changed(healthy, db, firewall=replace(
        firewall, iptables_chains=firewall.iptables_chains + chains,
        iptables_rules=firewall.iptables_rules + rules))
    [finding] = run_rule("expected-flow-blocked", snapshot)
    assert finding.message == (f"{TO_DB}: it is denied in ndt-rec6/db at filter/INPUT/1: "
                               "DROP by filter/INPUT/1")
    assert any(e.text == "rule: -A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j DROP"
               for e in finding.evidence)


def test_a_node_without_an_ipv6_address_is_promised_nothing_over_ipv6(healthy):
    web = _node(healthy, "web")
    snapshot = _changed(healthy, web, addresses=tuple(
        a for a in web.addresses if not a.address.startswith("fd00:28:")))
    promised = {e.what for e in expected.lab_expectations(snapshot)}
    assert TO_DB in promised and TO_WEB not in promised
