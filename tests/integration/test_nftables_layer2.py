"""nftables' `bridge` and `netdev` tables (tests/corpus/nftables-layer2/), each loaded with
`nft -f` into a host namespace and held against the kernel, as the corpus test does for the
`ip`, `ip6` and `inet` tables: every flow of a small topology is simulated with the path
model and sent for real.

The topology: a host namespace `h` with a bridge br0 (10.77.0.1/24, fd00:77::1/64) whose
two ports va and vb lead to the namespaces a (.2) and b (.3), and an uplink eth0
(10.78.0.1/24, fd00:78::1/64) to an outside namespace; forwarding on, duplicate address
detection off. Listeners everywhere on tcp 22 and 80 and udp 53. So a flow between a and b
is bridged (the bridge's forward hook), one from a or b to h goes up from a port (input),
one from h to a or b goes out of one (output), and one from or to the outside arrives on
eth0 (its ingress). bridge-nf-call-iptables and -ip6tables are 1 in a new namespace, so a
frame bridged or going up from a port also meets the IP hooks, which br_netfilter runs from
the bridge's between its chains by priority (bridge-brnf-order.nft).

The flows are every source to every other namespace, both families, TCP 80 and 22, UDP 53
and ICMP. For every ruleset: no flow is `unknown` and every one agrees with the kernel.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from netdiag.flows.packet import UNKNOWN, Packet
from netdiag.flows.walk import Engine
from tests import real_flows
from tests.conftest import NetnsFactory, sh

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULESETS = sorted(Path(__file__).parents[1].joinpath("corpus", "nftables-layer2")
                  .glob("*.nft"))
# Each role's address on the way a flow from another role takes to it (the host's depends
# on where the flow comes from): (IPv4, IPv6).
ADDRESSES = {"a": ("10.77.0.2", "fd00:77::2"), "b": ("10.77.0.3", "fd00:77::3"),
             "out": ("10.78.0.2", "fd00:78::2")}
HOST_FROM = {"a": ("10.77.0.1", "fd00:77::1"), "b": ("10.77.0.1", "fd00:77::1"),
             "out": ("10.78.0.1", "fd00:78::1")}
SERVICES = (("tcp", 80), ("tcp", 22), ("udp", 53), ("icmp", 0))


@pytest.fixture(scope="module")
def topology():
    factory = NetnsFactory()
    servers = []
    try:
        names = {role: factory(role) for role in ("h", "a", "b", "out")}
        h = names["h"]
        for ns in names.values():  # before any interface exists: none runs DAD
            sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.accept_dad=0 "
               "net.ipv6.conf.default.accept_dad=0")
        sh(f"ip netns exec {h} sysctl -qw net.ipv4.ip_forward=1 "
           "net.ipv6.conf.all.forwarding=1")
        sh(f"ip -n {h} link add br0 type bridge")
        sh(f"ip -n {h} addr add 10.77.0.1/24 dev br0")
        sh(f"ip -n {h} addr add fd00:77::1/64 dev br0")
        sh(f"ip -n {h} link set br0 up")
        for role in ("a", "b"):
            ns = names[role]
            sh(f"ip -n {h} link add v{role} type veth peer name eth0 netns {ns}")
            sh(f"ip -n {h} link set v{role} master br0 up")
        sh(f"ip -n {h} link add eth0 type veth peer name eth0 netns {names['out']}")
        sh(f"ip -n {h} addr add 10.78.0.1/24 dev eth0")
        sh(f"ip -n {h} addr add fd00:78::1/64 dev eth0")
        sh(f"ip -n {h} link set eth0 up")
        for role, (address, address6) in ADDRESSES.items():
            ns = names[role]
            gateway, gateway6 = HOST_FROM[role]
            sh(f"ip -n {ns} addr add {address}/24 dev eth0")
            sh(f"ip -n {ns} addr add {address6}/64 dev eth0")
            sh(f"ip -n {ns} link set eth0 up")
            sh(f"ip -n {ns} route add default via {gateway}")
            sh(f"ip -n {ns} -6 route add default via {gateway6}")
        real_flows.wait_for_carriers([(names[role], "eth0") for role in ADDRESSES])
        for ns in names.values():
            servers.append(real_flows.listen(ns, tcp=(22, 80), udp=(53,)))
        yield names
    finally:
        for server in servers:
            server.kill()
            server.wait()
        factory.cleanup()


def _flows() -> list[dict]:
    """Every role to every other, both families, each service."""
    flows = []
    for source in ("h", "a", "b", "out"):
        for target in ("h", "a", "b", "out"):
            if target == source:
                continue
            addresses = HOST_FROM[source] if target == "h" else ADDRESSES[target]
            for dst in addresses:
                for proto, port in SERVICES:
                    # a few flows to small listeners: 1 s is ample for a connection
                    flows.append({"id": len(flows), "src": source, "dst": dst,
                                  "proto": proto, "port": port, "size": 0, "wait": 1.0})
    return flows


def test_bridge_and_netdev_tables_are_modelled_and_agree_with_the_kernel(topology):
    names = topology
    flows = _flows()
    disagreeing, unknown, denied = [], [], {}
    for ruleset in RULESETS:
        host = names["h"]
        sh(f"ip netns exec {host} nft flush ruleset")
        subprocess.run(["ip", "netns", "exec", host, "nft", "-f", str(ruleset)], check=True)
        snapshot, ids = real_flows.snapshot_of(names)
        engine = Engine(snapshot)
        for flow in flows:
            packet = Packet("", flow["dst"], flow["proto"], 43210 if flow["port"] else 0,
                            flow["port"])
            result = engine.path(ids[flow["src"]], packet)
            if result.disposition == UNKNOWN:
                drop = result.forward.drop or (result.reply.drop if result.reply else None)
                unknown.append(f"{ruleset.name}: {flow['src']} → {flow['proto']} "
                               f"{flow['dst']}:{flow['port']}: {drop.reason if drop else ''}")
        real = real_flows.send(names, flows)
        print(f"\n{ruleset.name}:", end="")
        found, _, _ = real_flows.compare(engine, ids, flows, real)
        disagreeing += [f"{ruleset.name}:{line}" for line in found]
        denied[ruleset.name] = sum(outcome != "ok" for outcome in real.values())
    sh(f"ip netns exec {names['h']} nft flush ruleset")
    total = len(flows) * len(RULESETS)
    print(f"\n{total} flows over {len(RULESETS)} rulesets; {len(disagreeing)} disagree; "
          f"{len(unknown)} unknown; flows stopped per ruleset: {denied}")
    # every ruleset stops some flows and lets others through, or counts only
    assert denied["netdev-ingress-count.nft"] == 0, denied
    assert all(0 < count < len(flows) for name, count in denied.items()
               if name != "netdev-ingress-count.nft"), denied
    assert not unknown, "\n".join(unknown)
    assert not disagreeing, "\n".join(disagreeing)


def test_a_neighbour_rule_cannot_stop_flows_over_a_noarp_device(netns_factory):
    """A veth pair with `arp off` (NOARP, as a tun, WireGuard or ipip device is): the kernel
    resolves no neighbours over it (each end sends to its own MAC, so both ends share one),
    so a netdev chain that drops ARP and neighbour solicitations on the receiving end stops
    nothing, where on a resolving device such a chain stops every flow (the first test's
    netdev-ingress-drop.nft)."""
    ruleset = RULESETS[0].parent / "noarp" / "netdev-ingress-no-neighbours.nft"
    names = {role: netns_factory(role) for role in ("p", "q")}
    for ns in names.values():
        sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.accept_dad=0 "
           "net.ipv6.conf.default.accept_dad=0")
    sh(f"ip -n {names['p']} link add eth0 type veth peer name eth0 netns {names['q']}")
    for index, ns in enumerate(names.values(), start=1):
        sh(f"ip -n {ns} link set eth0 address 02:00:00:00:76:01 arp off")
        sh(f"ip -n {ns} addr add 10.76.0.{index}/24 dev eth0")
        sh(f"ip -n {ns} addr add fd00:76::{index}/64 dev eth0")
        sh(f"ip -n {ns} link set eth0 up")
    real_flows.wait_for_carriers([(ns, "eth0") for ns in names.values()])
    subprocess.run(["ip", "netns", "exec", names["q"], "nft", "-f", str(ruleset)], check=True)
    server = real_flows.listen(names["q"], tcp=(80,), udp=(53,))
    try:
        flows = [{"id": index, "src": "p", "dst": dst, "proto": proto, "port": port,
                  "size": 0, "wait": 1.0}
                 for index, (dst, (proto, port)) in enumerate(
                     (dst, service) for dst in ("10.76.0.2", "fd00:76::2")
                     for service in (("tcp", 80), ("udp", 53), ("icmp", 0)))]
        snapshot, ids = real_flows.snapshot_of(names)
        link = next(k for s in snapshot.namespaces if s.ref.id == ids["q"] for k in s.links
                    if k.name == "eth0")
        assert "NOARP" in link.flags
        real = real_flows.send(names, flows)
        disagreeing, _, _ = real_flows.compare(Engine(snapshot), ids, flows, real)
    finally:
        server.kill()
        server.wait()
    assert set(real.values()) == {"ok"}, real  # the kernel: nothing is stopped
    assert not disagreeing, "\n".join(disagreeing)
