"""The rules that read firewalls, on native nftables tables from the corpus (fixtures).

The host is Docker 29's usernet-portmap example (tests/corpus/nftables/docker29-usernet-
portmap.nft, moby's generated nftables documentation): docker0 without containers, the user
network bridge1 (192.0.2.0/24) with container c1 at 192.0.2.2 publishing 8080 → 80, eth0
towards the world. Its firewall is the corpus ruleset as the collector reads it: listed with
`nft -j` / `nft -a` from a namespace it was loaded into (tests/corpus/nftables/listed/) and
parsed by the collector's own parser. The broken twin adds Arch Linux's default
/etc/nftables.conf (tests/corpus/nftables/archlinux-default.nft): its `inet filter` forward
chain has policy drop and knows nothing of Docker, and a packet must pass every base chain of
a hook — Docker's accepts in its own table do not save it. Another broken twin lost the rules
of Docker's filter-forward-in__bridge1 chain (flushed, as a partial firewall reload does).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netdiag.checks import engine
from netdiag.checks.docker import docker_network_rules_missing, docker_port_unpublished
from netdiag.checks.firewall import bridge_isolation_broken
from netdiag.checks.flows import expected_flow_blocked
from netdiag.checks.forwarding import forward_policy_drop
from netdiag.collect.nftables import parse_ruleset
from netdiag.model import Firewall
from netdiag.model.docker import (
    DockerContainer,
    DockerEndpoint,
    DockerEngine,
    DockerIpam,
    DockerNetwork,
    DockerPort,
)
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.scenarios import EMBEDDED_DNS_NAT
from tests.unit.rules.part2_fixtures import amend, run

LISTED = Path(__file__).parents[2] / "corpus" / "nftables" / "listed"
HEALTHY = "docker29-usernet-portmap"
WITH_ARCH_DEFAULT = "docker29-usernet-portmap+archlinux-default"
# Docker 29's bridge1 isolation lost: its filter-forward-in__bridge1 chain flushed
FLUSHED_FORWARD_IN = "docker29-usernet-portmap+flushed-forward-in"
ARCH_DEFAULT = "archlinux-default"
# Arch's default with `iifname "bridge*" accept` added to its forward chain
ARCH_BRIDGE_WILDCARD = "archlinux-default+bridge-wildcard"


def nft_firewall(listed: str) -> Firewall:
    tables, chains, rules, sets = parse_ruleset((LISTED / f"{listed}.json").read_text(),
                                                (LISTED / f"{listed}.txt").read_text())
    return Firewall(nft_tables=tables, nft_chains=chains, nft_rules=rules, nft_sets=sets)


def docker29_intent(host: int, c1: int) -> DockerEngine:
    def network(name: str, bridge: str, subnet: str, gateway: str) -> DockerNetwork:
        return DockerNetwork(id=f"{name}0123456789abcdef", name=name, driver="bridge",
                             ipam=(DockerIpam(subnet, gateway),),
                             options=(("com.docker.network.bridge.name", bridge),))

    port = DockerPort(container_port=80, protocol="tcp", host_port=8080)
    return DockerEngine(
        url="unix:///var/run/docker.sock", namespace=host, pid=10, name="test",
        version="29.0.0", networks=(
            network("bridge", "docker0", "172.17.0.0/16", "172.17.0.1"),
            network("bridge1", "bridge1", "192.0.2.0/24", "192.0.2.1")),
        containers=(DockerContainer(
            id="c" * 64, name="c1", state="running", pid=200, netns=c1,
            network_mode="bridge1", ports=(port,), bound=(replace(port, host_ip="0.0.0.0"),),
            endpoints=(DockerEndpoint("bridge1", "bridge10123456789abcdef", ip="192.0.2.2",
                                      prefixlen=24, gateway="192.0.2.1"),)),))


def docker29_host(listed: str):
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="10.99.0.1/24")
    b.route(host, "default", gateway="10.99.0.2", dev="eth0", protocol="dhcp")
    b.sysctl(host, "net.ipv4.ip_forward", 1)
    b.sysctl(host, "net.ipv4.ip_local_port_range", "32768\t60999")
    b.bridge(host, "docker0", "172.17.0.1/16", oper_state="down")  # no containers: no carrier
    b.bridge(host, "bridge1", "192.0.2.1/24")
    c1 = b.container("c1")
    b.veth(c1, "eth0", host, "veth1a2b3c4", address="192.0.2.2/24", peer_master="bridge1")
    b.route(c1, "default", gateway="192.0.2.1", dev="eth0")
    b.sysctl(c1, "net.ipv4.ip_forward", 0)
    b.socket(c1, "tcp", "0.0.0.0", 80, process="httpd", pid=200)
    b.socket(c1, "tcp", "127.0.0.11", 41234, process="dockerd", pid=10)
    b.socket(c1, "udp", "127.0.0.11", 39871, process="dockerd", pid=10)
    for line in EMBEDDED_DNS_NAT.splitlines():
        b.iptables(c1, "nat", line)
    b.socket(host, "tcp", "0.0.0.0", 8080, process="docker-proxy", pid=300)
    b.socket(host, "tcp", "0.0.0.0", 22, process="sshd", pid=1)
    b.docker.append(docker29_intent(host, c1))
    return amend(b.build(), host, firewall=nft_firewall(listed)), host


def bridge_host(listed: str):
    """A host with a bridge (one running port) and no engine: a KVM or LXC bridge."""
    b = SnapshotBuilder()
    host = b.host()
    b.sysctl(host, "net.ipv4.ip_forward", 1)
    b.bridge(host, "bridge1", "192.0.2.1/24").link(host, "vnet0", master="bridge1")
    return amend(b.build(), host, firewall=nft_firewall(listed))


def loud(snapshot) -> list[tuple]:
    report = engine.run(snapshot)
    assert not report.unknown, report.unknown
    return [(f.rule, f.subject, f.message) for f in report.findings if f.severity.rank >= 1]


def test_the_corpus_tables_are_read_as_native_nftables():
    snapshot, host = docker29_host(HEALTHY)
    firewall = snapshot.namespace(host).firewall
    assert {(t.family, t.name, t.origin) for t in firewall.nft_tables} == {
        ("ip", "docker-bridges", "nft")}
    assert not firewall.iptables_rules


def test_a_healthy_docker_29_host_is_quiet():
    snapshot, _ = docker29_host(HEALTHY)
    assert loud(snapshot) == []


def test_forward_policy_drop_pair():
    healthy, _ = docker29_host(HEALTHY)
    assert run(forward_policy_drop, healthy) == []
    broken, _ = docker29_host(WITH_ARCH_DEFAULT)
    found = run(forward_policy_drop, broken)
    assert [(f.subject, f.message) for f in found] == [(
        "bridge1", "nftables chain inet filter/forward (hook forward, policy drop) has no rule "
        "for bridge1: its traffic is dropped")]


def test_forward_policy_drop_follows_wildcards_sets_and_maps():
    """A bridge let through by `iifname "bridge*"` is not named in any rule's text: the flow
    model, which runs the chain, sees that it accepts the bridge's traffic."""
    (finding,) = run(forward_policy_drop, bridge_host(ARCH_DEFAULT))
    assert finding.subject == "bridge1"
    assert run(forward_policy_drop, bridge_host(ARCH_BRIDGE_WILDCARD)) == []


def test_expected_flows_pair():
    """Docker's promises on the healthy host all hold; with Arch's forward chain, a client
    beyond the host no longer reaches the published port, nor c1 the world."""
    healthy, _ = docker29_host(HEALTHY)
    assert run(expected_flow_blocked, healthy) == []
    broken, _ = docker29_host(WITH_ARCH_DEFAULT)
    found = {f.subject: f.message for f in run(expected_flow_blocked, broken)}
    forward_drop = "denied in host at nft inet filter forward policy"
    assert forward_drop in found.pop("tcp 198.51.100.7:43210 → 10.99.0.1:8080")  # DNATed
    assert forward_drop in found.pop("tcp 192.0.2.2:43210 → 198.51.100.7:443")
    # c1 to its own published port goes to docker-proxy on the host: Arch's input rejects
    assert "reject by nft inet filter input handle" in found.pop(
        "tcp 192.0.2.2:43210 → 10.99.0.1:8080")
    assert found == {}


def test_bridge_isolation_pair():
    """Docker 29 isolates its networks by dropping, in each bridge's filter-forward-in chain,
    what is neither ICC nor a published port; without that chain's rules, docker0 reaches
    bridge1 (judged by the flow model on probes to an unpublished port)."""
    healthy, _ = docker29_host(HEALTHY)
    assert run(bridge_isolation_broken, healthy) == []
    broken, _ = docker29_host(FLUSHED_FORWARD_IN)
    found = run(bridge_isolation_broken, broken)
    assert [(f.subject, f.message) for f in found] == [(
        "bridge1<->docker0", "bridges bridge1 and docker0 are not isolated from each other "
        "(docker0 → bridge1 is forwarded) although Docker isolates its networks from each "
        "other")]
    assert "nft forward chains (ip docker-bridges filter-FORWARD) accept it" in \
        found[0].evidence[2].text


def test_docker_intent_pairs():
    """Docker's intent rules read Docker 29's table (tests/integration/test_docker29_intent.py
    loads each of moby's documents): the healthy host is quiet for them, and without the
    bridge1 masquerade rule, or the DNAT of c1's port, they say so."""
    healthy, host = docker29_host(HEALTHY)
    assert run(docker_network_rules_missing, healthy) == []
    assert run(docker_port_unpublished, healthy) == []

    def without(text: str):
        firewall = healthy.namespace(host).firewall
        return amend(healthy, host, firewall=replace(firewall, nft_rules=tuple(
            r for r in firewall.nft_rules if text not in r.text)))

    (found,) = run(docker_network_rules_missing, without("192.0.2.0/24 counter"))
    assert found.subject == "nft ip docker-bridges" and "192.0.2.0/24" in found.message
    (found,) = run(docker_port_unpublished, without("dnat to 192.0.2.2:80"))
    assert found.subject == "tcp/8080" and "192.0.2.2:80" in found.message
