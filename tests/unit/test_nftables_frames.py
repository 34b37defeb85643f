"""nftables' `bridge` and `netdev` chains, verdict maps keyed by numgen, and the matches on
what a flow does not name (the socket's owner, the remaining TTL), on real `nft -j` output
(tests/unit/data/nft_layer2.nft, loaded and listed with nft 1.0.6; no root needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from netdiag.collect.nftables import chain_devices, parse_ruleset
from netdiag.flows import nftables
from netdiag.flows.netfilter import PacketPlace
from netdiag.flows.packet import Packet
from netdiag.model import Firewall, Link, NamespaceRef, NamespaceState, NftChain, NftRule, NsKind

DATA = Path(__file__).parent / "data"
_, CHAINS, RULES, SETS = parse_ruleset((DATA / "nft_layer2.json").read_text(),
                                       (DATA / "nft_layer2.txt").read_text())
STATE = NamespaceState(NamespaceRef(3, NsKind.NAMED, "/run/netns/x"),
                       firewall=Firewall(nft_chains=CHAINS, nft_rules=RULES, nft_sets=SETS))
TABLES = nftables.index_tables(STATE)
TCP = Packet("10.77.0.2", "10.77.0.3", "tcp", 40000, 80)
TCP6 = Packet("fd00:77::2", "fd00:77::3", "tcp", 40000, 80)


def bridged(packet: Packet, into: str = "va", out: str = "vb") -> nftables.Result:
    return nftables.run_layer2(STATE, TABLES, "bridge", "forward", packet,
                               PacketPlace(in_if=into, out_if=out), into)


def ingress(device: str, packet: Packet) -> nftables.Result:
    return nftables.run_layer2(STATE, TABLES, "netdev", "ingress", packet,
                               PacketPlace(in_if=device), device)


def output(dport: int, packet: Packet = TCP) -> nftables.Result:
    chain = next(c for c in CHAINS if c.family == "inet" and c.name == "output")
    return nftables.run_chain(STATE, TABLES, chain, "OUTPUT", replace(packet, dport=dport),
                              PacketPlace(out_if="eth0"))


def test_the_collector_keeps_the_devices_a_chain_is_bound_to():
    bound = {(c.family, c.name): (c.hook, c.devices) for c in CHAINS}
    assert bound[("netdev", "vb_in")] == ("ingress", ("vb",))
    assert bound[("netdev", "both_in")] == ("ingress", ("eth0", "va"))
    assert bound[("bridge", "forward")] == ("forward", ())  # a bridge hook has no device
    assert chain_devices((DATA / "nft_layer2.txt").read_text())[
        ("netdev", "filter", "both_in")] == ("eth0", "va")
    assert [c.name for c in nftables.layer2_chains(STATE, "netdev", "ingress", "va")] == \
        ["both_in"]
    assert nftables.layer2_chains(STATE, "netdev", "ingress", "br0") == []


def test_a_device_chain_without_its_devices_is_unknown_not_taken_for_every_device():
    older = [replace(c, devices=()) if c.name == "vb_in" else c for c in CHAINS]
    state = replace(STATE, firewall=replace(STATE.firewall, nft_chains=tuple(older)))
    result = nftables.run_layer2(state, TABLES, "netdev", "ingress", TCP,
                                 PacketPlace(in_if="br0"), "br0")
    assert result.verdict == "unknown" and "devices nft netdev filter vb_in" in result.reason


def test_a_bridge_forward_chain_judges_frames_between_ports_and_their_arp_first():
    assert bridged(TCP).verdict == "drop"  # tcp 80 from va
    assert bridged(TCP, "vb", "va").verdict == "accept"  # ARP accepted, then meta l4proto
    dropped = bridged(Packet("10.77.0.2", "10.77.0.3", "udp", 40000, 53), "vb", "va")
    assert dropped.verdict == "drop" and "policy drop" in dropped.reason
    # IPv6: the neighbour solicitation (ICMPv6) passes, so does TCP; UDP meets the policy
    assert bridged(replace(TCP6, dport=22)).verdict == "accept"
    assert bridged(replace(TCP6, proto="udp", dport=53)).verdict == "drop"


def test_a_frame_match_the_model_cannot_evaluate_is_unknown_never_an_accept():
    result = bridged(replace(TCP, dport=22), "vc", "vb")  # ether saddr decides from vc
    assert result.verdict == "unknown" and "ether saddr" in result.reason
    assert "MAC" in result.reason
    # where its matching or not leads to the same (accept either way), the fate is certain
    up = nftables.run_layer2(STATE, TABLES, "bridge", "input", TCP, PacketPlace(in_if="vc"))
    assert up.verdict == "accept"
    assert any("ether saddr match (the model knows no MAC addresses) is not known; the rule "
               "matching or not leads to the same" in step.detail for step in up.steps)


def test_a_netdev_chain_judges_only_its_devices_and_arp_dropped_stops_every_ipv4_flow():
    assert ingress("vb", replace(TCP, dport=22)).verdict == "drop"
    assert ingress("vb", TCP).verdict == "accept"
    assert ingress("vb", replace(TCP, dport=22)).reason.startswith("drop by nft netdev")
    stopped = ingress("va", TCP)  # both_in drops ARP on va and eth0: no IPv4 flow gets by
    assert stopped.verdict == "drop" and stopped.reason.startswith("ARP dropped")
    assert ingress("va", TCP6).verdict == "accept"  # neighbour discovery is no ARP
    assert ingress("br0", TCP).verdict == "accept"  # no chain bound to it


def test_numgen_maps_are_certain_only_when_every_element_leads_to_one_fate():
    same = output(1, replace(TCP, dst="10.0.0.1"))
    assert same.verdict == "accept"
    assert any("each of the 2 elements keyed by numgen leads to the same" in step.detail
               for step in same.steps)
    differ = output(2, replace(TCP, dst="10.0.0.1"))  # same1 accepts, other drops
    assert differ.verdict == "unknown" and "different fates" in differ.reason
    assert output(2, replace(TCP, dst="10.0.0.9")).verdict == "unknown"  # return vs drop


def test_the_socket_owner_and_the_ttl_are_unknown_where_they_decide():
    assert output(80).verdict == "accept"  # `meta skuid 1000 counter` changes nothing
    owner = output(3)
    assert owner.verdict == "unknown" and "sending process's user" in owner.reason
    assert output(5).verdict == "accept"  # skuid 1000 accept, or the policy's accept
    ttl = output(4)
    assert ttl.verdict == "unknown" and "ip ttl" in ttl.reason and "TTL" in ttl.reason
    hoplimit = output(4, TCP6)  # the ip ttl rule never holds for IPv6; the hoplimit decides
    assert hoplimit.verdict == "unknown" and "ip6 hoplimit" in hoplimit.reason


def _bridge_ct(hook: str, priority: int) -> NamespaceState:
    """A bridge table whose chain drops a new connection's frames and accepts the rest. The
    kernel here refuses a ct expression in a bridge table (no nf_conntrack_bridge: nft says
    "Protocol error"), so it is written as `nft -j` gives the same rule in an inet table
    (tests/unit/data/nft_expressions.json)."""
    chain = NftChain("bridge", "ct", hook, 1, "filter", hook, priority, "accept")
    expr = [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
            {"drop": None}]
    rules = (NftRule("bridge", "ct", hook, 2, "ct state new drop", json.dumps(expr)),)
    return replace(STATE, firewall=Firewall(nft_chains=(chain,), nft_rules=rules))


def test_a_bridge_chain_sees_the_conntrack_entry_only_after_nf_conntrack_bridge_has_run():
    for hook, priority, first in (("prerouting", -300, "accept"),  # before -200: invalid
                                  ("prerouting", -200, "drop"), ("forward", -300, "drop")):
        state = _bridge_ct(hook, priority)
        tables = nftables.index_tables(state)
        place = PacketPlace(in_if="va", out_if="vb" if hook == "forward" else "")
        new = nftables.run_layer2(state, tables, "bridge", hook, TCP, place, "va")
        reply = replace(TCP.swapped(), ctstate="ESTABLISHED")
        assert (hook, priority, new.verdict) == (hook, priority, first)
        assert nftables.run_layer2(state, tables, "bridge", hook, reply, place,
                                   "va").verdict == "accept"


def test_a_device_ingress_chain_has_no_entry_from_another_namespace_and_unknown_from_its_own():
    chain = NftChain("inet", "ct", "in", 1, "filter", "ingress", 0, "accept", ("eth0",))
    expr = [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}},
            {"drop": None}]
    rules = (NftRule("inet", "ct", "in", 2, "ct state invalid drop", json.dumps(expr)),)
    for peer, verdict in ((9, "drop"), (3, "unknown")):  # 3: the namespace's own (STATE)
        eth0 = Link(2, "eth0", "veth", 1500, True, "up", peer_namespace=peer)
        state = replace(STATE, links=(eth0,),
                        firewall=Firewall(nft_chains=(chain,), nft_rules=rules))
        result = nftables.run_layer2(state, nftables.index_tables(state), "netdev", "ingress",
                                     TCP, PacketPlace(in_if="eth0"), "eth0")
        assert result.verdict == verdict, result.reason


# The hardening guide's ingress rules (tests/corpus/nftables-layer2/hardened-guide-ingress.nft)
# as `nft -j list ruleset` printed them (nft 1.0.6), each followed by a drop; the MSS range
# is 1-1460 here (the guide's is 1-535), so that a SYN's MSS reaches its edge.
_GUIDE = (
    {"op": "!=", "left": {"&": [{"payload": {"protocol": "ip", "field": "frag-off"}}, 8191]},
     "right": 0},
    {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}},
                                ["fin", "syn", "rst", "psh", "ack", "urg"]]},
     "right": ["fin", "syn", "rst", "psh", "ack", "urg"]},
    {"op": "!", "left": {"payload": {"protocol": "tcp", "field": "flags"}},
     "right": ["fin", "syn", "rst", "psh", "ack", "urg"]},
    {"op": "==", "left": {"tcp option": {"name": "maxseg", "field": "size"}},
     "right": {"range": [1, 1460]}},
)


def test_fragments_scans_and_the_mss_of_a_syn_are_judged_on_whole_linux_packets():
    chain = NftChain("netdev", "g", "in", 1, "filter", "ingress", -500, "accept", ("eth0",))
    rules = tuple(NftRule("netdev", "g", "in", 2 + index, "", json.dumps(
        [{"match": match}, {"drop": None}])) for index, match in enumerate(_GUIDE))
    for mtu, verdict in ((1500, "drop"), (1501, "accept")):  # MSS 1460 in 1-1460, or 1461
        eth0 = Link(2, "eth0", "veth", mtu, True, "up", flags=("NOARP",), peer_namespace=9)
        state = replace(STATE, links=(eth0,), firewall=Firewall(nft_chains=(chain,),
                                                                nft_rules=rules))
        tables, place = nftables.index_tables(state), PacketPlace(in_if="eth0")
        for packet in (TCP, TCP.swapped(), TCP6):  # a SYN, a SYN-ACK, an IPv6 SYN (MSS 1440)
            result = nftables.run_layer2(state, tables, "netdev", "ingress", packet, place, "eth0")
            assert result.verdict == (verdict if packet.family == 4 else "drop"), packet
        udp = replace(TCP, proto="udp", dport=53)  # no tcp header: no flags, no options
        assert nftables.run_layer2(state, tables, "netdev", "ingress", udp, place,
                                   "eth0").verdict == "accept"
