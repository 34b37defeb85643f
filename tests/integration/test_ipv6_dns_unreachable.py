"""dns-unreachable on IPv6 nameservers in real namespaces (issue 29: every rule that reasons
about DNS does so for both families; the fixture pairs:
tests/unit/test_ipv6_dns_unreachable_rule.py): an IPv6 nameserver without a route is named,
one on the link is not — until `check --probe` asks it a real question over IPv6 and nothing
answers."""

from __future__ import annotations

import pytest

from tests.conftest import sh
from tests.integration.test_check_part2 import (  # noqa: F401 (resolv_conf: the fixture)
    check,
    of_rule,
    resolv_conf,
    veth,
)

pytestmark = pytest.mark.integration


def test_ipv6_nameservers_without_a_route_or_an_answer(netns_factory, resolv_conf):  # noqa: F811
    client, server = netns_factory("cl6"), netns_factory("srv6")
    veth(client, "eth0", server, "eth0")
    sh(f"ip -n {client} addr add fd00:75::2/64 dev eth0 nodad")
    sh(f"ip -n {server} addr add fd00:75::53/64 dev eth0 nodad")
    resolv_conf(client, "nameserver fd00:75:9::9", "nameserver fd00:75::53")
    assert [f["subject"] for f in of_rule(check(client, server), "dns-unreachable")] == \
        ["fd00:75:9::9"]
    found = {f["subject"]: f["message"]
             for f in of_rule(check(client, server, probe=True), "dns-unreachable")}
    assert "no route" in found["fd00:75:9::9"]
    assert "did not answer" in found["fd00:75::53"]
