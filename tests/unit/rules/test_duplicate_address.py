from netdiag.checks.addressing import duplicate_address as rule
from tests.fixtures.builder import SnapshotBuilder
from tests.unit.rules.part2_fixtures import run


def two_containers(web_ip="172.18.0.5/16", api_ip="172.18.0.5/16", api_bridge="br0",
                   web_mac="02:42:ac:12:00:05", api_mac="02:42:ac:12:00:06"):
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br0", "172.18.0.1/16")
    b.bridge(host, "br1", "172.19.0.1/16")
    web = b.container("web")
    api = b.container("api")
    b.veth(web, "eth0", host, "vethweb", peer_master="br0", address=web_ip)
    b.veth(api, "eth0", host, "vethapi", peer_master=api_bridge, address=api_ip)
    b.update_link(web, "eth0", mac=web_mac).update_link(api, "eth0", mac=api_mac)
    b.update_link(host, "vethweb", mac="aa:00:00:00:00:01")
    b.update_link(host, "vethapi", mac="aa:00:00:00:00:02")
    return b.build(), host, web, api


def test_same_ip_on_one_bridge_fires():
    snapshot, host, web, api = two_containers()
    (finding,) = run(rule, snapshot)
    assert finding.subject == "172.18.0.5"
    assert {finding.namespace.id, *finding.related} == {web, api}
    assert {(e.namespace, e.kind, e.key) for e in finding.evidence if e.kind == "address"} == {
        (web, "address", "172.18.0.5/16"), (api, "address", "172.18.0.5/16")}
    assert any(e.kind == "link" and e.key == "br0" and e.namespace == host
               for e in finding.evidence)


def test_same_ip_on_separate_bridges_passes():
    snapshot, *_ = two_containers(api_ip="172.18.0.5/16", api_bridge="br1")
    assert run(rule, snapshot) == []


def test_distinct_ips_and_host_routes_pass():
    snapshot, *_ = two_containers(api_ip="172.18.0.6/16")
    assert run(rule, snapshot) == []
    snapshot, *_ = two_containers(web_ip="10.0.0.9/32", api_ip="10.0.0.9/32")  # a shared VIP
    assert run(rule, snapshot) == []


def test_same_mac_behind_one_bridge_fires():
    snapshot, host, web, api = two_containers(api_ip="172.18.0.6/16",
                                              api_mac="02:42:ac:12:00:05")
    (finding,) = run(rule, snapshot)
    assert finding.namespace.id == host and finding.subject == "br0"
    assert "02:42:ac:12:00:05" in finding.message
    assert {(e.namespace, e.key) for e in finding.evidence} == {(web, "eth0"), (api, "eth0")}


def overlay(task_address: str = ""):
    """Hosts ov1 and ov2 whose br0 are joined by VXLAN 4096; both br0 carry the gateway
    10.0.1.1, as Docker's overlay driver does. With `task_address`, a container on each."""
    b = SnapshotBuilder()
    tasks = []
    for number in (1, 2):
        host = b.namespace(f"ov{number}")
        b.bridge(host, "br0", "10.0.1.1/24")
        b.vxlan(host, "vxlan0", 4096, master="br0")
        if task_address:
            task = b.namespace(f"task{number}")
            b.veth(task, "eth0", host, f"veth{number}", peer_master="br0", address=task_address)
            tasks.append(task)
    return b.build(), tasks


def test_overlay_gateway_on_every_host_passes():
    snapshot, _ = overlay()
    assert run(rule, snapshot) == []


def test_same_address_on_two_overlay_containers_fires():
    snapshot, tasks = overlay(task_address="10.0.1.5/24")
    (finding,) = run(rule, snapshot)
    assert finding.subject == "10.0.1.5"
    assert {finding.namespace.id, *finding.related} == set(tasks)


# --- IPv6 -------------------------------------------------------------------------------------


def dual_stack(web_ip6="fd00:db8::5/64", api_ip6="fd00:db8::6/64", api_bridge="br0",
               api_flags=()):
    """two_containers() with IPv6 beside IPv4 (and their link-local addresses)."""
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br0", "172.18.0.1/16").address(host, "br0", "fd00:db8::1/64")
    b.address(host, "br0", "fe80::1/64")
    b.bridge(host, "br1", "172.19.0.1/16").address(host, "br1", "fe80::1/64")
    web, api = b.container("web"), b.container("api")
    b.veth(web, "eth0", host, "vethweb", peer_master="br0", address="172.18.0.5/16")
    b.veth(api, "eth0", host, "vethapi", peer_master=api_bridge, address="172.18.0.6/16")
    b.address(web, "eth0", web_ip6).address(api, "eth0", api_ip6, flags=api_flags)
    b.address(web, "eth0", "fe80::42:acff:fe12:5/64")
    b.address(api, "eth0", "fe80::42:acff:fe12:6/64")
    b.update_link(web, "eth0", mac="02:42:ac:12:00:05").update_link(api, "eth0",
                                                                     mac="02:42:ac:12:00:06")
    return b.build(), host, web, api


def test_a_healthy_dual_stack_bridge_passes():
    # fe80::1 on both bridges (as routers often have) is no duplicate.
    snapshot, *_ = dual_stack()
    assert run(rule, snapshot) == []


def test_same_ipv6_address_on_one_bridge_fires():
    snapshot, host, web, api = dual_stack(api_ip6="fd00:db8::5/64", api_flags=("dadfailed",))
    (finding,) = run(rule, snapshot)  # one finding, though api's DAD failed as well
    assert finding.subject == "fd00:db8::5"
    assert {finding.namespace.id, *finding.related} == {web, api}
    texts = {e.namespace: e.text for e in finding.evidence if e.kind == "address"}
    assert texts[api].endswith("(its duplicate address detection failed)")
    assert texts[web] == "fd00:db8::5/64 on eth0 in web"


def test_same_ipv6_address_on_separate_bridges_or_as_a_host_route_passes():
    snapshot, *_ = dual_stack(api_ip6="fd00:db8::5/64", api_bridge="br1")
    assert run(rule, snapshot) == []
    snapshot, *_ = dual_stack(web_ip6="fd00:db8::9/128", api_ip6="fd00:db8::9/128")
    assert run(rule, snapshot) == []


def test_an_address_whose_dad_failed_against_someone_unseen():
    snapshot, host, web, api = dual_stack(api_flags=("dadfailed",))
    (finding,) = run(rule, snapshot)
    assert finding.namespace.id == api and finding.subject == "fd00:db8::6"
    assert "failed duplicate address detection" in finding.message
    assert [(e.kind, e.key, e.text) for e in finding.evidence] == [
        ("address", "fd00:db8::6/64", "fd00:db8::6/64 on eth0: dadfailed")]
    assert finding.repair.safety.value == "manual"
