"""The flow engine against the kernel on IPv6: many random flows, simulated and sent for real.

The IPv6 twin of test_flows_differential.py (its prober, listeners and comparison are shared
in spirit, written here for AF_INET6). A router `r` with two bridges and an uplink of the
IPv6 minimum MTU (1280) to a second router `ext` (net.ipv6.conf.all.forwarding off, each of
its interfaces' force_forwarding on: kernel 6.17 and later), behind which sits `far`; every
host and router reaches its next hop by a link-local address (`via fe80::1 dev eth0`, as
router advertisements give it). Faults of each class the engine models for IPv6:

* ip6tables on r: a FORWARD chain with a DROP policy and rules (conntrack, a user chain,
  ports, interfaces, ICMPv6), an INPUT REJECT, a published port (DNAT to `[addr]:port`) and
  NAT66 (MASQUERADE) of br0's prefix out of the uplink, replies translated back; an
  `--icmpv6-type echo-request` DROP in a1 and an ip6tables-legacy DROP in a3 (both backends);
* native nftables `inet` tables: a forward reject on r (br1 to br0, port 80, where ip6tables
  accepts), an input drop on b2 beside an `ip` rule that must never match an IPv6 packet;
* policy routing (`ip -6 rule` from b1 into a table with only a blackhole), an `unreachable`
  route, an address nobody holds (neighbour discovery unanswered), a veth off its bridge, a
  host without a default route that also does not forward (net.ipv6.conf.all.forwarding=0)
  for the LAN behind it, a link of MTU 1300 and the 1280 uplink (IPv6 routers never
  fragment: Packet Too Big), link-local destinations with their interface (`fe80::1%eth0`).

Only ULA addresses (fd71::/16) inside namespaces made here. Duplicate address detection is
off in every namespace before its interfaces exist, and the fixture waits until no address
is tentative. Flows are drawn at random (fixed seed), each simulated from one snapshot and
sent once for real (TCP connect or one ping, 1 s timeout); every disagreement is printed and
at least 99% must agree.
"""

from __future__ import annotations

import random
import subprocess
import time

import pytest

from netdiag.flows.walk import Engine
from tests import real_flows
from tests.conftest import NetnsFactory, sh
from tests.real_flows import path_json

pytestmark = pytest.mark.integration

FLOWS = 300
SEED = 20261207
PORTS = (80, 9000, 22, 5555)
SIZES = (0, 0, 0, 1290, 1400)  # IPv6 packet bytes of a ping (0: the default 104)

ROLES = ("r", "a1", "a2", "a3", "b1", "b2", "ext", "far", "c1")
SOURCE_WEIGHTS = (3, 3, 1, 1, 3, 3, 2, 2, 1)
# role → (address on its eth0, the bridge of r its veth is on, its default route)
GATEWAY = "via fe80::1 dev eth0"
HOSTS = {"a1": ("fd71:1::10", "br0", GATEWAY), "a2": ("fd71:1::11", "", GATEWAY),
         "a3": ("fd71:1::12", "br0", ""), "b1": ("fd71:2::10", "br1", GATEWAY),
         "b2": ("fd71:2::11", "br1", GATEWAY)}
ADDRESSES = ("fd71:1::1", "fd71:2::1", "fd71:9::1", "fd71:1::10", "fd71:1::11", "fd71:1::12",
             "fd71:2::10", "fd71:2::11", "fd71:9::2", "fd71:10::1", "fd71:10::2",
             "fd71:5::1", "fd71:5::2", "fd71:1::99", "fd71:77::1",
             "::", "::1")  # connect() to :: is to ::1, the sender itself


def _in(ns: str, command: str) -> str:
    return sh(f"ip netns exec {ns} {command}")


@pytest.fixture(scope="module")
def topology():
    factory = NetnsFactory()
    servers: list[subprocess.Popen] = []
    try:
        names = {role: factory(role) for role in ROLES}
        for ns in names.values():  # before any interface exists: none runs DAD
            _in(ns, "sysctl -qw net.ipv6.conf.all.accept_dad=0 "
                    "net.ipv6.conf.default.accept_dad=0")
        r, ext, far, a3, c1 = (names[role] for role in ("r", "ext", "far", "a3", "c1"))
        _in(r, "sysctl -qw net.ipv6.conf.all.forwarding=1")
        real_flows.wire_lan(r, names, {"br0": ("fd71:1::1/64", "fe80::1/64"),
                                       "br1": ("fd71:2::1/64", "fe80::1/64")},
                            HOSTS, 64, nodad="nodad")
        for dev, ns in (("vb2", r), ("eth0", names["b2"])):  # a smaller MTU on b2's link
            sh(f"ip -n {ns} link set {dev} mtu 1300")
        # The uplink at IPv6's minimum MTU, to a second router with `far` behind it.
        _link(r, "up0", "fd71:9::1/64", "fe80::9/64", ext, "eth0", "fd71:9::2/64", "fe80::2/64",
              mtu=1280)
        _link(ext, "lan0", "fd71:10::1/64", "fe80::1/64", far, "eth0", "fd71:10::2/64", "",
              mtu=1500)
        # ext forwards with `all` off: by force_forwarding on both its interfaces (a kernel
        # older than 6.17 has none: `all` then)
        if sh(f"ip netns exec {ext} sh -c 'test -e "
              "/proc/sys/net/ipv6/conf/eth0/force_forwarding && echo yes'", check=False):
            _in(ext, "sysctl -qw net.ipv6.conf.eth0.force_forwarding=1 "
                     "net.ipv6.conf.lan0.force_forwarding=1")
        else:
            _in(ext, "sysctl -qw net.ipv6.conf.all.forwarding=1")
        sh(f"ip -n {r} -6 route add fd71:10::/64 via fe80::2 dev up0")
        sh(f"ip -n {ext} -6 route add fd71:1::/64 via fe80::9 dev eth0")
        sh(f"ip -n {far} -6 route add default via fe80::1 dev eth0")
        # a3 has a LAN of its own (c1) but does not forward; r routes that LAN to it.
        _link(a3, "eth1", "fd71:5::1/64", "fe80::1/64", c1, "eth0", "fd71:5::2/64", "",
              mtu=1500)
        sh(f"ip -n {c1} -6 route add default via fe80::1 dev eth0")
        sh(f"ip -n {r} -6 route add fd71:5::/64 via fd71:1::12 dev br0")
        sh(f"ip -n {r} -6 route add unreachable fd71:77::/64")
        # b1's traffic to the uplink's prefix is policy-routed into a blackhole table.
        sh(f"ip -n {r} -6 rule add from fd71:2::10 to fd71:9::/64 lookup 100 priority 100")
        sh(f"ip -n {r} -6 route add blackhole default table 100")
        rules = [
            "-t nat -A POSTROUTING -s fd71:1::/64 -o up0 -j MASQUERADE",
            "-t nat -A PREROUTING -i up0 -p tcp --dport 8080 -j DNAT --to-destination "
            "[fd71:1::10]:80",
            "-P FORWARD DROP",
            "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-N BLOCKED", "-A BLOCKED -p tcp --dport 9000 -j DROP", "-A BLOCKED -j RETURN",
            "-A FORWARD -j BLOCKED",
            "-A FORWARD -i br0 -j ACCEPT",
            "-A FORWARD -i br1 -o br0 -p tcp -m multiport --dports 80,22 -j ACCEPT",
            "-A FORWARD -i br1 -o br1 -j ACCEPT",
            "-A FORWARD -i br1 -o up0 -j ACCEPT",
            "-A FORWARD -i up0 -o br0 -d fd71:1::10/128 -p tcp --dport 80 -j ACCEPT",
            "-A FORWARD -p ipv6-icmp -j ACCEPT",
            "-A INPUT -p tcp --dport 22 -j REJECT",
        ]
        for rule in rules:
            _in(r, f"ip6tables {rule}")
        _in(names["a1"], "ip6tables -A INPUT -s fd71:1::/64 -p tcp --dport 9000 -j DROP")
        _in(names["a1"], "ip6tables -A INPUT -s fd71:2::/64 -p ipv6-icmp --icmpv6-type "
                         "echo-request -j DROP")
        _in(a3, "ip6tables-legacy -A INPUT -p tcp --dport 5555 -j DROP")
        nft = {
            "b2": "table inet fw {\n chain input {\n  type filter hook input priority 0; "
                  "policy accept;\n  ip saddr 0.0.0.0/0 tcp dport 80 drop\n"
                  "  tcp dport 9000 drop\n }\n}\n",
            "r": "table inet rfw {\n chain passing {\n  type filter hook forward priority 10; "
                 "policy accept;\n  iifname \"br1\" oifname \"br0\" tcp dport 80 reject\n"
                 " }\n}\n",
        }
        for role, ruleset in nft.items():
            subprocess.run(["ip", "netns", "exec", names[role], "nft", "-f", "-"],
                           input=ruleset, text=True, check=True)
        listen = {"r": (80,), "a1": (80, 9000), "a2": (80,), "a3": (80, 9000, 5555),
                  "b1": (80, 9000), "b2": (80, 9000), "ext": (80,), "far": (80, 22),
                  "c1": (80,)}
        _wait_until_no_address_is_tentative(names)
        for role, ports in listen.items():
            servers.append(real_flows.listen(names[role], tcp=ports))
        yield names
    finally:
        for server in servers:
            server.kill()
            server.wait()
        factory.cleanup()


def _link(ns: str, dev: str, address: str, link_local: str, peer_ns: str, peer: str,
          peer_address: str, peer_link_local: str, mtu: int) -> None:
    """A veth between two namespaces, each end with its addresses (nodad) and the MTU."""
    sh(f"ip -n {ns} link add {dev} mtu {mtu} type veth peer name {peer} mtu {mtu} "
       f"netns {peer_ns}")
    for where, name, addresses in ((ns, dev, (address, link_local)),
                                   (peer_ns, peer, (peer_address, peer_link_local))):
        for cidr in (a for a in addresses if a):
            sh(f"ip -n {where} addr add {cidr} dev {name} nodad")
        sh(f"ip -n {where} link set {name} up")


def _wait_until_no_address_is_tentative(names: dict[str, str], timeout: float = 10.0) -> None:
    """Every address usable (DAD is off, but an address is tentative until its link is up
    and the kernel has run its checks): waits on that condition, bounded."""
    deadline = time.monotonic() + timeout
    while True:
        pending = [ns for ns in names.values()
                   if "tentative" in _in(ns, "ip -6 addr show")]
        if not pending:
            return
        assert time.monotonic() < deadline, f"addresses still tentative in {pending}"
        time.sleep(0.05)


def _flows() -> list[dict]:
    rng = random.Random(SEED)
    flows = []
    for number in range(FLOWS):
        # fewer from the namespaces most of whose flows fail (a2 is cut off, a3 and c1
        # behind a host that does not forward)
        source = rng.choices(ROLES, weights=SOURCE_WEIGHTS)[0]
        draw = rng.random()
        if draw < 0.08:  # the published port, from outside or inside
            dst, proto, port = "fd71:9::1", "tcp", 8080
        elif draw < 0.16 and source != "r":  # a link-local neighbour, by its interface
            dst = f"fe80::{rng.choice((1, 2, 9))}%eth0"
            proto = "icmp" if rng.random() < 0.5 else "tcp"
            port = rng.choice(PORTS) if proto == "tcp" else 0
        else:
            dst = rng.choice(ADDRESSES)
            proto = "icmp" if rng.random() < 0.35 else "tcp"
            port = rng.choice(PORTS) if proto == "tcp" else 0
        size = rng.choice(SIZES) if proto == "icmp" else 0
        flows.append({"id": number, "src": source, "dst": dst, "proto": proto, "port": port,
                      "size": size, "df": rng.random() < 0.6})
    return flows


def _real(names: dict[str, str], flows: list[dict]) -> dict[int, str]:
    """Each flow's real outcome. A ping its sender may fragment (without DF) is sent on its
    own, after every namespace forgot the path MTUs it learnt: a Packet Too Big from an
    earlier probe would have the sender (or the replier) fragment it to fit, which the
    model, reading no route cache, rightly does not foresee for a first packet."""
    alone = [flow for flow in flows if flow["size"] and not flow["df"]]
    results = real_flows.send(names, [flow for flow in flows if flow not in alone], timeout=90)
    for flow in alone:
        for ns in names.values():
            sh(f"ip -n {ns} -6 route flush cache")
        results.update(real_flows.send(names, [flow], timeout=30))
    return results


def test_simulated_ipv6_flows_agree_with_real_packets(topology):
    names = topology
    snapshot, ids = real_flows.snapshot_of(names)
    flows = _flows()
    real_flows.assert_agreement(
        flows, real_flows.compare(Engine(snapshot), ids, flows, _real(names, flows)),
        least_through=0.15, kinds=5)


def test_path_probe_holds_the_ipv6_model_against_the_kernel(topology):
    names = topology
    code, report = path_json(names["a1"], "[fd71:2::10]:80", "--probe")
    assert code == 0 and report["disposition"] == "delivered", report
    assert report["probe"]["outcome"] == "ok" and report["probe"]["agrees"] is True
    code, report = path_json(names["b1"], "[fd71:1::10]:80", "--probe")  # the nft inet reject
    assert code == 1 and "nft inet rfw passing" in report["drop"]["where"], report
    assert report["probe"]["agrees"] is True
    code, report = path_json(names["b1"], "[fd71:1::10]:9000", "--probe")
    assert code == 1 and report["drop"]["where"] == "filter/BLOCKED/1", report
    assert report["probe"]["outcome"] == "timeout" and report["probe"]["agrees"] is True
    # NAT66 out of the 1280 uplink and back; a ping too big for it (Packet Too Big)
    code, report = path_json(names["a1"], "[fd71:10::2]:22", "--probe")
    assert code == 0 and report["probe"]["agrees"] is True, report
    code, report = path_json(names["a1"], "fd71:10::2", "--size", "1400", "--probe")
    assert report["disposition"] == "too-big" and report["probe"]["agrees"] is True, report
    # a link-local next hop, named with its interface
    code, report = path_json(names["a1"], "fe80::1%eth0", "--probe")
    assert code == 0 and report["probe"]["agrees"] is True, report


def test_path_trace_follows_an_ipv6_flow(topology):
    """--trace over IPv6: the kernel's nftables trace (an `ip6` match) names the ip6tables
    rule the model stops the flow at, and its drop reasons (ETH_P_IPV6) hold a router's
    Packet Too Big; nothing of the trace is left behind."""
    names = topology
    code, report = path_json(names["b1"], "[fd71:1::10]:9000", "--trace")
    assert code == 1 and report["drop"]["where"] == "filter/BLOCKED/1", report
    traced = report["probe"]["trace"]
    assert traced["drop"]["namespace"] == names["r"], traced
    assert "filter BLOCKED" in traced["drop"]["event"] and traced["agrees"] is True
    code, report = path_json(names["a1"], "fd71:2::11", "--size", "1400", "--trace")
    assert code == 1 and report["disposition"] == "too-big", report
    traced = report["probe"]["trace"]
    assert "PKT_TOO_BIG" in [d["reason"] for d in traced["drops"]], traced
    assert traced["agrees"] is True
    for name in names.values():
        assert "netdiag_trace" not in sh(f"ip netns exec {name} nft list tables")
