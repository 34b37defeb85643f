"""The flow engine against the kernel: many random flows, simulated and sent for real.

A router namespace with two bridges, a LAN of macvlans (bridge and private mode, on a veth
whose own address they cannot reach) and an uplink to an "outside" namespace, and a
fault of every class the engine models so far: a FORWARD chain with a DROP policy and rules
(conntrack, ports, interfaces), bridged traffic through iptables (bridge-nf-call-iptables),
a veth off its bridge, a host without a default route, a policy rule into a blackhole table,
an INPUT REJECT and a local DROP, a published port (DNAT) and masquerading (SNAT) with the
replies translated back, a link with a smaller MTU, an address nobody holds, ports nobody
listens on; and native nftables beside iptables (a filter drop, a forward reject, a DNAT, a
named set).
Flows are drawn at random (fixed seed) among them; each is simulated from one snapshot and
sent once for real (TCP connect or a DF ping, 1 s timeout). Every disagreement is printed;
at least 99% must agree.
"""

from __future__ import annotations

import os
import random
import subprocess

import pytest

from netdiag.collect import collect_snapshot, discovery, namespace_refs
from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine
from tests import real_flows
from tests.conftest import NetnsFactory, sh
from tests.real_flows import path_json

OVERLAY_LAB = """
name: {name}
hosts: [{{name: host1}}, {{name: host2}}, {{name: host3}}]
networks:
  - {{name: ov, driver: overlay, subnet: 10.72.0.0/24}}
  - {{name: local, driver: bridge, subnet: 10.73.0.0/24, hosts: [host1]}}
containers:
  - {{name: web, host: host1, networks: [ov], publish: ["8080:5000"],
     command: {{app: web, port: 5000, backend: "db:6379"}}}}
  - {{name: c2, host: host2, networks: [ov], command: {{app: echo, port: 7}}}}
  - {{name: c3, host: host3, networks: [ov], command: {{app: http, port: 80}}}}
  - {{name: l1, host: host1, networks: [local], command: {{app: http, port: 80}}}}
  - {{name: l2, host: host1, networks: [local], command: {{app: echo, port: 7}}}}
services:
  - {{name: db, network: ov, replicas: 1, hosts: [host2], command: {{app: kv, port: 6379}}}}
faults:
  - {{kind: mtu, node: host3, link: eth0, mtu: 1400}}
  - {{kind: firewall, node: c2, chain: INPUT, rule: "-p tcp --dport 7 -s 10.72.0.0/24 -j DROP"}}
"""

pytestmark = pytest.mark.integration

FLOWS = 220
SEED = 20261202
PORTS = (80, 9000, 22, 5555)

@pytest.fixture(scope="module")
def topology():
    factory = NetnsFactory()
    servers = []
    try:
        names = {role: factory(role) for role in ("r", "a1", "a2", "a3", "b1", "b2", "ext",
                                                  "sw", "m1", "m2", "m3")}
        r = names["r"]
        sh(f"ip netns exec {r} sysctl -qw net.ipv4.ip_forward=1")
        hosts = {"a1": ("10.71.1.10", "br0", "via 10.71.1.1"),
                 "a2": ("10.71.1.11", "", "via 10.71.1.1"), "a3": ("10.71.1.12", "br0", ""),
                 "b1": ("10.71.2.10", "br1", "via 10.71.2.1"),
                 "b2": ("10.71.2.11", "br1", "via 10.71.2.1")}
        real_flows.wire_lan(r, names, {"br0": ("10.71.1.1/24",), "br1": ("10.71.2.1/24",)},
                            hosts, 24)
        for dev, ns in (("vb2", r), ("eth0", names["b2"])):  # a smaller MTU on b2's link
            sh(f"ip -n {ns} link set {dev} mtu 1400")
        ext = names["ext"]
        sh(f"ip -n {r} link add up0 type veth peer name eth0 netns {ext}")
        sh(f"ip -n {r} addr add 10.71.9.1/30 dev up0")
        sh(f"ip -n {r} link set up0 up")
        sh(f"ip -n {ext} addr add 10.71.9.2/30 dev eth0")
        sh(f"ip -n {ext} link set eth0 up")
        # A LAN of macvlans: a veth from r to "sw", whose end (with an address of its own) is
        # the lower device of three macvlans moved into m1, m2 (bridge mode: they reach each
        # other directly) and m3 (private: it reaches neither); none reaches sw's address.
        sw = names["sw"]
        sh(f"ip -n {r} link add lan3 type veth peer name eth0 netns {sw}")
        sh(f"ip -n {r} addr add 10.71.3.1/24 dev lan3")
        sh(f"ip -n {r} link set lan3 up")
        sh(f"ip -n {sw} addr add 10.71.3.2/24 dev eth0")
        sh(f"ip -n {sw} link set eth0 up")
        for role, (address, mode) in {"m1": ("10.71.3.11", "bridge"),
                                      "m2": ("10.71.3.12", "bridge"),
                                      "m3": ("10.71.3.13", "private")}.items():
            sh(f"ip -n {sw} link add mv{role} link eth0 type macvlan mode {mode}")
            sh(f"ip -n {sw} link set mv{role} netns {names[role]}")
            sh(f"ip -n {names[role]} addr add {address}/24 dev mv{role}")
            sh(f"ip -n {names[role]} link set mv{role} up")
            sh(f"ip -n {names[role]} route add default via 10.71.3.1")
        # b1's traffic through r is policy-routed into a table that only has a blackhole.
        sh(f"ip -n {r} rule add from 10.71.2.10 to 10.71.9.0/24 lookup 100 priority 100")
        sh(f"ip -n {r} route add blackhole default table 100")
        rules = [
            "-t nat -A POSTROUTING -s 10.71.1.0/24 -o up0 -j MASQUERADE",
            "-t nat -A PREROUTING -i up0 -p tcp --dport 8080 -j DNAT --to-destination "
            "10.71.1.10:80",
            "-P FORWARD DROP",
            "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-N BLOCKED", "-A BLOCKED -p tcp --dport 9000 -j DROP", "-A BLOCKED -j RETURN",
            "-A FORWARD -j BLOCKED",
            "-A FORWARD -i br0 -j ACCEPT",
            "-A FORWARD -i br1 -o br0 -p tcp -m multiport --dports 80,22 -j ACCEPT",
            "-A FORWARD -i br1 -o br1 -j ACCEPT",
            "-A FORWARD -i br1 -o up0 -j ACCEPT",
            "-A FORWARD -i up0 -o br0 -d 10.71.1.10/32 -p tcp --dport 80 -j ACCEPT",
            "-A FORWARD -p icmp -j ACCEPT",
            "-A FORWARD -i lan3 -o br0 -p tcp --dport 80 -j ACCEPT",
            "-A INPUT -p tcp --dport 22 -j REJECT",
        ]
        for rule in rules:
            sh(f"ip netns exec {r} iptables {rule}")
        sh(f"ip netns exec {names['a1']} iptables -A INPUT -s 10.71.1.0/24 -p tcp --dport 9000 "
           "-j DROP")
        # Native nftables beside iptables: a packet must pass both.
        nft = {
            "b2": ("inet fw", "input { type filter hook input priority 0; policy accept;",
                   "ip saddr 10.71.1.0/24 tcp dport 80 drop"),
            "r": ("inet rfw", "passing { type filter hook forward priority 10; policy accept;",
                  "ip daddr 10.71.2.10 tcp dport 80 reject"),
            "ext": ("ip nat2", "pre { type nat hook prerouting priority -100;",
                    "tcp dport 8888 dnat to 10.71.9.2:80"),
        }
        nft = {role: f"table {table} {{\n chain {chain}\n  {rule}\n }}\n}}\n"
               for role, (table, chain, rule) in nft.items()}
        # A named set (its elements read into the snapshot) in r's forward path.
        nft["r"] += ("table inet rsets {\n"
                     " set blocked {\n  type ipv4_addr\n  elements = { 10.71.1.12, 10.71.3.13 }\n"
                     " }\n"
                     " chain passing2 {\n  type filter hook forward priority 20; policy accept;\n"
                     "  ip saddr @blocked tcp dport 80 drop\n }\n}\n")
        for role, ruleset in nft.items():
            subprocess.run(["ip", "netns", "exec", names[role], "nft", "-f", "-"],
                           input=ruleset, text=True, check=True)
        listen = {"r": (80,), "a1": (80, 9000), "a2": (80,), "a3": (80, 9000),
                  "b1": (80, 9000), "b2": (80,), "ext": (80,), "sw": (80,), "m1": (80,),
                  "m2": (80, 9000), "m3": (80,)}
        start_listeners(names, listen, servers)
        yield names
    finally:
        for server in servers:
            server.kill()
            server.wait()
        factory.cleanup()



def start_listeners(names: dict[str, str], listen: dict[str, tuple[int, ...]],
                    servers: list[subprocess.Popen]) -> None:
    """A LISTENER in each role's namespace on its TCP ports, added to `servers` (ended by the
    caller, by pid) as soon as it started, and ready when this returns."""
    for role, ports in listen.items():
        servers.append(real_flows.listen(names[role], tcp=ports))


def _flows(names: dict[str, str]) -> list[dict]:
    rng = random.Random(SEED)
    addresses = ["10.71.1.1", "10.71.2.1", "10.71.9.1", "10.71.1.10", "10.71.1.11",
                 "10.71.1.12", "10.71.2.10", "10.71.2.11", "10.71.9.2", "10.71.1.99",
                 "10.71.3.1", "10.71.3.2", "10.71.3.11", "10.71.3.12", "10.71.3.13"]
    flows = []
    for number in range(FLOWS):
        source = rng.choice(sorted(names))
        if rng.random() < 0.1:  # the published port, from outside or inside
            dst, proto, port = "10.71.9.1", "tcp", 8080
        elif rng.random() < 0.05:  # the outside's own nftables DNAT
            dst, proto, port = "10.71.9.2", "tcp", 8888
        else:
            dst = rng.choice(addresses)
            proto = "icmp" if rng.random() < 0.3 else "tcp"
            port = rng.choice(PORTS) if proto == "tcp" else 0
        size = rng.choice((0, 0, 1450)) if proto == "icmp" else 0
        flows.append({"id": number, "src": source, "dst": dst, "proto": proto, "port": port,
                      "size": size})
    return flows


def test_simulated_flows_agree_with_real_packets(topology):
    names = topology
    snapshot, ids = real_flows.snapshot_of(names)
    flows = _flows(names)
    real = real_flows.send(names, flows)
    real_flows.assert_agreement(flows, real_flows.compare(Engine(snapshot), ids, flows, real),
                                least_through=0.15, kinds=5)


def test_special_destinations_agree_with_the_kernel(topology):
    """The unspecified address is the sender itself (connect() and ping make 0.0.0.0
    127.0.0.1), the loopback is local; a multicast group and the limited broadcast are no
    flow the model follows (unknown), and the kernel delivers no answer to either (echo to
    them is ignored, ping refuses a broadcast without -b)."""
    names = topology
    snapshot, ids = real_flows.snapshot_of(names)
    specials = (("0.0.0.0", "tcp", 80), ("0.0.0.0", "icmp", 0), ("127.0.0.1", "tcp", 80),
                ("0.0.0.0", "tcp", 5555), ("224.0.0.1", "icmp", 0),
                ("255.255.255.255", "icmp", 0))
    flows = [{"id": number, "src": role, "dst": dst, "proto": proto, "port": port, "size": 0}
             for number, (role, (dst, proto, port)) in enumerate(
                 (role, special) for role in sorted(names) for special in specials)]
    real = real_flows.send(names, flows)
    disagreements, by_disposition, kernel = real_flows.compare(Engine(snapshot), ids, flows, real)
    assert not disagreements, "\n".join(disagreements)
    assert {"delivered", "unknown", "no-listener"} <= set(by_disposition), by_disposition
    # all hosts: each sender ignores an echo to a group (icmp_echo_ignore_broadcasts, 1 by
    # default, not read) and the model follows no neighbour; the kernel: nobody answers
    engine = Engine(snapshot)
    for flow in (flow for flow in flows if flow["dst"] == "224.0.0.1"):
        result = engine.path(ids[flow["src"]], Packet("", "224.0.0.1", "icmp"))
        said = result.forward.drop.reason if result.forward.drop else ""
        assert result.disposition in ("unknown", "no-route"), (flow, said)
        assert result.disposition == "no-route" or "ignore_broadcasts is 1 (the default" in said
        assert real[flow["id"]] == "fail", flow


def test_path_probe_holds_the_model_against_the_kernel(topology):
    names = topology
    code, report = path_json(names["b1"], "10.71.1.10:80", "--probe")
    assert code == 0 and report["disposition"] == "delivered"
    assert report["probe"] == {"sent": True, "outcome": "ok", "reason": None,
                               "delivered": True, "agrees": True, "listener": None}
    code, report = path_json(names["b1"], "10.71.1.10:9000", "--probe")
    assert code == 1 and report["disposition"] == "denied"
    assert report["drop"]["where"] == "filter/BLOCKED/1"
    assert report["probe"]["outcome"] == "timeout" and report["probe"]["agrees"] is True
    # Nothing listens on b2's port 22: a listener of our own waits there for the probe, and
    # the way up to it is open (bridged inside br1) — for UDP too, which answers nothing.
    for proto in ("tcp", "udp"):
        code, report = path_json(names["b1"], "10.71.2.11:22", "--probe", "--proto", proto)
        assert code == 1 and report["disposition"] == "no-listener", report
        assert report["probe"]["listener"] == f"{proto} :22 in {names['b2']}", report["probe"]
        assert report["probe"]["outcome"] == "ok" and report["probe"]["agrees"] is True
    # ... and a closed way: a2's veth is off br0, so the datagram never reaches the listener
    # put up in a2.
    code, report = path_json(names["b1"], "10.71.1.11:5555", "--probe", "--proto", "udp")
    assert report["disposition"] != "delivered" and report["probe"]["listener"], report
    assert report["probe"]["outcome"] == "timeout", report["probe"]
    assert report["probe"]["agrees"] is True, report
    # A macvlan never reaches its lower device's own address, nor a private sibling.
    code, report = path_json(names["m1"], "10.71.3.2", "--probe")
    assert report["disposition"] == "neighbour-unreachable", report
    assert "lower device of mvm1" in report["drop"]["reason"] and report["probe"]["agrees"]
    code, report = path_json(names["m1"], "10.71.3.13", "--probe")
    assert "modes: bridge, private" in report["drop"]["reason"] and report["probe"]["agrees"]
    # r's named set @blocked holds m3's address, not m1's.
    code, report = path_json(names["m3"], "10.71.1.10:80", "--probe")
    assert code == 1 and "nft inet rsets passing2" in report["drop"]["where"], report["drop"]
    assert report["probe"]["agrees"] is True
    code, report = path_json(names["m1"], "10.71.1.10:80", "--probe")
    assert code == 0 and report["probe"]["agrees"] is True, report
    # An address no namespace of ours holds is not probed (nothing leaves what we built).
    code, report = path_json(names["ext"], "192.0.2.1:80", "--probe")
    assert report["probe"]["sent"] is False and "no namespace" in report["probe"]["reason"]


def test_path_trace_shows_the_kernels_own_verdict(topology):
    """--trace: the kernel's nftables trace of the probe, in each namespace on the path,
    names the same rule as the model; nothing of the trace is left behind."""
    names = topology
    code, report = path_json(names["b1"], "10.71.1.10:9000", "--trace")
    assert code == 1 and report["drop"]["where"] == "filter/BLOCKED/1"
    traced = report["probe"]["trace"]
    assert traced["drop"]["namespace"] == names["r"], traced
    assert "filter BLOCKED" in traced["drop"]["event"] and "verdict drop" in \
        traced["drop"]["event"]
    assert traced["agrees"] is True
    code, report = path_json(names["b1"], "10.71.1.10:80", "--trace")
    assert code == 0 and report["probe"]["trace"]["drop"] is None
    assert report["probe"]["trace"]["agrees"] is True and report["probe"]["trace"]["events"]
    for name in names.values():
        tables = sh(f"ip netns exec {name} nft list tables")
        assert "netdiag_trace" not in tables, (name, tables)


def _instances() -> str:
    return sh("unshare --mount --propagation private sh -c 'mount -t tracefs nodev "
              "/sys/kernel/tracing && ls /sys/kernel/tracing/instances'")


def test_path_trace_reads_the_kernels_drop_reasons(topology):
    """--trace also reads skb:kfree_skb (in a tracefs instance of its own): the kernel's
    reason for drops the nftables trace cannot see — a router's "too big" for a packet with
    DF, and a rule of iptables-legacy — agrees with the model's cause; the instance is gone
    afterwards."""
    names = topology
    code, report = path_json(names["a1"], "10.71.2.11", "--size", "1450", "--trace")
    assert code == 1 and report["disposition"] == "too-big", report
    assert report["drop"]["cause"] == "mtu" and report["drop"]["namespace"]["label"] == \
        names["r"]
    traced = report["probe"]["trace"]
    assert "PKT_TOO_BIG" in [d["reason"] for d in traced["drops"]], traced
    assert traced["agrees"] is True and traced["drop"] is None
    rule = "INPUT -s 10.71.1.10 -p tcp --dport 80 -j DROP"
    sh(f"ip netns exec {names['a3']} iptables-legacy -A {rule}")
    try:
        code, report = path_json(names["a1"], "10.71.1.12:80", "--trace")
        assert code == 1 and report["drop"]["where"] == "filter (legacy)/INPUT/1", report
        assert report["drop"]["cause"] == "firewall"
        traced = report["probe"]["trace"]
        assert traced["drop"] is None  # legacy rules are not nftables rules: not in its trace
        assert "NETFILTER_DROP" in [d["reason"] for d in traced["drops"]], traced
        assert traced["agrees"] is True and "iptables-legacy" in traced["note"]
    finally:
        sh(f"ip netns exec {names['a3']} iptables-legacy -D {rule}")
    assert "netdiag-" not in _instances()


@pytest.fixture(scope="module")
def overlay_lab():
    """A netdiag lab: three hosts on a VXLAN overlay (with a VIP service and a published
    port), a bridge network on one of them, host3's underlay link shrunk to 1400 bytes (too
    small for the overlay's full frames) and a firewall DROP in one container."""
    from netdiag.lab import build, teardown
    from netdiag.topology import schema

    name = f"ndt-ovd{os.getpid() % 1000}"
    topology = schema.parse(OVERLAY_LAB.format(name=name))
    journal = build.up(topology)
    try:
        yield journal
    finally:
        teardown.down(name)


def test_simulated_flows_agree_with_real_packets_across_a_vxlan_overlay(overlay_lab):
    """Random flows among the lab's containers and hosts — across the overlay (the outer
    packet through the underlay), within the bridge, to the VIP, to the published port, with
    and without DF at 1400 bytes — simulated from one snapshot and sent for real."""
    from netdiag.collect.docker import Intent as NoDocker

    journal = overlay_lab
    names = dict(journal.nodes)
    refs = [r for r in discovery.discover(engines=()) if r.lab == journal.name
            or r.name.startswith(f"{journal.name}-")]
    snapshot = collect_snapshot(refs, intent=NoDocker())
    ids = {node: namespace_refs.resolve(ns, [s.ref for s in snapshot.namespaces]).id
           for node, ns in names.items()}
    addresses = sorted({a.address for s in snapshot.namespaces for a in s.addresses
                        if a.family == 4 and a.scope == "global" and s.ref.lab == journal.name})
    vip = next(record.address for lab in snapshot.labs for record in lab.names
               if record.name == "db")
    rng = random.Random(SEED + 1)
    sources = sorted(node for node in names if node != "ul")
    flows = []
    for number in range(120):
        if rng.random() < 0.15:
            dst, proto, port = vip, "tcp", 6379
        else:
            dst = rng.choice(addresses)
            proto = "icmp" if rng.random() < 0.35 else "tcp"
            port = rng.choice((5000, 7, 80, 6379, 9999)) if proto == "tcp" else 0
        size = rng.choice((0, 0, 1400)) if proto == "icmp" else 0
        flows.append({"id": number, "src": rng.choice(sources), "dst": dst, "proto": proto,
                      "port": port, "size": size})
    real = real_flows.send(names, flows)
    real_flows.assert_agreement(flows, real_flows.compare(Engine(snapshot), ids, flows, real),
                                least_through=0.2, kinds=3)
