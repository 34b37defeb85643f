"""IPv6 neighbour discovery through the IP layer's hooks of both ends (issue 28).

The kernel sends its neighbour solicitation through OUTPUT and POSTROUTING
(ndisc_send_skb), the holder takes it in through PREROUTING and INPUT, and its
advertisement comes back the same way; conntrack leaves both untracked
(nf_conntrack_proto_icmpv6.c). An input chain with policy drop that accepts only
`ct state established,related` and some ports therefore cuts IPv6 to the host off; ARP
does not pass these hooks, so IPv4 goes on. On the dual-stack fixture host
(tests/fixtures/dual_stack.py); the kernel's side is in tests/integration/
test_nftables_corpus.py (tests/corpus/nftables/hardened-guide.nft).
"""

from __future__ import annotations

import json
from dataclasses import replace

from netdiag.collect.iptables_save import parse
from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine
from netdiag.model import Neighbour, NftChain, NftRule, NftTable
from tests.fixtures.dual_stack import dual_stack_host

ESTABLISHED = ("ct state established,related accept",
               [{"match": {"op": "in", "left": {"ct": {"key": "state"}},
                           "right": ["established", "related"]}}, {"accept": None}])
SSH = ("tcp dport 22 accept",
       [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                   "right": 22}}, {"accept": None}])
UNTRACKED = ("ct state untracked accept",
             [{"match": {"op": "in", "left": {"ct": {"key": "state"}},
                         "right": "untracked"}}, {"accept": None}])


def _hardened(d, *extra):
    """The host with an inet input chain of policy drop: established, ssh, and `extra`."""
    chain = NftChain("inet", "fw", "input", 1, "filter", "input", 0, "drop")
    rules = tuple(NftRule("inet", "fw", "input", handle, text, json.dumps(expr))
                  for handle, (text, expr) in enumerate((ESTABLISHED, SSH) + extra, start=2))
    snapshot = d.build()
    return replace(snapshot, namespaces=tuple(
        replace(state, firewall=replace(state.firewall, nft_tables=(
            NftTable("inet", "fw", 1, "nft"),), nft_chains=(chain,), nft_rules=rules))
        if state.ref.id == d.host else state for state in snapshot.namespaces))


def _path(snapshot, source: int, dst: str, proto: str = "tcp", port: int = 0):
    return Engine(snapshot).path(source, Packet("", dst, proto, 43210 if port else 0, port))


def test_an_input_chain_that_drops_neighbour_discovery_cuts_ipv6_off():
    d = dual_stack_host()
    snapshot = _hardened(d)
    towards = _path(snapshot, d.web, "fd00:18::1", port=22)
    assert towards.disposition == "neighbour-unreachable", towards.forward.drop
    assert towards.forward.drop.reason.startswith(
        "the neighbour solicitation for fd00:18::1 is dropped by nft inet fw input")
    assert towards.forward.drop.where == "nft inet fw input policy"
    assert towards.forward.drop.cause == "neighbour"
    # the host's own solicitation goes out; the container's advertisement is not let in
    back = _path(snapshot, d.host, "fd00:18::2", port=80)
    assert back.disposition == "neighbour-unreachable"
    assert "advertisement for fd00:18::2 is dropped" in back.forward.drop.reason
    # ARP does not pass the IP hooks: IPv4 to the same port is let in
    assert _path(snapshot, d.web, "172.18.0.1", port=22).delivered


def test_a_cached_neighbour_entry_carries_the_packet_and_the_trace_says_why():
    d = dual_stack_host()
    snapshot = _hardened(d)
    snapshot = replace(snapshot, namespaces=tuple(
        replace(state, neighbours=(Neighbour("eth0", 6, "fd00:18::1", "02:00:00:00:00:01",
                                             ("stale",)),))
        if state.ref.id == d.web else state for state in snapshot.namespaces))
    result = _path(snapshot, d.web, "fd00:18::1", port=22)
    assert result.forward.disposition == "delivered"
    # the host has no entry for the container: its reply waits for an advertisement
    assert result.reply.disposition == "neighbour-unreachable"
    assert "advertisement for fd00:18::2 is dropped" in result.reply.drop.reason
    assert any("entry is cached (stale)" in step.detail and "is dropped by" in step.detail
               for hop in result.forward.hops for step in hop.steps)


def test_untracked_neighbour_discovery_let_in_restores_ipv6():
    d = dual_stack_host()
    snapshot = _hardened(d, UNTRACKED)
    assert _path(snapshot, d.web, "fd00:18::1", port=22).delivered
    assert _path(snapshot, d.host, "fd00:18::2", port=80).delivered
    assert _path(snapshot, d.web, "fd00:18::1", port=23).disposition == "denied"


HARDENED6 = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
"""
ND6 = """-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT
"""


def _ip6tables(d, text: str):
    chains, rules = parse(text, "nft", 6)
    snapshot = d.build()
    return replace(snapshot, namespaces=tuple(
        replace(state, firewall=replace(
            state.firewall, iptables_chains=tuple(
                c for c in state.firewall.iptables_chains
                if (c.table, c.family) != ("filter", 6)) + chains,
            iptables_rules=tuple(r for r in state.firewall.iptables_rules
                                 if (r.table, r.family) != ("filter", 6)) + rules))
        if state.ref.id == d.host else state for state in snapshot.namespaces))


def test_ip6tables_judge_neighbour_discovery_too():
    d = dual_stack_host()
    dropped = _path(_ip6tables(d, HARDENED6), d.web, "fd00:18::1", port=22)
    assert dropped.disposition == "neighbour-unreachable"
    assert dropped.forward.drop.rule == "filter/INPUT policy DROP"
    let_in = HARDENED6.replace("COMMIT", ND6 + "COMMIT")
    assert _path(_ip6tables(d, let_in), d.web, "fd00:18::1", port=22).delivered
