"""The native nftables evaluator on IPv6 packets, rule by rule, on real `nft -j` output.

tests/unit/data/nft_ipv6.nft holds one rule per IPv6 expression the path model reads (and
IPv4 ones beside them, which must never match an IPv6 packet); it was loaded with `nft -f`
into a namespace and listed with `nft -j list ruleset` (nft 1.0.6) into nft_ipv6.json.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netdiag.collect.nftables import parse_ruleset
from netdiag.flows import nftables
from netdiag.flows.netfilter import PacketPlace
from netdiag.flows.packet import Packet

DATA = Path(__file__).parent / "data" / "nft_ipv6.json"
NS = 7
_, CHAINS, RULES, SETS = parse_ruleset(DATA.read_text(), "")
PLACE = PacketPlace(in_if="eth0", out_if="", local=frozenset({"fd00::1", "10.0.0.1"}),
                    in_address="fd00::1",
                    fib_dev=lambda dst, src, iif, mark: "eth0" if dst.startswith("fd00:")
                    else "")
TCP = Packet("fd00::5", "fd00::1", "tcp", 40000, 80)
PING = Packet("fd00::5", "fd00::1", "icmp")
TCP4 = Packet("10.0.0.5", "10.0.0.1", "tcp", 40000, 80)
PING4 = Packet("10.0.0.5", "10.0.0.1", "icmp")


def verdict(chain: str, index: int, packet: Packet = TCP, place: PacketPlace = PLACE,
            hook: str = "INPUT"):
    context = nftables._Context({s.name: s for s in SETS}, NS, hook, 0, place)
    rule = [r for r in RULES if r.chain == chain][index]
    outcome, after, note = nftables._rule(rule, packet, context)
    return (outcome[0] if outcome else None), after, note


def kind(index: int, packet: Packet = TCP, chain: str = "input", **how) -> str | None:
    return verdict(chain, index, packet, **how)[0]


def test_ip6_addresses_constants_prefixes_and_intervals():
    assert kind(0) == "accept"
    assert kind(0, replace(TCP, src="fd00::6")) is None
    assert kind(1, replace(TCP, src="fd00:1::77")) == "drop"  # a prefix of the named set
    assert kind(1, replace(TCP, src="fd00:2::7")) == "drop"  # its interval
    assert kind(1, replace(TCP, src="fd00:2::a")) is None
    assert kind(18, replace(TCP, dst="::ffff:10.0.0.1")) == "reject"
    assert kind(18) is None


def test_icmpv6_nexthdr_and_l4proto_are_icmpv6s_not_icmps():
    assert kind(2, PING) == "accept" and kind(2) is None  # ip6 nexthdr ipv6-icmp
    assert kind(3, PING) == "accept"  # icmpv6 type echo-request is 128, not ICMP's 8
    assert kind(3, PING.swapped()) is None
    assert kind(4, PING) is None  # neither neighbour solicitation nor packet too big
    assert kind(6, PING) == "accept" and kind(6) is None  # meta l4proto ipv6-icmp
    assert kind(6, PING4) is None  # an IPv4 ping is ICMP (1)


def test_meta_nfproto_protocol_and_concatenations():
    assert kind(5, replace(TCP, dport=22)) == "accept"
    assert kind(5, replace(TCP4, dport=22)) is None
    assert kind(7, replace(TCP, proto="udp", dport=53)) == "accept"
    assert kind(7, replace(TCP4, proto="udp", dport=53)) is None
    assert kind(8) == "accept"  # fd00::1 . tcp . 80
    assert kind(8, replace(TCP, dport=81)) is None
    assert kind(23, replace(TCP, dport=27)) == "accept"  # pkttype host


def test_expressions_of_the_other_family_never_match_nor_stop():
    for index in (9, 10, 11, 17):  # ip saddr, icmp type, nfproto ipv4, ct original ip saddr
        assert kind(index) is None and kind(index, PING) is None
    assert kind(9, TCP4) == "accept" and kind(10, PING4) == "accept"
    for index in (0, 2, 3, 5, 15, 16, 18):  # the IPv6 ones never match an IPv4 packet
        assert kind(index, TCP4) is None and kind(index, PING4) is None


def test_fib_of_ipv6_addresses():
    assert kind(12) == "accept"  # fd00::1 is the namespace's
    assert kind(12, replace(TCP, dst="fd00::9")) is None
    assert kind(13, replace(PING, dst="ff02::1")) == "drop"
    assert kind(13, PING) is None
    assert kind(14, replace(TCP, src="fd99::5")) == "drop"  # no route back: rp filter
    assert kind(14) is None


def test_ct_original_and_reply_addresses():
    assert kind(15) == "accept" and kind(16) == "accept"  # the reply's source: fd00::1
    assert kind(15, replace(TCP, src="fd00::6")) is None
    assert kind(16, replace(TCP, dst="fd00::9")) is None
    reply = TCP.swapped()
    assert kind(15, reply) == "accept" and kind(16, reply) == "accept"
    assert kind(15, replace(reply, dst="fd00::6")) is None
    # a connection translated here: its tuples are not the packet's addresses
    with pytest.raises(nftables.Unmodelled, match="ct original saddr of a translated"):
        kind(15, replace(TCP, ct_nat=((NS, "dnat"),)))
    assert kind(15, replace(TCP, ct_nat=((NS + 1, "dnat"),))) == "accept"  # elsewhere


def test_reject_kinds_carry_their_family():
    assert kind(19, replace(TCP, dport=23)) is None  # with icmp: IPv4 only
    assert kind(19, replace(TCP4, dport=23)) == "reject"
    assert kind(20, replace(TCP, dport=24)) == "reject"  # with icmpv6
    assert kind(20, replace(TCP4, dport=24)) is None
    assert kind(21, replace(TCP, dport=26)) == "reject"  # icmpx: both
    assert kind(21, replace(TCP4, dport=26)) == "reject"


def test_unmodelled_ipv6_fields_are_named():
    with pytest.raises(nftables.Unmodelled, match="the ip6 hoplimit match"):
        kind(22)
    assert kind(22, TCP4) is None  # an IPv4 packet has no IPv6 header to read


def test_nat_of_each_family():
    place = replace(PLACE, out_if="eth0", out_address="fd00::1")
    outcome, after, _ = verdict("pre", 0, replace(TCP, dport=8080), hook="PREROUTING")
    assert outcome == "nat" and (after.dst, after.dport) == ("fd00::2", 80)
    assert kind(0, replace(TCP4, dport=8080), "pre", hook="PREROUTING") is None
    assert kind(1, replace(TCP, dport=8081), "pre", hook="PREROUTING") is None
    assert kind(1, replace(TCP4, dport=8081), "pre", hook="PREROUTING") == "nat"
    outcome, after, _ = verdict("pre", 2, replace(TCP, dport=8082), hook="PREROUTING")
    assert (after.dst, after.dport) == ("fd00::2", 80)  # through a map of address . port
    outcome, after, _ = verdict("pre", 3, replace(TCP, dport=8083), hook="PREROUTING")
    assert (after.dst, after.dport) == ("fd00::1", 22)  # redirect: the in-interface's
    outcome, after, _ = verdict("post", 0, replace(TCP, src="fd00:1::5", dst="fd99::1"),
                                place, hook="POSTROUTING")
    assert outcome == "nat" and after.src == "fd00::1"
    outcome, after, _ = verdict("post", 1, replace(TCP, src="fd00:3::5", dst="fd99::1"),
                                place, hook="POSTROUTING")
    assert after.src == "fd00::99"
