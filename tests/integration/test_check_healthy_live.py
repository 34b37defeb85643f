"""End to end: healthy topologies in real namespaces produce no warning or error — a bridge
network with a published port (Docker's classic firewall layout, FORWARD policy DROP), a
two-host VXLAN overlay with correct MTUs, and a macvlan network (needs root)."""

from __future__ import annotations

import pytest

from tests.conftest import sh
from tests.fixtures.live import listen, loud, run_check
from tests.integration.test_check_rules_live import (
    bridge,
    container_on_bridge,
    two_vxlan_hosts,
    veth,
)

pytestmark = pytest.mark.integration

CLASSIC_RULES = """\
*filter
:FORWARD DROP [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o br0 -j DOCKER
-A FORWARD -i br0 ! -o br0 -j ACCEPT
-A FORWARD -i br0 -o br0 -j ACCEPT
-A DOCKER -d 10.210.0.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i br0 ! -o br0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o br0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 10.210.0.0/24 ! -o br0 -j MASQUERADE
-A DOCKER -i br0 -j RETURN
-A DOCKER ! -i br0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.210.0.2:80
COMMIT
"""


def test_bridge_network_with_a_published_port(netns_factory, tmp_path):
    host, wan = netns_factory("host"), netns_factory("wan")
    veth(host, "up0", wan, "eth0")
    sh(f"ip -n {host} addr add 10.211.0.1/24 dev up0")
    sh(f"ip -n {wan} addr add 10.211.0.2/24 dev eth0")
    sh(f"ip -n {host} route add default via 10.211.0.2 && ip -n {wan} route add default dev eth0")
    for router in (host, wan):  # wan stands for the upstream router
        sh(f"ip netns exec {router} sysctl -qw net.ipv4.ip_forward=1")
    bridge(host, "br0", "10.210.0.1/24")
    web = container_on_bridge(netns_factory, host, "br0", "web", "10.210.0.2/24", "10.210.0.1")
    db = container_on_bridge(netns_factory, host, "br0", "db", "10.210.0.3/24", "10.210.0.1")
    listen(web, 80)
    rules = tmp_path / "rules"
    rules.write_text(CLASSIC_RULES)
    sh(f"ip netns exec {host} iptables-restore < {rules}")
    code, report = run_check(host, wan, web, db)
    assert loud(report) == [] and code == 0


def test_two_host_vxlan_overlay_with_correct_mtus(netns_factory):
    h1, h2 = two_vxlan_hosts(netns_factory, 1450, 1450)
    names = [h1, h2]
    for host, address in ((h1, "10.220.0.1/24"), (h2, "10.220.0.2/24")):
        bridge(host, "br0")
        sh(f"ip -n {host} link set vx0 master br0")
        names.append(container_on_bridge(netns_factory, host, "br0", f"c{address[9]}", address,
                                         mtu=1450))
    code, report = run_check(*names)
    assert loud(report) == [] and code == 0


def test_macvlan_network(netns_factory):
    host, lan = netns_factory("host"), netns_factory("lan")
    # This kernel has no dummy interfaces: a veth is the macvlan parent.
    veth(host, "p0", lan, "eth0")
    sh(f"ip -n {lan} addr add 10.230.0.1/24 dev eth0")
    names = [host, lan]
    for i in (1, 2):
        child = netns_factory(f"m{i}")
        sh(f"ip -n {host} link add mv{i} link p0 type macvlan mode bridge")
        sh(f"ip -n {host} link set mv{i} netns {child}")
        sh(f"ip -n {child} addr add 10.230.0.1{i}/24 dev mv{i} && ip -n {child} link set mv{i} up")
        sh(f"ip -n {child} route add default via 10.230.0.1")
        names.append(child)
    code, report = run_check(*names)
    assert loud(report) == [] and code == 0
