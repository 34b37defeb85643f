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
