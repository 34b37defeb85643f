"""IPv6 in the address and route rules, end to end: a dual-stack router with a bridge and a
container built in real namespaces with `ip`, judged by the real `netdiag check --ns ...`.
Healthy, it is quiet — the link-local fe80::/64 on every interface is no overlap, nor a
duplicate; then one fault at a time: overlapping IPv6 prefixes on two bridges and under a
VPN-like route (overlapping-subnets), and a container without its IPv6 default route
(missing-default-route, whose repair puts it back). And the dual-stack lab's expected flows
over IPv6: promised, kept, and named when an ip6tables rule stops one. Everything lives in
namespaces netns_factory (or the lab fixture) removes; no packet leaves them."""

from __future__ import annotations

import pytest

from netdiag.collect import collect_snapshot
from netdiag.collect.discovery import discover
from netdiag.flows import expected
from netdiag.topology import schema
from tests.conftest import pings, sh
from tests.fixtures.live import findings, loud, run_check
from tests.integration.test_lab import EXAMPLES, _check_lab, lab  # noqa: F401 (lab: fixture)

pytestmark = pytest.mark.integration


def _veth(a: str, a_if: str, b: str, b_if: str) -> None:
    sh(f"ip -n {a} link add {a_if} type veth peer name {b_if} netns {b}")
    sh(f"ip -n {a} link set {a_if} up && ip -n {b} link set {b_if} up")


def _dual_stack(netns_factory) -> tuple[str, str, str]:
    """router: uplink (198.18.60.2/24, fd00:60::2/64 with a default route of each family
    via .1 / ::1 in `wan`), bridge br0 (10.60.1.1/24, fd00:61::1/64), forwarding on for both
    families; app: on br0 with 10.60.1.2 and fd00:61::2 and its default routes via br0."""
    router, app, wan = netns_factory("rt6"), netns_factory("app6"), netns_factory("wan6")
    _veth(router, "up0", wan, "eth0")
    for ns, host in ((wan, 1), (router, 2)):
        dev = "eth0" if ns == wan else "up0"
        sh(f"ip -n {ns} addr add 198.18.60.{host}/24 dev {dev}")
        sh(f"ip -n {ns} addr add fd00:60::{host}/64 dev {dev} nodad")
    sh(f"ip -n {router} route add default via 198.18.60.1")
    sh(f"ip -n {router} -6 route add default via fd00:60::1")
    sh(f"ip -n {router} link add br0 type bridge && ip -n {router} link set br0 up")
    sh(f"ip -n {router} addr add 10.60.1.1/24 dev br0")
    sh(f"ip -n {router} addr add fd00:61::1/64 dev br0 nodad")
    _veth(router, "v-app", app, "eth0")
    sh(f"ip -n {router} link set v-app master br0")
    sh(f"ip -n {app} addr add 10.60.1.2/24 dev eth0")
    sh(f"ip -n {app} addr add fd00:61::2/64 dev eth0 nodad")
    sh(f"ip -n {app} route add default via 10.60.1.1")
    sh(f"ip -n {app} -6 route add default via fd00:61::1")
    sh(f"ip netns exec {router} sysctl -qw net.ipv4.ip_forward=1 "
       "net.ipv6.conf.all.forwarding=1")
    return router, app, wan


def test_overlapping_ipv6_prefixes_and_not_link_local(netns_factory):
    router, app, wan = _dual_stack(netns_factory)
    _, report = run_check(router, app)
    assert loud(report) == []  # every interface has fe80::/64: no overlap, no duplicate
    # a second bridge whose /48 holds br0's /64, and a route that holds both
    sh(f"ip -n {router} link add br1 type bridge && ip -n {router} link set br1 up")
    sh(f"ip -n {router} addr add fd00:61:0:ff::1/48 dev br1 nodad")
    sh(f"ip -n {router} -6 route add fd00::/12 via fd00:60::1")
    _, report = run_check(router, app)
    found = {f["message"] for f in findings(report, "overlapping-subnets", router)}
    assert found == {
        "fd00:61::/64 on br0 overlaps fd00:61::/48 on br1: traffic to fd00:61::/64 takes br0, "
        f"so fd00:61::/64 behind br1 is shadowed; br0 serves {app}",
        "fd00:61::/48 on br1 overlaps route fd00::/12 via fd00:60::1 dev up0: traffic to "
        "fd00:61::/48 takes br1, so fd00:61::/48 behind up0 is shadowed",
        "fd00:61::/64 on br0 overlaps route fd00::/12 via fd00:60::1 dev up0: traffic to "
        f"fd00:61::/64 takes br0, so fd00:61::/64 behind up0 is shadowed; br0 serves {app}"}
    assert {rule for rule, _, _ in loud(report)} == {"overlapping-subnets"}


def test_a_container_without_its_ipv6_default_route(netns_factory):
    router, app, wan = _dual_stack(netns_factory)
    sh(f"ip -n {app} -6 route del default")
    code, report = run_check(router, app)
    [finding] = findings(report, "missing-default-route", app)
    assert code == 1 and finding["subject"] == "eth0 (IPv6)"
    assert f"no IPv6 default route, although fd00:61::1 ({router}, br0) forwards" in \
        finding["message"]
    assert [f["rule"] for f in report["findings"] if f["severity"] != "info"] == \
        ["missing-default-route"]  # IPv4's default route is there: one finding
    step = finding["repair"]["steps"][0]["command"]
    assert step == f"ip netns exec {app} ip route add ::/0 via fd00:61::1 dev eth0"
    sh(step)  # the repair as printed: the kernel takes it, and the finding is gone
    assert "default via fd00:61::1 dev eth0" in sh(f"ip -n {app} -6 route show")
    _, report = run_check(router, app)
    assert loud(report) == []
    # IPv6 forwarding off in the router: it is no IPv6 router, so no route is missing
    sh(f"ip -n {app} -6 route del default")
    sh(f"ip netns exec {router} sysctl -qw net.ipv6.conf.all.forwarding=0")
    _, report = run_check(router, app)
    assert findings(report, "missing-default-route") == []


def test_the_dual_stack_labs_ipv6_flows_are_expected_and_a_stop_is_named(lab):  # noqa: F811
    j = lab(schema.load(EXAMPLES / "dual-stack.yaml"))
    web, db = j.nodes["web"], j.nodes["db"]
    snapshot = collect_snapshot([ref for ref in discover() if ref.lab == j.name])
    promised = {e.what: e for e in expected.lab_expectations(snapshot)}
    to_db = "web reaches db at fd00:28::2 over IPv6 (ICMPv6) on network petnet"
    assert to_db in promised and promised[to_db].packet.family == 6, sorted(promised)
    assert "db reaches web at fd00:28::3 over IPv6 (ICMPv6) on network petnet" in promised
    assert _check_lab(j) == []  # kept: nothing said
    assert pings(web, "fd00:28::2")  # as the kernel agrees
    sh(f"ip netns exec {db} ip6tables -I INPUT -p ipv6-icmp --icmpv6-type echo-request "
       "-j DROP")
    assert not pings(web, "fd00:28::2", wait=1)
    [finding] = _check_lab(j)
    assert finding["rule"] == "expected-flow-blocked"
    assert finding["message"].startswith(f"{to_db}: it is denied in {j.name}/db at "
                                         "filter/INPUT/1")


def test_ip6tables_forward_drop_on_a_dual_stack_bridge_and_its_repair(netns_factory):
    router, app, wan = _dual_stack(netns_factory)
    sh(f"ip -n {wan} -6 route add fd00:61::/64 via fd00:60::2")  # the prefixes routed back
    sh(f"ip -n {wan} route add 10.60.1.0/24 via 198.18.60.2")
    # until the new links' link-local addresses pass DAD and the neighbours are found
    assert any(pings(app, "fd00:60::1") for _ in range(10))
    sh(f"ip netns exec {router} ip6tables -P FORWARD DROP")
    assert not pings(app, "fd00:60::1")
    assert pings(app, "198.18.60.1")  # IPv4 is another table
    _, report = run_check(router, app)
    [finding] = findings(report, "forward-policy-drop", router)
    assert finding["subject"] == "br0 (IPv6)"
    assert "(ip6tables nft backend)" in finding["message"] or \
        "(ip6tables legacy backend)" in finding["message"]
    for step in finding["repair"]["steps"]:
        assert step["command"].startswith(f"ip netns exec {router} ip6tables -t filter -I "
                                          "FORWARD 1 ")
        sh(step["command"])
    assert pings(app, "fd00:60::1")  # the kernel agrees with the repair
    _, report = run_check(router, app)
    assert loud(report) == []


def test_a_native_inet_forward_chain_that_lets_only_ipv4_through(netns_factory):
    """A native nftables forward chain (inet, policy drop) whose accepts match IPv4 addresses
    only: the bridge's IPv4 is forwarded and its IPv6 dropped, by the kernel and in the rule,
    which runs the chain on IPv6 probes too (no rule names the bridge: the probes decide)."""
    router, app, wan = _dual_stack(netns_factory)
    sh(f"ip -n {wan} -6 route add fd00:61::/64 via fd00:60::2")  # the prefixes routed back
    sh(f"ip -n {wan} route add 10.60.1.0/24 via 198.18.60.2")
    assert any(pings(app, "fd00:60::1") for _ in range(10))  # DAD and neighbours, first
    accepts = "ip saddr 10.60.1.0/24 accept; ip daddr 10.60.1.0/24 accept"
    sh(f"ip netns exec {router} nft 'add table inet fw; add chain inet fw forward {{ type "
       f"filter hook forward priority 0; policy drop; }}; add rule inet fw forward "
       f"{accepts.replace('; ', '; add rule inet fw forward ')}'")
    assert pings(app, "198.18.60.1") and not pings(app, "fd00:60::1")
    _, report = run_check(router, app)
    [finding] = findings(report, "forward-policy-drop", router)
    assert finding["subject"] == "br0 (IPv6)"
    sh(f"ip netns exec {router} nft 'add rule inet fw forward ip6 saddr fd00:61::/64 accept; "
       "add rule inet fw forward ip6 daddr fd00:61::/64 accept'")
    assert pings(app, "fd00:60::1")
    _, report = run_check(router, app)
    assert loud(report) == []
