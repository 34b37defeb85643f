"""MASQUERADE's source address as the kernel picks it (netdiag/flows/walk.masquerade_source):
IPv4 by inet_select_addr(out device, next hop, RT_SCOPE_UNIVERSE) — a primary global-scope
address of the device, the one whose subnet holds the next hop first; when the device has none
(lo, whose 127.0.0.1 is scope host), the first primary global-scope address of any device in
the kernel's device order. So a Docker host's own connection to its bridge address leaves lo
masqueraded to its uplink's address. The real twin: tests/integration/test_ipsets.py, whose
INPUT refuses eth0's /24 (the masqueraded host connections among them)."""

from dataclasses import replace

from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine, masquerade_source
from netdiag.model import Address
from tests.fixtures.builder import SnapshotBuilder


def _address(ifindex: int, ifname: str, cidr: str, scope: str = "global") -> Address:
    address, prefixlen = cidr.split("/")
    return Address(ifindex, ifname, 6 if ":" in address else 4, address, int(prefixlen),
                   scope=scope)


def _state(*addresses: Address):
    b = SnapshotBuilder()
    host = b.host()
    for name in ("eth0", "docker0", "eth1"):
        b.link(host, name)  # ifindex 2, 3, 4 after lo's 1
    snapshot = b.build()
    return replace(snapshot.namespace(host), addresses=addresses)


LO = _address(1, "lo", "127.0.0.1/8", "host")


def test_the_out_devices_address_in_the_next_hops_subnet_first_else_its_first():
    state = _state(LO, _address(2, "eth0", "10.0.0.1/24"), _address(2, "eth0", "192.0.2.1/24"))
    assert masquerade_source(state, "eth0", "192.0.2.9", 4) == "192.0.2.1"
    assert masquerade_source(state, "eth0", "198.51.100.1", 4) == "10.0.0.1"


def test_a_secondary_address_is_never_taken():
    # 10.0.0.2/24 came second into 10.0.0.0/24 on eth0: the kernel marks it secondary
    state = _state(LO, _address(2, "eth0", "10.0.0.1/24"), _address(2, "eth0", "10.0.0.2/24"))
    assert masquerade_source(state, "eth0", "10.0.0.2", 4) == "10.0.0.1"


def test_lo_takes_the_first_global_address_of_any_device_in_device_order():
    state = _state(LO, _address(3, "docker0", "172.17.0.1/16"),
                   _address(2, "eth0", "10.99.0.1/24"))
    assert masquerade_source(state, "lo", "172.17.0.1", 4) == "10.99.0.1"
    # a global address on lo itself is lo's own
    state = _state(LO, _address(1, "lo", "10.255.0.1/32"), _address(2, "eth0", "10.99.0.1/24"))
    assert masquerade_source(state, "lo", "172.17.0.1", 4) == "10.255.0.1"


def test_link_and_host_scope_addresses_are_passed_over():
    state = _state(LO, _address(2, "eth0", "169.254.0.1/16", "link"),
                   _address(4, "eth1", "192.0.2.1/24"))
    assert masquerade_source(state, "eth0", "169.254.0.9", 4) == "192.0.2.1"
    assert masquerade_source(_state(LO), "lo", "127.0.0.1", 4) == ""  # the kernel drops it


def test_ipv6_is_source_address_selection_for_the_destination():
    state = _state(_address(1, "lo", "::1/128", "host"), _address(2, "eth0", "fd00:99::1/64"),
                   _address(3, "docker0", "fd00:17::1/64"))
    assert masquerade_source(state, "lo", "fd00:17::1", 6) == "fd00:17::1"
    assert masquerade_source(state, "eth0", "fd00:99::7", 6) == "fd00:99::1"


def test_the_hosts_connection_to_its_bridge_address_leaves_lo_masqueraded_to_eth0():
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="10.99.0.1/24")
    b.bridge(host, "docker0", "172.17.0.1/16")
    b.iptables(host, "nat", "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE")
    b.socket(host, "tcp", "0.0.0.0", 22, process="sshd", pid=1)
    snapshot = b.build()
    state = snapshot.namespace(host)
    snapshot = replace(snapshot, namespaces=(replace(state, addresses=(LO,) + state.addresses),))
    result = Engine(snapshot).path(host, Packet("", "172.17.0.1", "tcp", 43210, 22))
    assert result.delivered
    assert result.forward.delivered_as.src == "10.99.0.1"
    assert result.reply.delivered_as.dst == "172.17.0.1"  # conntrack undid it for the reply
