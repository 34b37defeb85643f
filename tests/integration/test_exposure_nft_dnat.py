"""The exposure table against a real scan, over TCP and UDP, on hosts whose port forwards are
written in native nftables in the forms nft users write (not Docker's one `tcp dport N dnat
to` per port).

The rulesets, each loaded with `nft -f` into the host namespace:

* FORMS (below): one rule of each form nftables' own tests give a `dnat` (netfilter's
  nftables, tests/py/ip/dnat.t: a port set, a range, `ip daddr . tcp dport` map keys, a map
  keyed by the port whose data is `address . port`) and the nftables wiki's named map
  (wiki.nftables.org, "Maps": `porttoip`, here keyed by a UDP port); `th dport` with and
  without `meta l4proto` (firewalld forwards a port for each protocol so, and
  a DNS forward for both); a chain behind `fib daddr type local`, as Docker and netavark
  guard theirs; and an output DNAT for any address (the host's own connections). Only this
  test's addresses;
* FORMS6 (below): the IPv6 forms — an `ip6` table's port set, `th dport` with `meta l4proto`,
  an `ip6 daddr . tcp dport` map, a chain behind `fib daddr type local`, an output DNAT —
  and an `inet` table's `meta nfproto ipv6` dnat and a `redirect` of both families;
* IPTABLES (below, loaded with iptables-nft-restore): hand-written port forwards in nat's
  PREROUTING — for any address, only from eth0 (`-i`, ufw's before.rules' shape), bound to an
  address (`-d`), behind `-m addrtype --dst-type LOCAL` — and one in OUTPUT;
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
10.99.0.1/24 and fd71:99::1/64 to a LAN namespace (10.99.0.2, fd71:99::2, which routes both
bridges' networks to the host), docker0 172.17.0.1/16 and fd71:17::1/64 with c0 (172.17.0.2,
fd71:17::2) and bridge1 192.0.2.1/24 and fd71:2::1/64 with c1 (192.0.2.2, fd71:2::2), each
behind a veth, IPv4 and IPv6 forwarding on (ULA addresses only). Listeners, echoing UDP, on
both families: c0 and c1 on tcp 22, 53 and 80 and udp 53 and 80 (c1 also on 192.0.2.9, where
Debian's map sends port 3000); the host on tcp 22 and 5433 and udp 53. ICMP errors are not
rate-limited in these namespaces (`icmp_ratemask` 0, IPv6's `icmp.ratelimit` 0), so that
every closed UDP port answers "port unreachable" at once, as every closed TCP
port a reset and firewalld's rejects an ICMP error: each negative is an answer, none a wait
(the test fails on a probe left unanswered, but for a drop a ruleset means: DROPS).

The LAN connects to (TCP) and sends a datagram to (UDP) every address × port the table names
and the test's own, IPv4 and IPv6, inside the test's namespaces only; what answered must be
what the table says an eth0 client reaches, port for port, for both protocols. Then the same
from inside the host: from the host itself to every address (127.0.0.1 too) — the table's
"from the host" rows — and from c0 to the host's and c1's addresses and c1 to the host's and
c0's — its rows from the other network on the host (docker0, bridge1: the bridges the
containers route by, Docker not running here) — where prerouting's and output's DNATs for any
address apply too.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from netdiag.checks.exposure_model import (
    FROM_HOST,
    NETWORK,
    UPLINK,
    exposures,
    published_ports,
)
from tests.conftest import NetnsFactory, pings, sh
from tests.integration.test_exposure import agree, scan_tcp_udp
from tests.real_flows import listen, snapshot_of, wait_for_carriers

pytestmark = [pytest.mark.integration]

CORPUS = Path(__file__).parents[1] / "corpus" / "nftables"
HOST, LAN, C0, C1 = "10.99.0.1", "10.99.0.2", "172.17.0.2", "192.0.2.2"
HOST6, LAN6, C06, C16 = "fd71:99::1", "fd71:99::2", "fd71:17::2", "fd71:2::2"
ADDRESSES = (HOST, "172.17.0.1", "192.0.2.1", C0, C1, "192.0.2.9",
             HOST6, "fd71:17::1", "fd71:2::1", C06, C16)
# What each container's neighbour on the other bridge connects to (c0 from docker0, c1 from
# bridge1): the host's addresses and the other's own.
OWN = (HOST, "172.17.0.1", "192.0.2.1", HOST6, "fd71:17::1", "fd71:2::1")
OTHERS = {"c0": ("docker0", (*OWN, C1, "192.0.2.9", C16)), "c1": ("bridge1", (*OWN, C0, C06))}
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

	chain output {
		type nat hook output priority -100; policy accept;
		tcp dport 8090 dnat to 192.0.2.2:80
	}
}
"""
FORMS6 = """table ip6 ndt_forms6 {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local jump local-only
		tcp dport { 8080, 8443 } dnat to [fd71:2::2]:80
		meta l4proto { tcp, udp } th dport 53 dnat to fd71:17::2
		dnat ip6 to ip6 daddr . tcp dport map { fd71:99::1 . 6080 : fd71:2::2 . 80 }
	}

	chain local-only {
		tcp dport 9080 dnat to [fd71:2::2]:80
	}

	chain output {
		type nat hook output priority -100; policy accept;
		tcp dport 8090 dnat to [fd71:2::2]:80
	}
}

table inet ndt_forms_inet {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		meta nfproto ipv6 tcp dport 7080 dnat ip6 to [fd71:17::2]:22
		tcp dport 7443 redirect to :22
	}
}
"""
IPTABLES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 2000 -j DNAT --to-destination 172.17.0.2:80
-A PREROUTING -i eth0 -p tcp -m tcp --dport 2001 -j DNAT --to-destination 192.0.2.2:80
-A PREROUTING -d 10.99.0.1/32 -p tcp -m tcp --dport 2002 -j DNAT --to-destination 192.0.2.2:80
-A PREROUTING -m addrtype --dst-type LOCAL -p tcp --dport 2003 -j DNAT --to-destination 192.0.2.2:80
-A OUTPUT -p tcp -m tcp --dport 2004 -j DNAT --to-destination 192.0.2.2:80
COMMIT
"""
RULESETS = {"forms": FORMS, "forms6": FORMS6, "iptables": IPTABLES, **{
    name: (CORPUS / f"{name}.nft").read_text() for name in (
    "debian-nat", "netavark-bridge-portmap", "firewalld-zones", "kube-proxy-services")}}
# What each ruleset must be seen to publish, so that a model and a scan that agree on
# nothing cannot pass: (address, port, protocol) the LAN reaches.
MEANT = {
    "forms": {(HOST, 8080, "tcp"), (HOST, 8443, "tcp"), (HOST, 53, "udp"), (HOST, 80, "tcp"),
              (HOST, 80, "udp"), (HOST, 8001, "tcp"), (HOST, 7080, "tcp"),
              (HOST, 6053, "udp"), (HOST, 6080, "tcp"), (HOST, 6054, "udp"),
              ("192.0.2.1", 6081, "tcp"), (HOST, 9080, "tcp"), (HOST, 9053, "udp"),
              (C0, 8080, "tcp")},  # forwarded to a container's address: taken all the same
    "forms6": {(HOST6, 8080, "tcp"), (HOST6, 8443, "tcp"), (HOST6, 53, "udp"),
               (HOST6, 6080, "tcp"), (HOST6, 9080, "tcp"), (HOST6, 7080, "tcp"),
               (HOST6, 7443, "tcp"), (HOST, 7443, "tcp"), (C06, 8080, "tcp")},
    "iptables": {(HOST, 2000, "tcp"), (C1, 2000, "tcp"), (HOST, 2001, "tcp"),
                 (C0, 2001, "tcp"), (HOST, 2002, "tcp"), (HOST, 2003, "tcp")},
    "debian-nat": {(HOST, 1000, "tcp"), (HOST, 2000, "tcp"), (C1, 2000, "tcp")},
    "netavark-bridge-portmap": {(HOST, 8080, "tcp")},
    "firewalld-zones": {(HOST, 2222, "tcp"), (C0, 2222, "tcp"), (HOST, 222, "tcp")},
    "kube-proxy-services": {(HOST, 3003, "tcp")},  # a node port, to its endpoint c1:80
}
# The drops a ruleset means, the only probes left unanswered (waited for): kube-proxy's node
# port 3001, whose service keeps its traffic on nodes with an endpoint (@no-endpoint-nodeports);
# firewalld's public zone's `tcp dport 2222 drop`, which over IPv4 its forward-port of 2222
# comes before (a DNAT in prerouting), over IPv6 not (`meta nfproto ipv4`).
DROPS = {"kube-proxy-services": {(HOST, 3001)},
         "firewalld-zones": {(a, 2222) for a in (HOST6, "fd71:17::1", "fd71:2::1")}}
# What each ruleset must be seen to open from inside the host, by a DNAT for any address:
# (where from, address, port, protocol) — the host itself through output, the other bridge's
# container through prerouting.
MEANT_INSIDE = {
    "forms": {("host", C0, 8090, "tcp"), ("c0", C1, 8080, "tcp"), ("c1", C0, 8001, "tcp")},
    "forms6": {("host", C06, 8090, "tcp"), ("c0", C16, 8080, "tcp")},
    "iptables": {("host", C0, 2004, "tcp"), ("host", HOST, 2004, "tcp"),
                 ("c1", C0, 2000, "tcp")},
    "debian-nat": {("c0", C1, 1000, "tcp"), ("c1", C0, 2000, "tcp")},
}


@pytest.fixture(scope="module")
def forwarding_host():
    factory = NetnsFactory()
    servers = []
    try:
        names = {role: factory(f"xn-{role}") for role in ("h", "lan", "c0", "c1")}
        h, lan = names["h"], names["lan"]
        for role in ("h", "c0", "c1"):  # every closed port's ICMP error, at once
            sh(f"ip netns exec {names[role]} sysctl -qw net.ipv4.icmp_ratemask=0 "
               "net.ipv6.icmp.ratelimit=0")
            sh(f"ip netns exec {names[role]} sh -c 'echo > /proc/sys/net/ipv6/icmp/ratemask'")
        sh(f"ip netns exec {h} sysctl -qw net.ipv4.ip_forward=1 "
           "net.ipv6.conf.all.forwarding=1")  # before the links
        sh(f"ip -n {h} link add eth0 type veth peer name eth0 netns {lan}")
        sh(f"ip -n {h} addr add {HOST}/24 dev eth0 && ip -n {h} link set eth0 up")
        sh(f"ip -n {lan} addr add {LAN}/24 dev eth0 && ip -n {lan} link set eth0 up")
        sh(f"ip -n {h} addr add {HOST6}/64 dev eth0 nodad")
        sh(f"ip -n {lan} addr add {LAN6}/64 dev eth0 nodad")
        for bridge, gateway, role, address, subnet, address6 in (
                ("docker0", "172.17.0.1", "c0", C0, "172.17.0.0/16", C06),
                ("bridge1", "192.0.2.1", "c1", C1, "192.0.2.0/24", C16)):
            prefix = subnet.split("/")[1]
            ns = names[role]
            gateway6 = address6.replace("::2", "::1")
            sh(f"ip -n {h} link add {bridge} type bridge && ip -n {h} addr add "
               f"{gateway}/{prefix} dev {bridge} && ip -n {h} link set {bridge} up")
            sh(f"ip -n {h} addr add {gateway6}/64 dev {bridge} nodad")
            sh(f"ip -n {h} link add v{role} type veth peer name eth0 netns {ns}")
            sh(f"ip -n {h} link set v{role} master {bridge} up")
            sh(f"ip -n {ns} addr add {address}/{prefix} dev eth0 && ip -n {ns} link set eth0 up")
            sh(f"ip -n {ns} addr add {address6}/64 dev eth0 nodad")
            sh(f"ip -n {ns} route add default via {gateway}")
            sh(f"ip -n {ns} -6 route add default via {gateway6}")
            sh(f"ip -n {lan} route add {subnet} via {HOST}")
            sh(f"ip -n {lan} -6 route add {address6.replace('::2', '::')}/64 via {HOST6}")
        # Debian's map also sends port 3000 to 192.0.2.9: c1's too, so that it answers.
        sh(f"ip -n {names['c1']} addr add 192.0.2.9/24 dev eth0")
        wait_for_carriers([(names[role], "eth0") for role in ("lan", "c0", "c1")])
        servers = [listen(names["c0"], tcp=(22, 53, 80), udp=(53, 80)),
                   listen(names["c1"], tcp=(22, 53, 80), udp=(53, 80)),
                   listen(h, tcp=(22, 5433), udp=(53,))]
        # Neighbours resolved before the scan (see test_exposure_ipv6.py).
        assert all(pings(ns, address, wait=5) for ns, address in (
            (lan, HOST), (h, C0), (h, C1), (lan, HOST6), (h, C06), (h, C16),
            (names["c0"], "172.17.0.1"), (names["c1"], "192.0.2.1"),
            (names["c0"], "fd71:17::1"), (names["c1"], "fd71:2::1")))
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
    load = ["iptables-nft-restore"] if ruleset == "iptables" else ["nft", "-f", "-"]
    subprocess.run(["ip", "netns", "exec", h, *load], input=RULESETS[ruleset], text=True,
                   check=True)
    snapshot, ids = snapshot_of(names)
    table = exposures(snapshot, hosts=[ids["h"]])
    reached = {(d.address, d.port, d.protocol) for e in table for d in e.doors
               if (d.source, d.where, d.host) == (UPLINK, "eth0", ids["h"])
               and d.address in ADDRESSES}
    ports = set(PORTS) | {p.port for p in published_ports(snapshot.namespace(ids["h"]))} | \
        {port for _, port, _ in reached | MEANT[ruleset]}
    # From the LAN; and from inside the host: the host itself, and each bridge's container
    # to the other's — scanned at once (one wait for every drop).
    froms = [("host", None, FROM_HOST, ADDRESSES + ("127.0.0.1",)),
             *((role, *OTHERS[role][:1], NETWORK, OTHERS[role][1]) for role in OTHERS)]
    silent: list = []
    unanswered: dict[str, list] = {label: [] for label, *_ in froms}
    with ThreadPoolExecutor(1 + len(froms)) as pool:
        lan_scan = pool.submit(scan_tcp_udp, names["lan"], set(ADDRESSES), ports, silent)
        scans = list(pool.map(lambda each: scan_tcp_udp(
            names["h" if each[0] == "host" else each[0]], set(each[3]), ports,
            unanswered[each[0]]), froms))
        answered = lan_scan.result()
    agree(ruleset, answered, reached, len(ADDRESSES) * len(ports) * 2, silent)
    assert set(silent) <= DROPS.get(ruleset, set()), "a negative left unanswered: waited for"
    assert MEANT[ruleset] <= answered
    inside = set()
    for (label, where, source, targets), scanned in zip(froms, scans):
        table_says = {(d.address, d.port, d.protocol) for e in table for d in e.doors
                      if d.source == source and d.host == ids["h"] and d.address in targets
                      and (where is None or d.where == where)}
        agree(f"{ruleset} from {label}", scanned, table_says, len(targets) * len(ports) * 2,
              unanswered[label])
        inside |= {(label, *found) for found in scanned}
    assert MEANT_INSIDE.get(ruleset, set()) <= inside
    if ruleset == "firewalld-zones":  # its own forward-port of 2222 to c1's ssh: meant
        (ssh,) = [e for e in table if e.namespace.id == ids["c1"]
                  and (e.socket.protocol, e.socket.port) == ("tcp", 22)]
        assert ssh.risk == "public" and any(d.port == 2222 for d in ssh.doors)
    assert any(p == "udp" for _, _, p in answered)  # the containers' echo, at least
