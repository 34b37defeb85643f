"""overlapping-subnets (ND101) on fixture snapshots."""

from netdiag.findings.rule import CheckConfig
from netdiag.model.index import nested_pairs
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import docker_host


def test_healthy_host_with_default_route_and_bridges_passes():
    assert run_rule("overlapping-subnets", docker_host().build()) == []


def test_bridge_inside_a_vpn_route_is_shadowing_it():
    d = docker_host()
    d.b.link(d.host, "tun0", kind="tun", address="10.99.0.2/24")
    d.b.route(d.host, "172.16.0.0/12", gateway="10.99.0.1", dev="tun0")
    (finding,) = [f for f in run_rule("overlapping-subnets", d.build()) if f.subject == "br-web"]
    assert "172.18.0.0/16 on br-web overlaps route 172.16.0.0/12 via 10.99.0.1 dev tun0" \
        in finding.message
    assert "takes br-web" in finding.message and "behind tun0 is shadowed" in finding.message
    assert {(e.kind, e.key) for e in finding.evidence} >= {("address", "172.18.0.0/16"),
                                                          ("route", "172.16.0.0/12")}
    assert finding.repair.safety.value == "manual"
    # The containers on the bridge are named, and a check focused on one of them sees it.
    assert finding.message.endswith("br-web serves web")
    assert finding.related == (d.web,)


def test_more_specific_vpn_route_shadows_part_of_a_bridge():
    d = docker_host()
    d.b.link(d.host, "tun0", kind="tun", address="10.99.0.2/24")
    d.b.route(d.host, "172.18.5.0/24", gateway="10.99.0.1", dev="tun0")
    (finding,) = run_rule("overlapping-subnets", d.build())
    assert finding.subject == "br-web"
    assert "traffic to 172.18.5.0/24 takes tun0" in finding.message
    assert "172.18.5.0/24 behind br-web is shadowed" in finding.message


def test_two_bridges_with_overlapping_subnets():
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br-a", "10.1.0.1/16").bridge(host, "br-b", "10.1.2.1/24")
    (finding,) = run_rule("overlapping-subnets", b.build())
    assert finding.subject == "br-b"
    assert "traffic to 10.1.2.0/24 takes br-b" in finding.message


def test_same_subnet_twice_names_the_interface_the_kernel_prefers():
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br-a", "10.1.0.1/24").bridge(host, "br-b", "10.1.0.2/24")
    (finding,) = run_rule("overlapping-subnets", b.build())
    assert "takes br-a" in finding.message and "behind br-b is shadowed" in finding.message


def test_equal_prefix_route_with_a_higher_metric_loses_to_the_connected_network():
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br-a", "10.1.0.1/24")
    b.link(host, "tun0", kind="tun", address="192.168.9.2/24")
    b.route(host, "10.1.0.0/24", gateway="192.168.9.1", dev="tun0", metric=50)
    (finding,) = run_rule("overlapping-subnets", b.build())
    assert "takes br-a" in finding.message and "behind tun0 is shadowed" in finding.message


def test_catch_all_vpn_routes_and_same_interface_routes_are_not_overlaps():
    d = docker_host()
    d.b.link(d.host, "tun0", kind="tun", address="10.99.0.2/24")
    d.b.route(d.host, "0.0.0.0/1", gateway="10.99.0.1", dev="tun0")
    d.b.route(d.host, "128.0.0.0/1", gateway="10.99.0.1", dev="tun0")
    d.b.route(d.host, "192.168.0.0/16", gateway="192.168.1.254", dev="eth0")
    assert run_rule("overlapping-subnets", d.build()) == []


def test_min_prefixlen_option_widens_what_counts():
    d = docker_host()
    d.b.link(d.host, "tun0", kind="tun", address="10.99.0.2/24")
    d.b.route(d.host, "128.0.0.0/1", gateway="10.99.0.1", dev="tun0")
    config = CheckConfig(options=(("overlapping-subnets.min-prefixlen", "1"),))
    subjects = {f.subject for f in run_rule("overlapping-subnets", d.build(), config)}
    assert subjects == {"br-web", "br-int", "docker0", "eth0"}


def test_connected_network_wider_than_a_slash8_still_meets_routes_in_other_slash8s():
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br-wide", "10.0.0.1/7")  # covers 10.0.0.0 - 11.255.255.255
    b.link(host, "tun0", kind="tun", address="192.168.9.2/24")
    b.route(host, "11.5.0.0/16", gateway="192.168.9.1", dev="tun0")
    b.route(host, "12.5.0.0/16", gateway="192.168.9.1", dev="tun0")
    (finding,) = run_rule("overlapping-subnets", b.build())
    assert "route 11.5.0.0/16 via 192.168.9.1 dev tun0" in finding.message


def test_a_table_in_a_form_the_index_cannot_file_by_octet_is_walked_whole_alike():
    """The rule reads only the /8 blocks of the connected networks from the index's table;
    a hand-written route without a length makes the index give up filing, and the rule
    walks every route instead — with the same findings."""
    def findings(*extra):
        d = docker_host()
        d.b.link(d.host, "tun0", kind="tun", address="10.99.0.2/24")
        d.b.route(d.host, "172.16.0.0/12", gateway="10.99.0.1", dev="tun0")
        d.b.route(d.host, "172.18.5.0/24", gateway="10.99.0.1", dev="tun0")
        d.b.route(d.host, "100.64.0.0/10", gateway="10.99.0.1", dev="tun0")  # no network's
        for dst in extra:
            d.b.route(d.host, dst, gateway="10.99.0.1", dev="tun0")
        return [(f.subject, f.message) for f in run_rule("overlapping-subnets", d.build())]

    filed = findings()
    assert {subject for subject, _ in filed} == {"docker0", "br-web", "br-int"}
    assert any("traffic to 172.18.5.0/24 takes tun0" in message for _, message in filed)
    assert findings("203.0.113.9") == filed  # a documentation address, never sent to


def test_overlay_subnet_overlapping_its_underlay():
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="10.0.0.10/16")
    overlay = b.namespace("1-abcdef1234")
    b.bridge(overlay, "br0", "10.0.1.1/24")
    b.vxlan(overlay, "vxlan0", vni=4096, master="br0", moved=True)
    findings = run_rule("overlapping-subnets", b.build())
    (finding,) = findings
    assert finding.subject == "vxlan0" and finding.namespace.id == overlay
    assert "overlay subnet 10.0.1.0/24" in finding.message
    assert "10.0.0.0/16 on eth0" in finding.message
    assert finding.related == (host,)


def test_nested_pairs_finds_every_containing_block_in_sorted_order():
    items = [(0, 255, "a/24"), (0, 15, "a/28"), (16, 31, "b/28"), (256, 511, "c/24"),
             (0, 65535, "x/16")]
    pairs = set(nested_pairs(items))
    assert pairs == {("x/16", "a/24"), ("x/16", "a/28"), ("a/24", "a/28"), ("x/16", "b/28"),
                     ("a/24", "b/28"), ("x/16", "c/24")}
