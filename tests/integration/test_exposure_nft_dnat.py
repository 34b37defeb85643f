"""The exposure table against a real scan, over TCP and UDP, on hosts whose port forwards are
written in native nftables in the forms nft users write (not Docker's one `tcp dport N dnat
to` per port).

The rulesets, each loaded with `nft -f` into the host namespace:

* FORMS (below): one rule of each form nftables' own tests give a `dnat` (netfilter's
  nftables, tests/py/ip/dnat.t: a port set, a range, `ip daddr . tcp dport` map keys, a map
  keyed by the port whose data is `address . port`) and the nftables wiki's named map
  (wiki.nftables.org, "Maps": `porttoip`, here keyed by a UDP port); `th dport` with and
  without `meta l4proto` (firewalld forwards a port for each protocol so, and
  a DNS forward for both); and a chain behind `fib daddr type local`, as Docker and netavark
  guard theirs. Only this test's addresses;
* tests/corpus/nftables/debian-nat.nft: Debian's nat example (an address map and a port map
  keyed by the TCP port, and a SNAT map);
* tests/corpus/nftables/netavark-bridge-portmap.nft: netavark's port mapping;
* tests/corpus/nftables/firewalld-zones.nft: firewalld's zones, with a forward-port to
  192.0.2.2:22, a redirect of 222 to the host's 22, and an input that rejects all but its
  services;
* tests/corpus/nftables/kube-proxy-services.nft: kube-proxy's nftables mode, whose node
  ports' DNATs (`meta l4proto tcp dnat to 192.0.2.2:80`) name no port: a verdict map keyed
  by `meta l4proto . th dport` leads to them.

The host (as tests/integration/test_nftables_corpus.py's, which these rulesets name): eth0
10.99.0.1/24 to a LAN namespace (10.99.0.2, which routes both bridges' networks to the host),
docker0 172.17.0.1/16 with c0 (172.17.0.2) and bridge1 192.0.2.1/24 with c1 (192.0.2.2), each
behind a veth, IP forwarding on. Listeners, echoing UDP: c0 and c1 on tcp 22, 53 and 80 and
udp 53 and 80 (c1 also on 192.0.2.9, where Debian's map sends port 3000); the host on tcp 22
and 5433 and udp 53. ICMP errors are not rate-limited in these namespaces (`icmp_ratemask`
0), so that every closed UDP port answers "port unreachable" at once, as every closed TCP
port a reset and firewalld's rejects an ICMP error: each negative is an answer, none a wait
(the test fails on a probe left unanswered, but for a drop a ruleset means: DROPS).

The LAN connects to (TCP) and sends a datagram to (UDP) every address × port the table names
and the test's own, inside the test's namespaces only; what answered must be what the table
says an eth0 client reaches, port for port, for both protocols.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from netdiag.checks.exposure_model import UPLINK, exposures, published_ports
from tests.conftest import NetnsFactory, pings, sh
from tests.integration.test_exposure import agree, scan_tcp_udp
from tests.real_flows import listen, snapshot_of, wait_for_carriers

pytestmark = [pytest.mark.integration]

CORPUS = Path(__file__).parents[1] / "corpus" / "nftables"
HOST, LAN, C0, C1 = "10.99.0.1", "10.99.0.2", "172.17.0.2", "192.0.2.2"
ADDRESSES = (HOST, "172.17.0.1", "192.0.2.1", C0, C1, "192.0.2.9")
PORTS = (22, 53, 80, 222, 5433, 9999)
FORMS = """table ip ndt_forms {
	map udp-forwards {
		type inet_service : ipv4_addr . inet_service
		elements = { 6053 : 192.0.2.2 . 53 }
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local jump local-only
		tcp dport { 8080, 8443 } dnat to 192.0.2.2:80
		meta l4proto { tcp, udp } th dport 53 dnat to 172.17.0.2
		th dport 80 dnat to 192.0.2.2
		tcp dport 8000-8002 dnat to 172.17.0.2:80
		dnat to tcp dport map { 7080 : 172.17.0.2 . 22, 7081 : 192.0.2.2 . 80 }
		dnat to udp dport map @udp-forwards
		dnat ip to ip daddr . tcp dport map { 10.99.0.1 . 6080 : 192.0.2.2 . 80,
						192.0.2.1 . 6081 : 172.17.0.2 . 80 }
		dnat ip to ip daddr . udp dport map { 10.99.0.1 . 6054 : 172.17.0.2 . 53 }
	}

	chain local-only {
		tcp dport 9080 dnat to 192.0.2.2:80
		udp dport 9053 dnat to 192.0.2.2:53
	}
}
"""
RULESETS = {"forms": FORMS, **{name: (CORPUS / f"{name}.nft").read_text() for name in (
    "debian-nat", "netavark-bridge-portmap", "firewalld-zones", "kube-proxy-services")}}
# What each ruleset must be seen to publish, so that a model and a scan that agree on
# nothing cannot pass: (address, port, protocol) the LAN reaches.
MEANT = {
    "forms": {(HOST, 8080, "tcp"), (HOST, 8443, "tcp"), (HOST, 53, "udp"), (HOST, 80, "tcp"),
              (HOST, 80, "udp"), (HOST, 8001, "tcp"), (HOST, 7080, "tcp"),
              (HOST, 6053, "udp"), (HOST, 6080, "tcp"), (HOST, 6054, "udp"),
              ("192.0.2.1", 6081, "tcp"), (HOST, 9080, "tcp"), (HOST, 9053, "udp"),
              (C0, 8080, "tcp")},  # forwarded to a container's address: taken all the same
    "debian-nat": {(HOST, 1000, "tcp"), (HOST, 2000, "tcp"), (C1, 2000, "tcp")},
    "netavark-bridge-portmap": {(HOST, 8080, "tcp")},
    "firewalld-zones": {(HOST, 2222, "tcp"), (C0, 2222, "tcp"), (HOST, 222, "tcp")},
    "kube-proxy-services": {(HOST, 3003, "tcp")},  # a node port, to its endpoint c1:80
}
# The drops a ruleset means, the only probes left unanswered (waited for): kube-proxy's node
# port 3001, whose service keeps its traffic on nodes with an endpoint (@no-endpoint-nodeports).
DROPS = {"kube-proxy-services": {(HOST, 3001)}}


@pytest.fixture(scope="module")
def forwarding_host():
    factory = NetnsFactory()
    servers = []
    try:
        names = {role: factory(f"xn-{role}") for role in ("h", "lan", "c0", "c1")}
        h, lan = names["h"], names["lan"]
        for role in ("h", "c0", "c1"):  # every closed port's ICMP error, at once
            sh(f"ip netns exec {names[role]} sysctl -qw net.ipv4.icmp_ratemask=0")
        sh(f"ip netns exec {h} sysctl -qw net.ipv4.ip_forward=1")
        sh(f"ip -n {h} link add eth0 type veth peer name eth0 netns {lan}")
        sh(f"ip -n {h} addr add {HOST}/24 dev eth0 && ip -n {h} link set eth0 up")
        sh(f"ip -n {lan} addr add {LAN}/24 dev eth0 && ip -n {lan} link set eth0 up")
        for bridge, gateway, role, address, subnet in (
                ("docker0", "172.17.0.1", "c0", C0, "172.17.0.0/16"),
                ("bridge1", "192.0.2.1", "c1", C1, "192.0.2.0/24")):
            prefix = subnet.split("/")[1]
            ns = names[role]
            sh(f"ip -n {h} link add {bridge} type bridge && ip -n {h} addr add "
               f"{gateway}/{prefix} dev {bridge} && ip -n {h} link set {bridge} up")
            sh(f"ip -n {h} link add v{role} type veth peer name eth0 netns {ns}")
            sh(f"ip -n {h} link set v{role} master {bridge} up")
            sh(f"ip -n {ns} addr add {address}/{prefix} dev eth0 && ip -n {ns} link set eth0 up")
            sh(f"ip -n {ns} route add default via {gateway}")
            sh(f"ip -n {lan} route add {subnet} via {HOST}")
        # Debian's map also sends port 3000 to 192.0.2.9: c1's too, so that it answers.
        sh(f"ip -n {names['c1']} addr add 192.0.2.9/24 dev eth0")
        wait_for_carriers([(names[role], "eth0") for role in ("lan", "c0", "c1")])
        servers = [listen(names["c0"], tcp=(22, 53, 80), udp=(53, 80)),
                   listen(names["c1"], tcp=(22, 53, 80), udp=(53, 80)),
                   listen(h, tcp=(22, 5433), udp=(53,))]
        # Neighbours resolved before the scan (see test_exposure_ipv6.py).
        assert pings(lan, HOST, wait=5) and pings(h, C0, wait=5) and pings(h, C1, wait=5)
        yield names
    finally:
        for server in servers:
            server.kill()
            server.wait()
        factory.cleanup()


@pytest.mark.parametrize("ruleset", RULESETS)
def test_nft_port_forwards_exposure_matches_a_real_tcp_and_udp_scan(forwarding_host, ruleset):
    names = forwarding_host
    h = names["h"]
    sh(f"ip netns exec {h} nft flush ruleset && ip netns exec {h} conntrack -F")
    subprocess.run(["ip", "netns", "exec", h, "nft", "-f", "-"], input=RULESETS[ruleset],
                   text=True, check=True)
    snapshot, ids = snapshot_of(names)
    table = exposures(snapshot, hosts=[ids["h"]])
    reached = {(d.address, d.port, d.protocol) for e in table for d in e.doors
               if (d.source, d.where, d.host) == (UPLINK, "eth0", ids["h"])
               and d.address in ADDRESSES}
    ports = set(PORTS) | {p.port for p in published_ports(snapshot.namespace(ids["h"]))} | \
        {port for _, port, _ in reached | MEANT[ruleset]}
    silent: list = []
    answered = scan_tcp_udp(names["lan"], set(ADDRESSES), ports, silent)
    agree(ruleset, answered, reached, len(ADDRESSES) * len(ports) * 2, silent)
    assert set(silent) <= DROPS.get(ruleset, set()), "a negative left unanswered: waited for"
    assert MEANT[ruleset] <= answered
    if ruleset == "firewalld-zones":  # its own forward-port of 2222 to c1's ssh: meant
        (ssh,) = [e for e in table if e.namespace.id == ids["c1"]
                  and (e.socket.protocol, e.socket.port) == ("tcp", 22)]
        assert ssh.risk == "public" and any(d.port == 2222 for d in ssh.doors)
    assert any(p == "udp" for _, _, p in answered)  # the containers' echo, at least
