"""The bridge driver's IPv6 rules and options (fixtures, no root): a dual-stack network's
rules are its IPv4 rules again for ip6tables with the IPv6 subnet, and each family is batched
against its own saved state."""

import pytest

from netdiag.drivers.bridge.options import parse
from netdiag.drivers.common import firewall
from netdiag.drivers.common.iptables import batch_add, parse_save
from netdiag.errors import UsageError


def rules(subnet: str):
    return firewall.network_rules("br-x", subnet, icc=True, masquerade=True, internal=False,
                                  hairpin=False)


def test_ipv6_rules_mirror_the_ipv4_ones_with_nat66():
    four, six = rules("172.28.0.0/24"), rules("fd00:28::/64")
    assert {r.family for r in four} == {4} and {r.family for r in six} == {6}
    assert [r.spec.replace("fd00:28::/64", "S") for r in six] == \
        [r.spec.replace("172.28.0.0/24", "S") for r in four]
    assert any(r.table == "nat" and r.spec == "-s fd00:28::/64 ! -o br-x -j MASQUERADE"
               for r in six)
    assert "! -d ::1/128" in firewall.host_rules(False, 6)[1].spec


def test_a_batch_of_ipv6_rules_declares_the_chains_ip6tables_lacks():
    batch = batch_add(parse_save(""), firewall.CHAINS, rules("fd00:28::/64"))
    assert ":DOCKER-ISOLATION-STAGE-2 - [0:0]" in batch["filter"]
    assert "-I POSTROUTING 1 -s fd00:28::/64 ! -o br-x -j MASQUERADE" in batch["nat"]


def test_subnet6_option():
    assert parse({"subnet6": "fd00:28::/64"}).subnet6 == "fd00:28::/64"
    assert parse({}).subnet6 == ""
    for bad in ("fd00:28::1/64", "172.28.0.0/24", "nonsense"):
        with pytest.raises(UsageError):
            parse({"subnet6": bad})
