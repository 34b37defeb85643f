from dataclasses import replace

from netdiag.checks.dns import dns_unreachable as rule
from netdiag.model import DnsConfig, DnsProbe, EmbeddedDns, Gap, NftRule, Probes
from tests.fixtures.builder import SnapshotBuilder
from tests.unit.rules.part2_fixtures import amend, run

EMBEDDED = EmbeddedDns(udp_port=41234, tcp_port=38511)


def container(default_route: bool = True, sockets: bool = True):
    b = SnapshotBuilder()
    host = b.host()
    b.bridge(host, "br0", "172.18.0.1/16")
    web = b.container("web")
    b.veth(web, "eth0", host, "veth1", master="", peer_master="br0", address="172.18.0.2/16")
    if default_route:
        b.route(web, "default", gateway="172.18.0.1", dev="eth0")
    if sockets:
        b.socket(web, "udp", "127.0.0.11", 41234, process="dockerd")
        b.socket(web, "tcp", "127.0.0.11", 38511, process="dockerd")
    return b, web


def with_dns(b, ns, *servers, embedded=None, source="/proc/4242/root/etc/resolv.conf"):
    return amend(b.build(), ns, dns=DnsConfig(source=source, nameservers=servers,
                                               embedded=embedded))


def test_nameserver_without_route_fires():
    b, web = container(default_route=False)
    (finding,) = run(rule, with_dns(b, web, "10.9.9.9"))
    assert finding.namespace.id == web and finding.subject == "10.9.9.9"
    assert "no route" in finding.message
    assert finding.evidence[0].kind == "dns" and finding.evidence[0].key == "nameserver 10.9.9.9"


def test_nameserver_with_default_route_passes():
    b, web = container()
    assert run(rule, with_dns(b, web, "10.9.9.9", "172.18.0.1")) == []


def test_blackhole_route_fires():
    b, web = container()
    b.route(web, "10.9.0.0/16", type="blackhole")
    (finding,) = run(rule, with_dns(b, web, "10.9.9.9"))
    assert "blackhole" in finding.message
    assert finding.evidence[1].kind == "route" and finding.evidence[1].key == "10.9.0.0/16"


def test_embedded_without_nat_rules_fires():
    b, web = container()
    (finding,) = run(rule, with_dns(b, web, "127.0.0.11"))
    assert finding.subject == "127.0.0.11"
    assert "NAT rules" in finding.message
    assert finding.evidence[1].key == "nat/DOCKER_OUTPUT"


def test_embedded_with_rules_and_listeners_passes():
    b, web = container()
    assert run(rule, with_dns(b, web, "127.0.0.11", embedded=EMBEDDED)) == []


def test_embedded_without_listener_fires():
    b, web = container(sockets=False)
    (finding,) = run(rule, with_dns(b, web, "127.0.0.11", embedded=EMBEDDED))
    assert "nothing listens on udp port 41234, tcp port 38511" in finding.message
    assert {e.key for e in finding.evidence if e.kind == "socket"} == {"udp/41234", "tcp/38511"}


def test_unread_firewall_or_sockets_is_not_a_finding():
    b, web = container(sockets=False)
    snapshot = with_dns(b, web, "127.0.0.11")
    snapshot = replace(snapshot, gaps=(Gap("firewall", "error", "iptables failed", web),))
    assert run(rule, snapshot) == []
    snapshot = with_dns(b, web, "127.0.0.11", embedded=EMBEDDED)
    snapshot = replace(snapshot, gaps=(Gap("sockets", "permission", "denied", web),))
    assert run(rule, snapshot) == []


def test_only_first_three_nameservers_count():
    b, web = container(default_route=False)
    snapshot = with_dns(b, web, "172.18.0.1", "172.18.0.1", "172.18.0.1", "10.9.9.9")
    assert run(rule, snapshot) == []


def test_probe_without_answer_fires_and_answer_passes():
    b, web = container()
    snapshot = with_dns(b, web, "172.18.0.1")
    silent = DnsProbe(namespace=web, server="172.18.0.1", query=".", error="timeout")
    (finding,) = run(rule, replace(snapshot, probes=Probes(dns=(silent,))))
    assert "did not answer" in finding.message
    assert finding.evidence[-1].kind == "probe" and "timeout" in finding.evidence[-1].text
    answered = replace(silent, answered=True, rcode="NOERROR", error="")
    assert run(rule, replace(snapshot, probes=Probes(dns=(answered,)))) == []


def test_bare_namespace_showing_the_hosts_file_is_not_judged():
    b, web = container(default_route=False)
    assert run(rule, with_dns(b, web, "10.9.9.9", source="/etc/resolv.conf")) == []
    assert len(run(rule, with_dns(b, web, "10.9.9.9", source="/etc/netns/web/resolv.conf"))) == 1


def test_embedded_redirected_by_native_nftables_is_not_called_missing():
    b, web = container()
    snapshot = with_dns(b, web, "127.0.0.11")
    rule_text = "ip daddr 127.0.0.11 udp dport 53 dnat ip to 127.0.0.11:41234"
    nft = NftRule(family="ip", table="docker-dns", chain="output", handle=4, text=rule_text)
    state = snapshot.namespace(web)
    snapshot = amend(snapshot, web, firewall=replace(state.firewall, nft_rules=(nft,)))
    assert run(rule, snapshot) == []


def test_network_none_container_with_the_hosts_nameserver_passes():
    b = SnapshotBuilder()
    b.host()
    isolated = b.container("isolated")  # loopback only, like `docker run --network none`
    assert run(rule, with_dns(b, isolated, "10.255.255.53")) == []


def test_network_none_container_with_a_dead_local_nameserver_fires():
    b = SnapshotBuilder()
    b.host()
    isolated = b.container("isolated")
    (finding,) = run(rule, with_dns(b, isolated, "127.0.0.53"))
    assert finding.subject == "127.0.0.53"
