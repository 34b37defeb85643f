"""Docker's published UDP ports are promised as its TCP ones are (netdiag/flows/expected.py):
a client beyond the host reaches `-p 5353:5353/udp` at the uplink's address, and the
publishing container reaches it there too; a firewall that drops the datagrams is named by
expected-flow-blocked. The fixture host is tests/fixtures/scenarios.py's, with Docker's rules
for one more published port as it writes them for UDP (`-p udp -m udp`)."""

from dataclasses import replace

import pytest

from netdiag.flows import expected
from netdiag.model.docker import DockerPort
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import DockerHost, docker_host

UDP_ACCEPT = ("-A DOCKER -d 172.18.0.2/32 ! -i br-web -o br-web -p udp -m udp --dport 5353 "
              "-j ACCEPT")
UDP_DNAT = ("-A DOCKER ! -i br-web -p udp -m udp --dport 5353 -j DNAT --to-destination "
            "172.18.0.2:5353")
CLIENT_FLOW = "a client beyond the host reaches web's published port 192.168.1.10:5353/udp"


def _publishing_udp(layout: str) -> DockerHost:
    """docker_host() whose web container also publishes 5353/udp: the filter ACCEPT beside
    the TCP one, the DNAT, docker-proxy's UDP socket on the host and dnsmasq's in web."""
    d = docker_host(layout)
    rules = d.b._fields[d.host]["iptables_rules"]
    lines = [r.text for r in rules if r.table == "filter"]
    d.b._fields[d.host]["iptables_rules"] = [r for r in rules if r.table != "filter"]
    for line in lines:  # in Docker's order: the port's ACCEPT before the bridge's DROP
        d.b.iptables(d.host, "filter", line)
        if line.startswith("-A DOCKER -d 172.18.0.2/32"):
            d.b.iptables(d.host, "filter", UDP_ACCEPT)
    d.b.iptables(d.host, "nat", UDP_DNAT)
    d.b.socket(d.host, "udp", "0.0.0.0", 5353, process="docker-proxy", pid=301)
    d.b.socket(d.web, "udp", "0.0.0.0", 5353, process="dnsmasq", pid=202)
    web = next(c for c in d.b.docker[0].containers if c.name == "web")
    port = DockerPort(container_port=5353, protocol="udp", host_port=5353)
    d.container_intent("web", ports=web.ports + (port,),
                       bound=web.bound + (replace(port, host_ip="0.0.0.0"),))
    return d


@pytest.mark.parametrize("layout", ["classic", "modern"])
def test_a_published_udp_port_is_promised_and_kept(layout):
    d = _publishing_udp(layout)
    snapshot = d.build()
    promised = {e.what: e for e in expected.expectations(snapshot)}
    assert promised[CLIENT_FLOW].packet.proto == "udp"
    assert "publishes udp 5353 → 5353" in promised[CLIENT_FLOW].said
    assert promised["web reaches its own published port 192.168.1.10:5353/udp"].packet.proto \
        == "udp"
    # the TCP port's promise reads as before
    assert "a client beyond the host reaches web's published port 192.168.1.10:8080" in promised
    assert run_rule("expected-flow-blocked", snapshot) == []


def test_a_drop_of_the_datagrams_names_the_udp_flow_and_the_rule():
    d = _publishing_udp("classic")
    rules = d.b._fields[d.host]["iptables_rules"]
    d.b._fields[d.host]["iptables_rules"] = [r for r in rules if r.chain != "DOCKER-USER"]
    d.b.iptables(d.host, "filter", "-A DOCKER-USER -p udp -m udp --dport 5353 -j DROP")
    d.b.iptables(d.host, "filter", "-A DOCKER-USER -j RETURN")
    [finding] = run_rule("expected-flow-blocked", d.build())
    # the client's datagram is forwarded to web and dropped; web's own, to the host's
    # address, is docker-proxy's (INPUT), which DOCKER-USER does not see
    assert finding.subject == "udp 198.51.100.7:43210 → 192.168.1.10:5353"
    assert CLIENT_FLOW in finding.message
    assert "denied in host at filter/DOCKER-USER/1" in finding.message
