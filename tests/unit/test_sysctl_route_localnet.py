"""route_localnet in the flow model, and the index's sysctl map the engine reads it through.

The kernel (net/ipv4/route.c) keeps 127.0.0.0/8 on lo: __mkroute_output refuses a route out of
any other device for a loopback source, and ip_route_input_slow drops a packet arriving by one
to or from a loopback address as a martian — unless route_localnet is 1 for that device
(`all` or its own). A host that DNATs 127.0.0.1:PORT to a container (kube-proxy's node ports
on localhost, netavark's and Docker's published ports) reaches it only with the switch on.

The fixture: a host with veth0 (10.0.0.1/24) to a container c (10.0.0.2, listening on tcp
80); the host DNATs tcp to 127.0.0.1:8080 in OUTPUT to 10.0.0.2:80, as kube-proxy does for a
node port (`-m addrtype --dst-type LOCAL`), and masquerades what it sends from a loopback
source.
"""

from __future__ import annotations

from netdiag.collect import Context, sysctls
from netdiag.flows.packet import DELIVERED, DENIED, ROUTE, Packet
from netdiag.flows.walk import Engine
from netdiag.model import Firewall, IptablesRule, Match, NamespaceRef, NsKind
from netdiag.model.index import index
from tests.fixtures.builder import SnapshotBuilder

ALL = "net.ipv4.conf.all.route_localnet"
NODE_PORT = Packet("", "127.0.0.1", "tcp", 43210, 8080)


def _host(masquerade: bool = True, **values: int):
    """(builder, host, container) with `values` as route_localnet sysctls ("all", "veth0",
    and "c_eth0" for the container's eth0)."""
    b = SnapshotBuilder()
    host, c = b.host(), b.namespace("c")
    b.veth(c, "eth0", host, "veth0")
    b.address(host, "veth0", "10.0.0.1/24").address(c, "eth0", "10.0.0.2/24")
    b.route(c, "default", dev="eth0", gateway="10.0.0.1")
    b.socket(c, "tcp", "0.0.0.0", 80)
    b.socket(host, "tcp", "0.0.0.0", 22)
    b.iptables(host, "nat", "-A OUTPUT -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    b.iptables(host, "nat", "-A KUBE-NODEPORTS -p tcp -m tcp --dport 8080 -j DNAT "
                            "--to-destination 10.0.0.2:80")
    if masquerade:
        b.iptables(host, "nat", "-A POSTROUTING -s 127.0.0.0/8 -o veth0 -j MASQUERADE")
    for key, value in values.items():
        ns, dev = (c, "eth0") if key == "c_eth0" else (host, key)
        b.sysctl(ns, f"net.ipv4.conf.{dev}.route_localnet", value)
    return b, host, c


def test_a_loopback_source_is_not_routed_out_of_a_device_without_route_localnet():
    b, host, _ = _host(all=0, veth0=0)
    result = Engine(b.build()).path(host, NODE_PORT)
    assert result.disposition == DENIED
    drop = result.forward.drop
    assert drop.cause == ROUTE and drop.where == "route"
    assert "127.0.0.1" in drop.reason and "veth0" in drop.reason
    assert "sysctl -w net.ipv4.conf.veth0.route_localnet=1" in drop.reason


def test_route_localnet_all_or_the_device_s_own_lets_the_node_port_through():
    for values in ({"all": 1, "veth0": 0}, {"all": 0, "veth0": 1}):
        b, host, c = _host(**values)
        result = Engine(b.build()).path(host, NODE_PORT)
        assert result.disposition == DELIVERED, values
        assert result.forward.namespace == c
        # masqueraded on its way out; the reply comes back to 127.0.0.1 by veth0
        assert result.forward.delivered_as.src == "10.0.0.1"


def test_without_masquerade_the_receiver_drops_the_loopback_source_as_a_martian():
    b, host, c = _host(masquerade=False, all=1)
    result = Engine(b.build()).path(host, NODE_PORT)
    assert result.disposition == DENIED
    assert result.forward.drop.namespace.id == c
    assert "martian source 127.0.0.1 arriving on eth0" in result.forward.drop.reason
    # with the switch on there too, the SYN arrives; its answer to 127.0.0.1 stays in c
    b.sysctl(c, "net.ipv4.conf.eth0.route_localnet", 1)
    result = Engine(b.build()).path(host, NODE_PORT)
    assert result.forward.disposition == DELIVERED and result.disposition == DENIED
    assert result.reply.drop.namespace.id == c


def test_a_dnat_into_loopback_of_arriving_packets_needs_route_localnet_on_the_in_device():
    b, host, c = _host()
    b.socket(host, "tcp", "127.0.0.1", 8081)
    b.iptables(host, "nat", "-A PREROUTING -i veth0 -p tcp -m tcp --dport 81 -j DNAT "
                            "--to-destination 127.0.0.1:8081")
    to_81 = Packet("", "10.0.0.1", "tcp", 43210, 81)
    result = Engine(b.build()).path(c, to_81)
    assert result.disposition == DENIED and result.forward.drop.namespace.id == host
    assert "martian destination 127.0.0.1 arriving on veth0" in result.forward.drop.reason
    b.sysctl(host, "net.ipv4.conf.veth0.route_localnet", 1)
    assert Engine(b.build()).path(c, to_81).disposition == DELIVERED


def test_loopback_itself_is_untouched():
    b, host, _ = _host(all=0)
    assert Engine(b.build()).path(host, Packet("", "127.0.0.1", "tcp", 43210, 22)) \
        .disposition == DELIVERED


def test_the_index_answers_each_namespace_s_sysctls_from_one_map():
    b, host, c = _host(all=1, c_eth0=0)
    topo = index(b.build())
    assert topo.sysctl(host, ALL) == "1"
    assert topo.sysctl(c, "net.ipv4.conf.eth0.route_localnet") == "0"
    assert topo.sysctl(c, ALL) is None  # not read: not guessed
    assert topo.sysctl(12345, ALL) is None  # a namespace not in the snapshot
    for state in topo.snapshot.namespaces:
        for sysctl in state.sysctls:
            assert topo.sysctl(state.ref.id, sysctl.name) == state.sysctl(sysctl.name)


def test_all_is_read_where_a_dnat_can_move_loopback_across_a_device():
    def names(*rules: IptablesRule) -> set[str]:
        ctx = Context(NamespaceRef(id=1, kind=NsKind.NAMED, name="x", path="/x"))
        ctx.found.update({"links": (), "firewall": Firewall(iptables_rules=rules)})
        return set(sysctls._proc_names(ctx))

    def dnat(to: str, *matches: Match) -> IptablesRule:
        return IptablesRule(backend="nft", family=4, table="nat", chain="X", position=1,
                            matches=matches, target="DNAT",
                            target_options=(("to-destination", to),))

    assert ALL in names(dnat("10.0.0.2:80"))  # a node port: out of a device
    # into 127.0.0.1 from any destination: a martian unless the switch is on
    assert names(dnat("127.0.0.1:8081")) == {ALL}
    # Docker's embedded DNS moves 127.0.0.11:53 to another port of it: nothing to read
    assert names(dnat("127.0.0.11:41123", Match("destination", "127.0.0.11/32"))) == set()
    assert names() == set()
