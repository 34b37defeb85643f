"""ipsets without a kernel: the reader on pyroute2-encoded list answers, xt_set's membership
test (flows/ipsets.py) and `-m set` in the iptables walk, the schema, and forward-policy-drop
on Docker 28.0.0's `--match-set docker-ext-bridges-v4` (a fixture pair). The real kernel's
answers are held against these in tests/integration/test_ipsets.py."""

from __future__ import annotations

import json
import socket
from dataclasses import replace

import pytest
from pyroute2.netlink.nfnetlink.ipset import ipset_msg

from netdiag.collect import ipsets as reader
from netdiag.collect.iptables_save import parse
from netdiag.flows.ipsets import Ipsets, Lookup, address_ranges
from netdiag.flows.netfilter import ACCEPT, DROP, UNKNOWN, Netfilter, PacketPlace
from netdiag.flows.packet import Packet
from netdiag.model import Firewall, Ipset, IpsetMember, serialize
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.rules import run_rule

# --- the reader ---------------------------------------------------------------------------

NOMATCH, PHYSDEV, WILDCARD = 1 << 2, 1 << 1, 1 << 7


def listed(name: str, kind: str, family: int, *elements: list) -> ipset_msg:
    """An IPSET_CMD_LIST answer as the kernel sends it, encoded and decoded by pyroute2."""
    message = ipset_msg()
    message["attrs"] = [["IPSET_ATTR_PROTOCOL", 7], ["IPSET_ATTR_SETNAME", name],
                        ["IPSET_ATTR_TYPENAME", kind], ["IPSET_ATTR_FAMILY", family],
                        ["IPSET_ATTR_ADT", {"attrs": [["IPSET_ATTR_DATA", {"attrs": element}]
                                                      for element in elements]}]]
    message.encode()
    answer = ipset_msg(message.data)
    answer.decode()
    return answer


def ip(address: str) -> list:
    kind = "IPSET_ATTR_IPADDR_IPV6" if ":" in address else "IPSET_ATTR_IPADDR_IPV4"
    return ["IPSET_ATTR_IP_FROM", {"attrs": [[kind, address]]}]


def test_the_reader_writes_members_as_ipset_list_does_and_joins_split_answers():
    found = reader.sets_from_messages([
        listed("lan", "hash:net,port", socket.AF_INET,
               [ip("10.0.0.0"), ["IPSET_ATTR_CIDR", 8], ["IPSET_ATTR_PORT_FROM", 22],
                ["IPSET_ATTR_PROTO", 6]],
               [ip("10.0.0.9"), ["IPSET_ATTR_CIDR", 32], ["IPSET_ATTR_PORT_FROM", 22],
                ["IPSET_ATTR_PROTO", 6], ["IPSET_ATTR_CADT_FLAGS", NOMATCH]]),
        listed("lan", "hash:net,port", socket.AF_INET,  # the same set, continued
               [ip("192.0.2.0"), ["IPSET_ATTR_CIDR", 24], ["IPSET_ATTR_PORT_FROM", 8 << 8],
                ["IPSET_ATTR_PROTO", 1]]),
        listed("ports", "bitmap:port", 0, [["IPSET_ATTR_PORT_FROM", 53]]),
        listed("ifs", "hash:net,iface", socket.AF_INET6,
               [ip("fd00::"), ["IPSET_ATTR_CIDR", 64], ["IPSET_ATTR_IFACE", "veth"],
                ["IPSET_ATTR_CADT_FLAGS", PHYSDEV | WILDCARD]]),
        listed("range", "bitmap:ip", socket.AF_INET,
               [ip("10.1.0.1"), ["IPSET_ATTR_IP_TO", {"attrs": [["IPSET_ATTR_IPADDR_IPV4",
                                                                  "10.1.0.9"]]}]]),
        listed("both", "list:set", 0, [["IPSET_ATTR_NAME", "ports"]],
               [["IPSET_ATTR_NAME", "lan"]]),
    ])
    assert found == (
        Ipset("lan", "hash:net,port", 4, (IpsetMember("10.0.0.0/8,tcp:22"),
                                          IpsetMember("10.0.0.9,tcp:22", nomatch=True),
                                          IpsetMember("192.0.2.0/24,icmp:8/0"))),
        Ipset("ports", "bitmap:port", 0, (IpsetMember("53"),)),
        Ipset("ifs", "hash:net,iface", 6, (IpsetMember("fd00::/64,physdev:veth+"),)),
        Ipset("range", "bitmap:ip", 4, (IpsetMember("10.1.0.1-10.1.0.9"),)),
        Ipset("both", "list:set", 0, (IpsetMember("ports"), IpsetMember("lan"))))  # in order


def test_sets_are_read_only_where_a_rule_names_one():
    chains, rules = parse("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j ACCEPT\nCOMMIT\n",
                          "nft", 4)
    assert not reader.names_a_set(Firewall(chains, rules))
    for line in ("-A INPUT -m set --match-set a src -j DROP",
                 "-A INPUT -j SET --add-set a src"):
        chains, rules = parse(f"*filter\n:INPUT ACCEPT [0:0]\n{line}\nCOMMIT\n", "nft", 4)
        assert reader.names_a_set(Firewall(chains, rules))


# --- xt_set's test ------------------------------------------------------------------------

SETS = Ipsets((
    Ipset("nets", "hash:net", 4, (IpsetMember("10.0.0.0/8"), IpsetMember("10.1.0.0/16", True),
                                  IpsetMember("10.1.2.0/24"))),
    Ipset("services", "hash:ip,port", 4, (IpsetMember("192.0.2.2,tcp:22"),
                                          IpsetMember("192.0.2.2,udp:53"),
                                          IpsetMember("192.0.2.3,icmp:8/0"))),
    Ipset("ifaces", "hash:net,iface", 4, (IpsetMember("10.0.0.0/8,eth0"),
                                          IpsetMember("10.0.0.0/8,physdev:vnet+"))),
    Ipset("six", "hash:net", 6, (IpsetMember("fd00::/64"),)),
    Ipset("marks", "hash:ip,mark", 4, (IpsetMember("10.0.0.1,0x1"),)),
    Ipset("ports", "bitmap:port", 0, (IpsetMember("22"),)),
    Ipset("either", "list:set", 0, (IpsetMember("six"), IpsetMember("services"))),
))


def lookup(src="10.9.9.9", dst="192.0.2.2", protocol=6, dport=22, **where) -> Lookup:
    return Lookup(6 if ":" in dst else 4, src, dst, protocol, 40000, dport, **where)


@pytest.mark.parametrize(("src", "hit", "hit_return_nomatch"), [
    ("10.2.0.1", True, False),  # 10.0.0.0/8
    ("10.1.0.1", False, True),  # the more specific nomatch 10.1.0.0/16 decides
    ("10.1.2.1", True, False),  # the still more specific 10.1.2.0/24 decides
    ("11.0.0.1", False, False),  # in no member
])
def test_the_most_specific_member_decides_and_nomatch_turns_with_return_nomatch(
        src, hit, hit_return_nomatch):
    assert SETS.test("nets", (True,), lookup(src=src)) is hit
    assert SETS.test("nets", (True,), lookup(src=src), return_nomatch=True) is hit_return_nomatch


def test_each_dimension_is_read_from_the_end_its_flag_names():
    assert SETS.test("services", (False, False), lookup()) is True
    assert SETS.test("services", (False, True), lookup()) is False  # source port 40000
    assert SETS.test("services", (False, False), lookup(protocol=17, dport=53)) is True
    assert SETS.test("services", (False, False), lookup(protocol=17, dport=22)) is False
    assert SETS.test("services", (False,), lookup()) is False  # fewer flags than dimensions
    icmp = Lookup(4, "10.9.9.9", "192.0.2.3", 1, 8 << 8, 8 << 8)
    assert SETS.test("services", (False, False), icmp) is True
    assert SETS.test("services", (False, False), replace(icmp, dport=None)) is None


def test_interfaces_and_bridge_ports():
    assert SETS.test("ifaces", (True, True), lookup(src="10.0.0.1", in_if="eth0")) is True
    assert SETS.test("ifaces", (True, False), lookup(src="10.0.0.1", in_if="eth0")) is False
    assert SETS.test("ifaces", (True, True), lookup(src="10.0.0.1", in_if="br0",
                                                     physdev_in="vnet3")) is True
    assert SETS.test("ifaces", (True, True), lookup(src="10.0.0.1")) is False  # no in-interface


def test_family_lists_and_what_cannot_be_told():
    assert SETS.test("six", (False,), lookup()) is False  # an IPv4 packet, an IPv6 set
    assert SETS.test("six", (False,), lookup(src="fd00::9", dst="fd00::1")) is True
    assert SETS.test("either", (False, False), lookup()) is True  # its second member set
    assert SETS.test("marks", (True, True), lookup(src="10.0.0.1")) is None
    assert SETS.test("ports", (False,), lookup(protocol=1, dport=None)) is None
    assert SETS.test("missing", (True,), lookup()) is None
    assert address_ranges(SETS._sets["nets"], 0) == [(0x0A000000, 0x0AFFFFFF),
                                                     (0x0A010200, 0x0A0102FF)]
    assert address_ranges(SETS._sets["services"], 1) is None


# --- `-m set` in the iptables walk ---------------------------------------------------------

FILTER = """*filter
:INPUT DROP [0:0]
-A INPUT -p icmp -j SET --add-set seen src --exist
-A INPUT -m set --match-set blocked src -j DROP
-A INPUT -p tcp -m set ! --match-set allowed src,dst --return-nomatch ! --update-counters -j DROP
-A INPUT -j ACCEPT
COMMIT
"""


def _state(text: str, sets: tuple[Ipset, ...]):
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="10.0.0.1/24")
    state = b.build().namespace(host)
    chains, rules = parse(text, "nft", 4)
    return replace(state, firewall=replace(state.firewall, iptables_chains=chains,
                                           iptables_rules=rules, ipsets=sets))


READ = (Ipset("blocked", "hash:ip", 4, (IpsetMember("10.0.0.66"),)),
        Ipset("allowed", "hash:net,port", 4, (IpsetMember("10.0.0.0/24,tcp:22", True),
                                              IpsetMember("10.0.0.0/24,tcp:80"))),
        Ipset("seen", "hash:ip", 4))


@pytest.mark.parametrize(("src", "proto", "port", "verdict"), [
    ("10.0.0.66", "tcp", 22, DROP),  # blocked
    ("10.0.0.5", "tcp", 22, ACCEPT),  # the nomatch member, with --return-nomatch: in the set
    ("10.0.0.5", "tcp", 80, DROP),  # a plain member, with --return-nomatch: not in it
    ("10.0.0.5", "icmp", 0, ACCEPT),  # the SET target changes nothing for this packet
])
def test_set_matches_decide_the_walk(src, proto, port, verdict):
    state = _state(FILTER, READ)
    packet = Packet(src, "10.0.0.1", proto, 40000 if port else 0, port)
    outcome = Netfilter().run_hook(state, "INPUT", packet, PacketPlace(in_if="eth0"))
    assert outcome.verdict == verdict, outcome.reason


def test_a_set_not_read_is_unknown_naming_it_and_so_is_a_mark_map():
    state = _state(FILTER, READ[1:])
    outcome = Netfilter().run_hook(state, "INPUT", Packet("10.0.0.5", "10.0.0.1", "tcp", 1, 22),
                                   PacketPlace(in_if="eth0"))
    assert outcome.verdict == UNKNOWN
    assert outcome.reason.startswith("ipset blocked is not in the snapshot")
    mapped = _state(FILTER.replace("--add-set seen src --exist",
                                   "--map-set seen src --map-mark"), READ)
    outcome = Netfilter().run_hook(mapped, "INPUT", Packet("10.0.0.5", "10.0.0.1", "icmp"),
                                   PacketPlace(in_if="eth0"))
    assert outcome.verdict == UNKNOWN and "target SET" in outcome.reason


# --- the schema ---------------------------------------------------------------------------

def test_ipsets_survive_the_file_and_an_older_file_loads_without_them():
    state = _state(FILTER, READ)
    snapshot = replace(SnapshotBuilder().build(), namespaces=(state,))
    assert serialize.loads(serialize.dumps(snapshot)) == snapshot
    data = json.loads(serialize.dumps(snapshot))
    data["schema_version"] = 10
    del data["namespaces"][0]["firewall"]["ipsets"]
    loaded = serialize.loads(json.dumps(data))
    assert loaded.namespaces[0].firewall.ipsets == ()
    assert loaded.namespaces[0].firewall.iptables_rules == state.firewall.iptables_rules


# --- forward-policy-drop on Docker 28.0.0's FORWARD (a fixture pair) -----------------------

# moby/moby v28.0.0, integration/network/bridge/iptablesdoc/generated/usernet-portmap.md (the
# filter table's FORWARD, docker0 only), with FORWARD's policy DROP as Docker sets it.
DOCKER_28_0_FORWARD = """*filter
:FORWARD DROP [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -m set --match-set docker-ext-bridges-v4 dst -m conntrack --ctstate RELATED,ESTABLISHED \
-j ACCEPT
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -m set --match-set docker-ext-bridges-v4 dst -j DOCKER
-A FORWARD -i docker0 -j ACCEPT
-A DOCKER ! -i docker0 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-USER -j RETURN
COMMIT
"""  # (a backslash at a line's end joins it with the next: one rule)
EXT_BRIDGES = (Ipset("docker-ext-bridges-v4", "hash:net", 4, (IpsetMember("172.17.0.0/16"),)),)


def _docker_28_0(kvm: bool, sets: tuple[Ipset, ...] = EXT_BRIDGES):
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="192.168.1.10/24")
    b.sysctl(host, "net.ipv4.ip_forward", 1)
    b.bridge(host, "docker0", "172.17.0.1/16")
    web = b.container("web")
    b.veth(web, "eth0", host, "veth0", address="172.17.0.2/16", peer_master="docker0")
    if kvm:
        b.bridge(host, "br0", "192.168.122.1/24")
        b.link(host, "vnet0", master="br0")
    chains, rules = parse(DOCKER_28_0_FORWARD, "nft", 4)
    snapshot = b.build()
    return replace(snapshot, namespaces=tuple(
        replace(s, firewall=Firewall(iptables_chains=chains, iptables_rules=rules, ipsets=sets))
        if s.ref.id == host else s for s in snapshot.namespaces))


def test_docker_28_0_with_its_set_read_is_quiet():
    assert run_rule("forward-policy-drop", _docker_28_0(kvm=False)) == []


def test_docker_28_0s_set_limited_accept_is_no_way_into_a_kvm_bridge():
    (finding,) = run_rule("forward-policy-drop", _docker_28_0(kvm=True))
    assert finding.subject == "br0"
    # out of br0, a VM's answer to a container is accepted as established (its dst is in
    # the set): a way through, as the rule counts them
    assert finding.message.startswith("traffic into br0 falls through")
    assert [s.args for s in finding.repair.steps] == [("-o", "br0", "-j", "ACCEPT")]
    # without the set read, its match may apply, and so may the accept
    assert run_rule("forward-policy-drop", _docker_28_0(kvm=True, sets=())) == []

