"""The native nftables evaluator, rule by rule, on real `nft -j` output (no root needed).

tests/unit/data/nft_expressions.nft holds one rule per expression the path model reads; it
was loaded with `nft -f` into a namespace and listed with `nft -j list ruleset` (nft 1.0.6)
into nft_expressions.json, which the collector's parser reads here as it reads a live one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netdiag.collect.nftables import parse_ruleset
from netdiag.flows import nftables
from netdiag.flows.netfilter import PacketPlace
from netdiag.flows.packet import Packet
from netdiag.model import Firewall, NamespaceRef, NamespaceState, NftChain, NsKind

DATA = Path(__file__).parent / "data" / "nft_expressions.json"
NS = 7
_, CHAINS, RULES, SETS = parse_ruleset(DATA.read_text(), "")
STATE = NamespaceState(NamespaceRef(NS, NsKind.NAMED, "/run/netns/x"),
                       firewall=Firewall(nft_chains=CHAINS, nft_rules=RULES, nft_sets=SETS))
PLACE = PacketPlace(in_if="veth1", out_if="", local=frozenset({"10.0.0.1"}),
                    in_address="10.0.0.1",
                    fib_dev=lambda dst, src, iif, mark: "eth0" if dst.startswith("10.") else "")
TCP = Packet("10.0.0.5", "10.0.0.1", "tcp", 40000, 80)
REPLY = replace(TCP.swapped(), src="10.0.0.1", dst="10.0.0.5")


def rule(chain: str, index: int):
    return [r for r in RULES if r.chain == chain][index]


def verdict(chain: str, index: int, packet: Packet = TCP, place: PacketPlace = PLACE,
            hook: str = "INPUT", priority: int = 0):
    context = nftables._Context(
        {s.name: s for s in SETS}, NS, hook, priority, place)
    outcome, after, note = nftables._rule(rule(chain, index), packet, context)
    return (outcome[0] if outcome else None), after, note


def kind(chain: str, index: int, packet: Packet = TCP, **how) -> str | None:
    return verdict(chain, index, packet, **how)[0]


def test_ct_state_is_a_mask_and_nothing_is_tracked_before_conntrack():
    assert kind("input", 1) is None and kind("input", 1, REPLY) == "accept"
    assert kind("input", 2) is None
    assert kind("input", 2, hook="PREROUTING", priority=-300) == "drop"  # raw: invalid


def test_ct_status_mark_direction_and_zone():
    assert kind("input", 3) is None
    assert kind("input", 3, replace(TCP, ct_nat=((NS, "dnat"),))) == "accept"
    assert kind("input", 3, replace(TCP, ct_nat=((NS + 1, "dnat"),))) is None  # elsewhere
    assert kind("input", 4, replace(TCP, ct_marks=((NS, 0x1001),))) == "accept"
    assert kind("input", 4) is None
    assert kind("input", 5) is None and kind("input", 5, REPLY) == "accept"
    assert kind("input", 6) is None  # zone 0


def test_ipv6_expressions_never_stop_an_ipv4_packet():
    ping = Packet("10.0.0.5", "10.0.0.1", "icmp")
    for index in (7, 8, 9):
        assert kind("input", index, ping) is None


def test_payload_meta_sets_and_concatenations():
    assert kind("input", 10, Packet("10.0.0.5", "10.0.0.1", "icmp")) == "accept"
    assert kind("input", 11, replace(TCP, dport=53)) == "accept"
    assert kind("input", 11, replace(TCP, proto="udp", dport=53)) == "accept"
    assert kind("input", 13) is None  # an arriving packet has no socket
    assert kind("input", 16, replace(TCP, src="10.0.0.1", dport=80)) == "accept"
    assert kind("input", 16, replace(TCP, src="10.0.0.1", dport=53)) is None
    assert kind("input", 17, replace(TCP, src="10.1.2.3")) == "drop"  # prefix in a set
    assert kind("input", 17, replace(TCP, src="10.2.0.5")) == "drop"  # range in a set
    assert kind("input", 17) is None
    assert kind("input", 18, replace(TCP, dst="10.9.1.1", dport=8050)) == "accept"
    assert kind("input", 18, replace(TCP, dst="10.9.1.1", dport=9000)) is None
    assert kind("input", 24) == "accept" and kind("input", 24, REPLY) is None  # tcp flags


def test_marks_are_set():
    assert verdict("input", 14)[1].mark == 0x2000
    assert verdict("input", 15, replace(TCP, ct_marks=((NS, 1),)))[1].ct_marks == \
        ((NS, 0x1001),)


def test_verdict_maps_named_and_anonymous():
    assert verdict("input", 19, place=replace(PLACE, in_if="br0"))[0] == "jump"
    assert kind("input", 19, place=replace(PLACE, in_if="eth1")) == "drop"
    assert kind("input", 19) is None  # no element: on to the next rule
    assert kind("input", 20, replace(TCP, dport=23)) == "drop"
    assert kind("input", 20, Packet("10.0.0.5", "10.0.0.1", "icmp")) is None


def test_fib_address_types_and_reverse_path():
    assert kind("input", 21) == "accept"
    assert kind("input", 21, replace(TCP, dst="10.0.0.9")) is None
    assert kind("input", 22, replace(TCP, dst="224.0.0.5")) == "drop"
    assert kind("input", 23) == "drop"  # the way back to 10.0.0.5 is eth0, not veth1
    assert kind("input", 23, place=replace(PLACE, in_if="eth0")) is None
    assert kind("input", 23, replace(TCP, src="192.0.2.7"),
                place=replace(PLACE, in_if="eth0")) == "drop"  # no route back: missing


def test_other_statements():
    assert kind("input", 26) == "reject" and kind("input", 27) == "reject"
    assert verdict("input", 28)[1].untracked == {NS}
    assert kind("input", 29) == "accept" and kind("input", 30) == "drop"
    assert kind("input", 31) == "jump" and kind("input", 32) == "goto"
    with pytest.raises(nftables.Unmodelled, match="numgen"):
        verdict("input", 33)


def test_th_reads_the_raw_transport_header_of_any_protocol():
    ping = Packet("10.0.0.5", "10.0.0.1", "icmp")
    assert kind("more", 0) == "accept"  # kube-proxy's `l4proto . th dport` vmaps
    assert kind("more", 0, ping) is None  # no element is icmp: the checksum decides nothing
    assert kind("more", 0, replace(TCP, proto="udp")) is None
    with pytest.raises(nftables.Unmodelled, match="th dport of an icmp packet"):
        verdict("more", 1, ping)  # where only the checksum decides
    assert kind("more", 2, ping) == "accept"  # th sport: type 8, code 0


def test_verdict_maps_keyed_by_numgen():
    assert verdict("more", 3) == ("jump", TCP, "")  # one element: certain
    outcome, _, note = verdict("more", 4)  # several: the chain's walk follows each
    assert outcome == "choice" and note == " by numgen"


def test_ct_state_in_a_set_or_a_map_is_one_of_its_elements():
    assert kind("more", 5) is None and kind("more", 5, REPLY) == "accept"  # Arch's default
    assert kind("more", 6) is None and kind("more", 6, REPLY) == "accept"  # the nft wiki's
    assert kind("more", 6, hook="PREROUTING", priority=-300) == "drop"  # invalid


def test_nat_with_maps_ranges_and_numgen():
    out = replace(PLACE, in_if="", out_if="eth0", out_address="192.0.2.200")
    assert verdict("pre", 0, replace(TCP, dport=8080))[1].dst == "10.0.0.2"
    assert verdict("pre", 0, replace(TCP, dport=8080))[1].dport == 80
    assert kind("pre", 0) is None  # no element for port 80: the rule does not match
    assert verdict("pre", 1, replace(TCP, dst="192.0.2.77"))[1].dst == "10.0.0.9"
    assert verdict("pre", 2, replace(TCP, dst="192.0.2.1"))[1].dst == "10.0.0.3"
    with pytest.raises(nftables.Unmodelled, match="keyed by numgen whose 2 elements differ"):
        verdict("pre", 3)  # the kernel picks 10.0.0.4 or 10.0.0.5 per connection
    after, note = verdict("pre", 4, replace(TCP, dport=81))[1:]
    assert (after.dst, after.dport) == ("10.0.0.6", 8000) and "first port" in note
    assert verdict("pre", 5, replace(TCP, dport=82))[1].dport == 8080
    assert verdict("post", 0, replace(TCP, src="10.0.0.1"), place=out)[1].src == "192.0.2.9"
    assert verdict("post", 1, place=out)[1].sport == 1024
    # A port already in the range is kept (nf_nat_core.c), unless the rule asks for random.
    assert verdict("post", 1, replace(TCP, sport=1500), place=out)[1].sport == 1024  # random
    post = {"masquerade": {"port": {"range": [1024, 2048]}}}
    context = nftables._Context({}, NS, "POSTROUTING", 100, out)
    kept, note = nftables._nat("masquerade", post["masquerade"], replace(TCP, sport=1500),
                               context)
    assert kept.sport == 1500 and "kept" in note
    moved, note = nftables._nat("masquerade", post["masquerade"], TCP, context)
    assert moved.sport == 1024 and "first port" in note
    dnat = {"addr": "10.0.0.6", "port": {"range": [8000, 8010]}}
    assert nftables._nat("dnat", dnat, replace(TCP, dport=8005), context)[0].dport == 8005
    assert verdict("post", 2, place=out)[1].src == "192.0.2.1"
    assert kind("post", 3, replace(TCP, src="10.0.0.1"), place=out) == "nat"


def test_tables_iptables_nft_wrote_are_left_to_the_iptables_walk():
    from netdiag.model import NftTable

    chain = NftChain("ip", "nat", "prerouting", type="nat", hook="prerouting",
                     priority=-100)
    native = replace(STATE, firewall=replace(STATE.firewall, nft_chains=(chain,),
                                             nft_tables=(NftTable("ip", "nat", 1, "nft"),)))
    assert nftables.base_chains(native, "PREROUTING") == [chain]
    written = replace(native, firewall=replace(native.firewall, nft_tables=(
        NftTable("ip", "nat", 1, "iptables-nft"),)))
    assert nftables.base_chains(written, "PREROUTING") == []
    old = replace(native, firewall=replace(native.firewall, nft_tables=(
        NftTable("ip", "nat", 1),)))  # a file older than schema 6: by the name
    assert nftables.base_chains(old, "PREROUTING") == []
