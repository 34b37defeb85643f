"""The flow engine on IPv6 (issue 29), on a dual-stack fixture host (tests/fixtures/dual_stack.py):
routing and source address selection, ip6tables with NAT66, forwarding, link-local scope,
Packet Too Big, neighbour discovery, and the special addresses of both families. The same
behaviour is held against the kernel in tests/integration/test_flows_ipv6.py."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from netdiag.collect.iptables_save import parse
from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine, select_source
from netdiag.model import NftChain, NftRule, NftTable, PolicyRule
from tests.fixtures.dual_stack import dual_stack_host


def _path(d, source: int, dst: str, proto: str = "tcp", port: int = 0, snapshot=None,
          **fields):
    engine = Engine(snapshot or d.build())
    return engine.path(source, Packet(fields.pop("src", ""), dst, proto,
                                      43210 if port else 0, port, **fields))


def test_a_container_reaches_its_gateway_and_the_world_through_nat66():
    d = dual_stack_host()
    here = _path(d, d.web, "fd00:18::1", port=22)
    assert here.delivered and here.flow.packet.src == "fd00:18::2"
    out = _path(d, d.web, "2001:db8:99::9", port=443)
    assert out.forward.disposition == "unknown" and out.forward.exited is not None
    assert out.leaves_and_returns  # the reply is un-NATed back to the container
    (kind, before, after), = out.forward.translations
    assert (kind, before.src, after.src) == ("snat", "fd00:18::2", "2001:db8::10")


def test_a_published_port_dnats_to_the_container_by_its_ipv6_address():
    d = dual_stack_host()
    engine = Engine(d.build())
    result = engine.arriving(d.host, "eth0", Packet("2001:db8:5::5", "2001:db8::10", "tcp",
                                                    40000, 8080))
    assert result.delivered, (result.forward.drop, result.reply and result.reply.drop)
    assert result.forward.delivered_as.dst == "fd00:18::2"
    assert result.forward.delivered_as.dport == 80


def test_ipv6_forwarding_off_stops_ipv6_only():
    d = dual_stack_host()
    d.builder.sysctl(d.host, "net.ipv6.conf.all.forwarding", 0)
    six = _path(d, d.web, "2001:db8:99::9", port=443)
    assert six.disposition == "denied" and six.forward.drop.cause == "forwarding"
    assert "net.ipv6.conf.all.forwarding is 0" in six.forward.drop.reason
    assert _path(d, d.web, "198.51.100.9", port=443).leaves_and_returns
    # a per-interface forwarding=0 does not stop IPv6 forwarding (it sets host behaviour);
    # force_forwarding on the in-interface forwards with `all` off
    d.builder.sysctl(d.host, "net.ipv6.conf.all.forwarding", 1)
    d.builder.sysctl(d.host, "net.ipv6.conf.br-web.forwarding", 0)
    assert _path(d, d.web, "2001:db8:99::9", port=443).leaves_and_returns
    d.builder.sysctl(d.host, "net.ipv6.conf.all.forwarding", 0)
    d.builder.sysctl(d.host, "net.ipv6.conf.br-web.force_forwarding", 1)
    one_way = _path(d, d.web, "2001:db8:99::9", port=443)
    assert one_way.forward.exited is not None  # out, but the reply comes in by eth0
    assert one_way.reply.disposition == "denied" and one_way.reply.drop.cause == "forwarding"
    d.builder.sysctl(d.host, "net.ipv6.conf.eth0.force_forwarding", 1)
    assert _path(d, d.web, "2001:db8:99::9", port=443).leaves_and_returns


def test_ipv6_routers_never_fragment():
    d = dual_stack_host(uplink_mtu=1280)
    routed = _path(d, d.web, "2001:db8:99::9", "icmp", size=1400, df=False)
    assert routed.disposition == "too-big" and "Packet Too Big" in routed.forward.drop.reason
    assert routed.forward.drop.namespace.id == d.host
    sent = _path(d, d.host, "2001:db8:99::9", "icmp", size=1400, df=False)
    assert sent.forward.exited is not None  # its sender fragments it
    assert _path(d, d.host, "2001:db8:99::9", "icmp", size=1400).disposition == "too-big"


def test_link_local_destinations_need_their_interface():
    d = dual_stack_host()
    result = _path(d, d.host, "fe80::2%br-web", port=80)
    assert result.delivered, (result.forward.drop, result.reply and result.reply.drop)
    assert result.flow.packet.src == "fe80::1"  # a link-local source for a link-local dst
    assert result.reply.delivered_as.dst == "fe80::1"
    bare = _path(d, d.host, "fe80::2", port=80)
    assert bare.disposition == "unknown" and "needs its interface" in bare.forward.drop.reason
    wrong = _path(d, d.host, "fe80::2%eth0", port=80)
    assert not wrong.delivered  # fe80::2 is not on eth0's link
    # a link-local source is not forwarded off its link
    leaving = _path(d, d.web, "2001:db8:99::9", port=443, src="fe80::2")
    assert leaving.disposition == "denied" and "link-local" in leaving.forward.drop.reason


def test_an_address_nobody_holds_gets_no_neighbour_advertisement():
    d = dual_stack_host()
    result = _path(d, d.web, "fd00:18::99", port=80)
    assert result.disposition == "neighbour-unreachable"
    assert "neighbour solicitation goes unanswered" in result.forward.drop.reason


def test_an_ipv6_packet_reaches_ipv6_sockets_only():
    d = dual_stack_host()
    assert _path(d, d.host, "fd00:18::2", port=8081).disposition == "no-listener"
    assert _path(d, d.host, "172.18.0.2", port=8081).delivered
    assert _path(d, d.host, "172.18.0.2", port=80).delivered  # `::` takes IPv4 too


def test_ipv6_policy_rules_and_unreachable_routes():
    d = dual_stack_host()
    d.builder.route(d.host, "default", type="unreachable", table=100, family=6)
    rules = (PolicyRule(6, 0, table=255), PolicyRule(6, 100, src="fd00:18::/64",
                                                     dst="2001:db8:bad::/48", table=100),
             PolicyRule(6, 32766, table=254))
    snapshot = d.build({d.host: rules})
    blocked = _path(d, d.web, "2001:db8:bad::1", port=443, snapshot=snapshot)
    assert blocked.disposition == "null-routed"
    assert "table 100" in blocked.forward.drop.reason
    assert _path(d, d.web, "2001:db8:99::1", port=443, snapshot=snapshot).leaves_and_returns
    assert _path(d, d.web, "198.51.100.1", port=443, snapshot=snapshot).leaves_and_returns


@pytest.mark.parametrize("dst, port, disposition, says", [
    ("0.0.0.0", 8088, "delivered", ""),  # connect() to INADDR_ANY goes to 127.0.0.1
    ("::", 22, "delivered", ""),  # and to :: goes to ::1
    ("255.255.255.255", 0, "unknown", "limited broadcast"),
    ("224.0.0.1", 0, "unknown", "multicast group"),
    ("ff02::1", 0, "delivered", ""),  # the sender answers its own echo to all nodes
    ("127.0.0.1", 8088, "delivered", ""),
    ("::1", 22, "delivered", ""),
])
def test_special_destinations_say_what_the_kernel_does(dst, port, disposition, says):
    d = dual_stack_host()
    result = _path(d, d.host, dst, "tcp" if port else "icmp", port)
    assert result.disposition == disposition, result.forward.drop
    if says:
        assert says in result.forward.drop.reason


def test_a_multicast_group_without_a_route_is_unreachable_as_in_the_kernel():
    d = dual_stack_host()
    d.builder.remove_route(d.host, "default")
    assert _path(d, d.host, "224.0.0.1", "icmp").disposition == "no-route"  # ENETUNREACH


def test_source_address_selection():
    d = dual_stack_host()
    state = d.build().namespace(d.host)
    assert select_source(state, "2001:db8:5::1", "eth0") == "2001:db8::10"  # the out device
    assert select_source(state, "fd00:18::7", "br-web") == "fd00:18::1"
    assert select_source(state, "fe80::7", "br-web") == "fe80::1"  # scope: link
    assert select_source(state, "2001:db8:5::1", "lo") == "2001:db8::10"  # longest prefix


def _match(protocol: str, field: str, right) -> dict:
    return {"match": {"op": "==", "left": {"payload": {"protocol": protocol, "field": field}},
                      "right": right}}


def _with_nft(d, table_family: str, rules: list[tuple[str, list[dict]]]):
    """The snapshot with an nftables input chain (policy accept) on the host: (text, nft -j
    expressions) per rule."""
    chain = NftChain(table_family, "fw", "input", 1, "filter", "input", 0, "accept")
    nft_rules = tuple(NftRule(table_family, "fw", "input", handle, text, json.dumps(expr))
                      for handle, (text, expr) in enumerate(rules, start=2))
    snapshot = d.build()
    return replace(snapshot, namespaces=tuple(
        replace(state, firewall=replace(state.firewall, nft_tables=(
            NftTable(table_family, "fw", 1, "nft"),), nft_chains=(chain,), nft_rules=nft_rules))
        if state.ref.id == d.host else state for state in snapshot.namespaces))


def test_inet_and_ip6_tables_see_ipv6_packets_in_their_own_terms():
    d = dual_stack_host()
    v4_rule = ("ip saddr 0.0.0.0/0 tcp dport 22 drop",
               [_match("ip", "saddr", {"prefix": {"addr": "0.0.0.0", "len": 0}}),
                _match("tcp", "dport", 22), {"drop": None}])
    port_rule = ("tcp dport 22 drop", [_match("tcp", "dport", 22), {"drop": None}])
    v6_rule = ("ip6 saddr fd00:18::/64 tcp dport 22 drop",
               [_match("ip6", "saddr", {"prefix": {"addr": "fd00:18::", "len": 64}}),
                _match("tcp", "dport", 22), {"drop": None}])
    # an `ip` match never holds for an IPv6 packet (nor does an `ip` table see it)
    snapshot = _with_nft(d, "inet", [v4_rule])
    assert _path(d, d.web, "fd00:18::1", port=22, snapshot=snapshot).delivered
    assert _path(d, d.web, "172.18.0.1", port=22, snapshot=snapshot).disposition == "denied"
    # a family-neutral rule is walked for both families, in inet and in ip6 tables
    for family in ("inet", "ip6"):
        denied = _path(d, d.web, "fd00:18::1", port=22,
                       snapshot=_with_nft(d, family, [port_rule]))
        assert denied.disposition == "denied"
        assert denied.forward.drop.where == f"nft {family} fw input handle 2"
    assert _path(d, d.web, "172.18.0.1", port=22,
                 snapshot=_with_nft(d, "ip6", [port_rule])).delivered  # not IPv4's
    # an `ip6` match reads the IPv6 header, and never holds for an IPv4 packet
    snapshot = _with_nft(d, "inet", [v6_rule])
    denied = _path(d, d.web, "fd00:18::1", port=22, snapshot=snapshot)
    assert denied.disposition == "denied" and denied.forward.drop.rule == v6_rule[0]
    assert _path(d, d.web, "172.18.0.1", port=22, snapshot=snapshot).delivered
    # an IPv6 header field the walk does not read: unknown, naming the rule and the field
    hops = ("ip6 hoplimit 64 drop", [_match("ip6", "hoplimit", 64), {"drop": None}])
    unread = _path(d, d.web, "fd00:18::1", port=22, snapshot=_with_nft(d, "inet", [hops]))
    assert unread.disposition == "unknown" and "ip6 hoplimit" in unread.forward.drop.reason
    assert unread.forward.drop.rule == hops[0]


# As ip6tables-nft-save prints them (ICMPv6 by its number, the module icmp6).
ICMPV6_INPUT = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p icmp -j DROP
-A INPUT -s fd00:18::/64 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j DROP
COMMIT
"""


def test_ip6tables_read_icmpv6_by_its_own_protocol_and_types():
    d = dual_stack_host()
    chains, rules = parse(ICMPV6_INPUT, "nft", 6)
    snapshot = d.build()
    snapshot = replace(snapshot, namespaces=tuple(
        replace(state, firewall=replace(state.firewall,
                                        iptables_chains=state.firewall.iptables_chains + chains,
                                        iptables_rules=state.firewall.iptables_rules + rules))
        if state.ref.id == d.host else state for state in snapshot.namespaces))
    ping = _path(d, d.web, "fd00:18::1", "icmp", snapshot=snapshot)
    assert ping.disposition == "denied" and ping.forward.drop.where == "filter/INPUT/2"
    assert _path(d, d.web, "172.18.0.1", "icmp", snapshot=snapshot).delivered  # IPv4's own
    assert _path(d, d.host, "fd00:18::2", "icmp", snapshot=snapshot).delivered  # a reply


def test_an_ipv4_mapped_destination_is_an_ipv4_flow():
    d = dual_stack_host()
    result = _path(d, d.host, "::ffff:172.18.0.2", port=8081)
    assert result.delivered and result.flow.packet.dst == "172.18.0.2"


def test_bridged_ipv6_frames_meet_ip6tables_with_bridge_nf_call_ip6tables():
    d = dual_stack_host()
    web2 = d.builder.container("web2")
    d.builder.veth(web2, "eth0", d.host, "veth5e6f", address="fd00:18::3/64",
                   peer_master="br-web")
    d.builder.iptables(d.host, "mangle", "-A FORWARD -d fd00:18::2/128 -p tcp --dport 80 "
                       "-j DROP", family=6)
    assert _path(d, web2, "fd00:18::2", port=80).delivered  # bridged, no netfilter
    d.builder.sysctl(d.host, "net.bridge.bridge-nf-call-iptables", 1)
    assert _path(d, web2, "fd00:18::2", port=80).delivered  # IPv4's switch only
    d.builder.sysctl(d.host, "net.bridge.bridge-nf-call-ip6tables", 1)
    bridged = _path(d, web2, "fd00:18::2", port=80)
    assert bridged.disposition == "denied"
    assert bridged.forward.drop.where == "mangle/FORWARD/1"
