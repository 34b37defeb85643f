"""nftables' `bridge` and `netdev` chains, verdict maps keyed by numgen, and the matches on
what a flow does not name (the socket's owner, the remaining TTL), on real `nft -j` output
(tests/unit/data/nft_layer2.nft, loaded and listed with nft 1.0.6; no root needed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netdiag.collect.nftables import chain_devices, parse_ruleset
from netdiag.flows import nftables
from netdiag.flows.netfilter import PacketPlace
from netdiag.flows.packet import Packet
from netdiag.model import Firewall, NamespaceRef, NamespaceState, NsKind

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
