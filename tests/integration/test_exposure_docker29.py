"""The exposure table and ND931 on Docker 29's nftables backend, against a real scan.

Docker 29 cannot run here; its datapath can: moby's own ruleset for a published port
(tests/corpus/nftables/docker29-usernet-portmap.nft: moby/moby, integration/network/bridge/
nftablesdoc/generated/usernet-portmap.md — `table ip docker-bridges`, c1 at 192.0.2.2 on
bridge1 publishing 8080 → 80) is loaded with `nft -f` into a host namespace of ours wired
as that document's host: eth0 10.99.0.1/24 to a LAN namespace (10.99.0.2, which routes
192.0.2.0/24 to the host), bridge1 192.0.2.1/24 with c1's namespace behind a veth. Listeners:
c1 on 80 (and udp 53 and 80, echoing), the host on 22 and 5433 (and udp 53). The snapshot
is read by the collector, with the intent Docker would report for that host
(tests/unit/rules/test_native_nftables_rules.py).

Then the host's INPUT intent as nftables users write it, in a table of its own
(`inet filter`, input policy drop, ssh and replies accepted, no forward chain) — or none, the
healthy host. The LAN connects to every address × port the table names (and the test's
ports) over TCP and UDP, inside the test's namespaces only; what answered must be what the
table says an eth0 client reaches. With the input policy, ND931 warns about 8080, naming
Docker's dnat rule, the input policy and eth0; without it, nothing.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from netdiag.checks.exposure_model import BYPASS, PUBLIC, UPLINK, exposures
from tests.conftest import pings, sh
from tests.fixtures.rules import run_rule
from tests.integration.test_exposure import agree, scan_tcp_udp
from tests.real_flows import listen, snapshot_of
from tests.unit.rules.test_native_nftables_rules import docker29_intent

pytestmark = [pytest.mark.integration]

DOCKER29 = Path(__file__).parents[1] / "corpus" / "nftables" / "docker29-usernet-portmap.nft"
HOST, LAN, C1 = "10.99.0.1", "10.99.0.2", "192.0.2.2"
PORTS = (22, 80, 5433, 8080)
# What `nft` users write for "only ssh comes in" (the input half of Arch's default
# /etc/nftables.conf, tests/corpus/nftables/archlinux-default.nft), and no forward chain.
INPUT_DROP = """table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state invalid drop
		ct state { established, related } accept
		iif "lo" accept
		meta l4proto { icmp, ipv6-icmp } accept
		tcp dport 22 accept
	}
}
"""


@pytest.fixture
def docker29_host(netns_factory):
    host, c1, lan = netns_factory("x29-host"), netns_factory("x29-c1"), netns_factory("x29-lan")
    sh(f"ip -n {host} link add eth0 type veth peer name eth0 netns {lan}")
    sh(f"ip -n {host} addr add {HOST}/24 dev eth0 && ip -n {host} link set eth0 up")
    sh(f"ip -n {lan} addr add {LAN}/24 dev eth0 && ip -n {lan} link set eth0 up")
    sh(f"ip -n {lan} route add 192.0.2.0/24 via {HOST}")
    sh(f"ip -n {host} link add bridge1 type bridge && ip -n {host} addr add 192.0.2.1/24 "
       f"dev bridge1 && ip -n {host} link set bridge1 up")
    sh(f"ip -n {host} link add veth1a2b3c4 type veth peer name eth0 netns {c1}")
    sh(f"ip -n {host} link set veth1a2b3c4 master bridge1 up")
    sh(f"ip -n {c1} addr add {C1}/24 dev eth0 && ip -n {c1} link set eth0 up")
    sh(f"ip -n {c1} route add default via 192.0.2.1")
    sh(f"ip netns exec {host} sysctl -qw net.ipv4.ip_forward=1")
    sh(f"ip netns exec {host} nft -f {DOCKER29}")
    for ns in (host, c1):  # a closed UDP port's ICMP error at once, however many
        sh(f"ip netns exec {ns} sysctl -qw net.ipv4.icmp_ratemask=0")
    servers = [listen(c1, tcp=(80,), udp=(53, 80)), listen(host, tcp=(22, 5433), udp=(53,))]
    # Neighbours resolved before the scan (see test_exposure_ipv6.py), before any INPUT
    # policy: the healthy host answers pings on both sides.
    assert pings(lan, HOST, wait=5) and pings(host, C1, wait=5)
    try:
        yield host, c1, lan
    finally:
        for server in servers:
            server.kill()
            server.wait()


def read(host: str, c1: str, lan: str):
    """The snapshot of the three namespaces, with the intent Docker reports for the host."""
    snapshot, ids = snapshot_of({"host": host, "c1": c1, "lan": lan})
    engine = replace(docker29_intent(ids["host"], ids["c1"]), pid=os.getpid())
    return replace(snapshot, docker=(engine,)), ids


def from_eth0(snapshot, host_id: int) -> tuple[set, set]:
    """(what the table says an eth0 client reaches, as (address, port, protocol), every
    address it names)."""
    reached, named = set(), set()
    for entry in exposures(snapshot):
        for door in entry.doors:
            named.add(door.address)
            if (door.source, door.where, door.host) == (UPLINK, "eth0", host_id):
                reached.add((door.address, door.port, door.protocol))
    return reached, named


@pytest.mark.parametrize("input_policy", (True, False), ids=("inet-input-drop", "healthy"))
def test_docker29_exposure_matches_a_real_scan_and_nd931_names_the_bypass(docker29_host,
                                                                          input_policy):
    host, c1, lan = docker29_host
    if input_policy:
        subprocess.run(["ip", "netns", "exec", host, "nft", "-f", "-"], input=INPUT_DROP,
                       text=True, check=True)
    snapshot, ids = read(host, c1, lan)
    reached, named = from_eth0(snapshot, ids["host"])
    # Only what the LAN routes to the host: its eth0 address and bridge1's network.
    addresses = {HOST, "192.0.2.1", C1} | {a for a in named if a.startswith("192.0.2.")}
    ports, silent = set(PORTS) | {53}, []
    answered = scan_tcp_udp(lan, addresses, ports, silent)
    reached = {t for t in reached if t[0] in addresses}
    agree(f"docker29 input_policy={input_policy}", answered, reached,
          len(addresses) * len(ports) * 2, silent)
    # What the datapath means, so a model and a scan that agree on nothing cannot pass.
    assert {(HOST, 8080, "tcp"), (HOST, 22, "tcp")} <= answered
    assert not {(C1, 80, "tcp"), (C1, 53, "udp")} & answered  # raw drop
    assert ((HOST, 5433, "tcp") in answered) is not input_policy
    assert ((HOST, 53, "udp") in answered) is not input_policy
    risk = next(e.risk for e in exposures(snapshot)
                if e.namespace.id == ids["c1"] and e.socket.port == 80)
    found = run_rule("exposure-firewall-bypass", snapshot)
    if not input_policy:
        assert risk == PUBLIC and found == []
        return
    assert risk == BYPASS
    (finding,) = found
    assert finding.subject == "tcp/8080"
    assert "nft ip docker-bridges nat-prerouting-and-output handle" in finding.message
    assert "(nft inet filter input policy)" in finding.message
    assert "eth0's network" in finding.message and f"({C1}:80)" in finding.message
