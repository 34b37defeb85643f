"""The bridge driver's published-port rules on a dual-stack endpoint: the ip6tables twins of
Docker's DNAT, accept and hairpin masquerade, in the exact text ip6tables-save prints (checked
against ip6tables-save 1.8.9 in a namespace), for a port bound on every address; a port bound
on one IPv4 address stays IPv4 alone, as Docker's does."""

from __future__ import annotations

from netdiag.drivers.common import firewall
from netdiag.store.records import PortBinding


def test_a_port_on_every_address_is_published_over_ipv6_too():
    rules = firewall.port_rules("br-a", "172.18.0.2", [PortBinding(80, "tcp", 8080, "0.0.0.0")],
                                hairpin=False, ip6="fd00:18::2")
    assert [(r.family, r.table, r.line) for r in rules if r.family == 6] == [
        (6, "nat", "-A DOCKER ! -i br-a -p tcp -m tcp --dport 8080 -j DNAT --to-destination "
                   "[fd00:18::2]:80"),
        (6, "filter", "-A DOCKER -d fd00:18::2/128 ! -i br-a -o br-a -p tcp -m tcp --dport 80 "
                      "-j ACCEPT"),
        (6, "nat", "-A POSTROUTING -s fd00:18::2/128 -d fd00:18::2/128 -p tcp -m tcp --dport 80 "
                   "-j MASQUERADE"),
    ]
    assert [r.family for r in rules] == [4, 4, 4, 6, 6, 6]


def test_a_port_bound_on_one_ipv4_address_is_not_published_over_ipv6():
    rules = firewall.port_rules("br-a", "172.18.0.2", [PortBinding(80, "tcp", 8080, "10.0.0.1")],
                                hairpin=True, ip6="fd00:18::2")
    assert {r.family for r in rules} == {4}
