"""The exposure table and ND931 over IPv6, against a real scan: a port Docker 28 publishes on
[::] with ip6tables, under an ip6tables INPUT that drops all but ssh.

Docker is not run: its IPv6 datapath is, in namespaces of ours — the host's rules as Docker
28 writes them with `--ipv6` and ip6tables on (the modern layout of tests/fixtures/
scenarios.py, in ip6tables: DOCKER-FORWARD, the raw PREROUTING drop of the container's own
address, the DNAT of 8080 to [fd71:18::2]:80) loaded with ip6tables-restore, and ufw's shape
of INPUT for IPv6 (policy DROP; lo, replies, ICMPv6 — neighbour discovery — and tcp 22
accepted). The host's eth0 (fd71:99::1/64) faces a LAN namespace (fd71:99::2, which routes
web's fd71:18::/64 to the host); web (fd71:18::2) sits on br-web behind a veth. Listeners:
web on [::]:80 (and udp 53 and 80, echoing), the host on 22 and 5433 (and udp 53). Only ULA
addresses, inside the test's namespaces.

The snapshot is read by the collector, with the intent Docker would report. The LAN connects
to every address × port the table names (and the test's ports); what answered must be what
the table says an eth0 client reaches, and ND931 names the IPv6 bypass.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace

import pytest

from netdiag.checks.exposure_model import BYPASS, UPLINK, exposures
from netdiag.model.docker import (
    DockerContainer,
    DockerEndpoint,
    DockerEngine,
    DockerIpam,
    DockerNetwork,
    DockerPort,
)
from tests.conftest import pings, sh
from tests.fixtures.rules import run_rule
from tests.integration.test_exposure import agree, scan_tcp_udp
from tests.real_flows import listen, snapshot_of

pytestmark = [pytest.mark.integration]

HOST, LAN, WEB, GATEWAY = "fd71:99::1", "fd71:99::2", "fd71:18::2", "fd71:18::1"
PORTS = (22, 80, 5433, 8080)
# Docker 28's rules for br-web with IPv6 (tests/fixtures/scenarios.py's MODERN_FILTER, NAT
# and MODERN_RAW, for IPv6 and this one network), and ufw's INPUT for IPv6.
RULES = f"""*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -d {WEB}/128 ! -i br-web -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s fd71:18::/64 ! -o br-web -j MASQUERADE
-A DOCKER -i br-web -j RETURN
-A DOCKER ! -i br-web -p tcp -m tcp --dport 8080 -j DNAT --to-destination [{WEB}]:80
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-BRIDGE - [0:0]
:DOCKER-CT - [0:0]
:DOCKER-FORWARD - [0:0]
:DOCKER-INTERNAL - [0:0]
:DOCKER-USER - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER -d {WEB}/128 ! -i br-web -o br-web -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER ! -i br-web -o br-web -j DROP
-A DOCKER-BRIDGE -o br-web -j DOCKER
-A DOCKER-CT -o br-web -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A DOCKER-FORWARD -j DOCKER-CT
-A DOCKER-FORWARD -j DOCKER-INTERNAL
-A DOCKER-FORWARD -j DOCKER-BRIDGE
-A DOCKER-FORWARD -i br-web -j ACCEPT
COMMIT
"""


def intent(host: int, web: int) -> DockerEngine:
    port = DockerPort(container_port=80, protocol="tcp", host_port=8080)
    return DockerEngine(
        url="unix:///var/run/docker.sock", namespace=host, pid=os.getpid(), name="test",
        version="28.3.0", networks=(DockerNetwork(
            id="web0123456789abcdef", name="web", driver="bridge", ipv6=True,
            ipam=(DockerIpam("fd71:18::/64", GATEWAY),),
            options=(("com.docker.network.bridge.name", "br-web"),)),),
        containers=(DockerContainer(
            id="w" * 64, name="web", state="running", pid=200, netns=web, network_mode="web",
            ports=(port,), bound=(replace(port, host_ip="::"),),
            endpoints=(DockerEndpoint("web", "web0123456789abcdef", ipv6=WEB),)),))


@pytest.fixture
def ipv6_host(netns_factory):
    host, web, lan = netns_factory("x6-host"), netns_factory("x6-web"), netns_factory("x6-lan")
    sh(f"ip netns exec {host} sysctl -qw net.ipv6.conf.all.forwarding=1")  # before the links
    sh(f"ip -n {host} link add eth0 type veth peer name eth0 netns {lan}")
    sh(f"ip -n {host} link add br-web type bridge")
    sh(f"ip -n {host} link add veth1a2b3c4 type veth peer name eth0 netns {web}")
    sh(f"ip -n {host} link set veth1a2b3c4 master br-web")
    for ns, dev, address in ((host, "eth0", HOST), (lan, "eth0", LAN),
                             (host, "br-web", GATEWAY), (web, "eth0", WEB)):
        sh(f"ip -n {ns} addr add {address}/64 dev {dev} nodad && ip -n {ns} link set {dev} up")
    sh(f"ip -n {host} link set veth1a2b3c4 up")
    sh(f"ip -n {lan} -6 route add fd71:18::/64 via {HOST}")
    sh(f"ip -n {web} -6 route add default via {GATEWAY}")
    subprocess.run(["ip", "netns", "exec", host, "ip6tables-restore"], input=RULES, text=True,
                   check=True)
    for ns in (host, web):  # a closed UDP port's ICMPv6 error at once, however many
        sh(f"ip netns exec {ns} sysctl -qw net.ipv6.icmp.ratelimit=0")
    servers = [listen(web, tcp=(80,), udp=(53, 80)), listen(host, tcp=(22, 5433), udp=(53,))]
    # Neighbours resolved before the scan: a SYN waiting for neighbour discovery on two links
    # under load outlasts the scan's timeout (seen), which is the scan's error, not the host's.
    assert pings(lan, HOST, wait=5) and pings(host, WEB, wait=5)
    try:
        yield host, web, lan
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_ipv6_exposure_matches_a_real_scan_and_nd931_names_the_bypass(ipv6_host):
    host, web, lan = ipv6_host
    snapshot, ids = snapshot_of({"host": host, "web": web, "lan": lan})
    snapshot = replace(snapshot, docker=(intent(ids["host"], ids["web"]),))
    table = exposures(snapshot)
    addresses = {HOST, GATEWAY, WEB}  # what the LAN routes to the host
    reached = {(d.address, d.port, d.protocol) for e in table for d in e.doors
               if (d.source, d.where, d.host) == (UPLINK, "eth0", ids["host"])
               and d.address in addresses}
    ports, silent = set(PORTS) | {53}, []
    answered = scan_tcp_udp(lan, addresses, ports, silent)
    agree("ipv6", answered, reached, len(addresses) * len(ports) * 2, silent)
    # What the datapath means, so a model and a scan that agree on nothing cannot pass.
    assert {(HOST, 8080, "tcp"), (HOST, 22, "tcp"), (GATEWAY, 22, "tcp")} <= answered
    # INPUT's drop (tcp 5433, udp 53), the raw drop (web's own address)
    assert not {(HOST, 5433, "tcp"), (HOST, 53, "udp"), (WEB, 80, "tcp"), (WEB, 53, "udp")} \
        & answered
    web80 = next(e for e in table if e.namespace.id == ids["web"] and e.socket.port == 80)
    assert web80.risk == BYPASS
    (finding,) = run_rule("exposure-firewall-bypass", snapshot)
    assert finding.subject == "tcp/8080" and f"tcp {HOST}:8080" in finding.message
    assert f"web ([{WEB}]:80)" in finding.message and "eth0's network" in finding.message
    assert "nat/DOCKER/2" in finding.message and "filter/INPUT policy DROP" in finding.message
