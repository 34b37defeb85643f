"""Real rulesets (tests/corpus/nftables/: Docker 29's, netavark's, firewalld's, kube-proxy's,
libvirt's, Incus's, Debian's and Arch Linux's, the nftables wiki's server ruleset, a hardening
guide's), each loaded with `nft -f` into the host namespace of one small topology (every
namespace's neighbour cache flushed, so that each ruleset resolves its neighbours itself),
collected, and held against the kernel: random TCP, UDP and ICMP flows are simulated with the
path model and sent for real.

The topology: a host namespace `h` with an uplink `eth0` to an outside namespace, the
bridges `docker0` (172.17.0.1/16, container c0 at .2) and `bridge1` (192.0.2.1/24, container
c1 at .2), IP forwarding on; dual stack: the same links carry fd00:99::/64, fd00:17::/64 and
fd00:db8:2::/64 (ULA; bridge1's is the prefix Incus's ruleset masquerades, so that NAT66 is
sent for real; duplicate address detection off before any interface exists), IPv6
forwarding on. Listeners everywhere on tcp 80 and udp 53 (the containers also on
tcp 22, the host on 22 and 3333), so that a flow's fate is the firewall's and the routes'.
Besides the topology's own addresses, the flows go to what a ruleset publishes (kube-proxy's
service, load-balancer and node ports; firewalld's redirected and forwarded ports; Incus's
proxy device).

Every ruleset gets the same IPv4 flows; a ruleset with `inet` or `ip6` tables also IPv6
flows (drawn after the IPv4 ones from their own seed, so that the IPv4 flows stay as they
were), which meet its IPv6 rules and pass its IPv4-only ones.

For every ruleset: no flow ends in `unknown` (every expression of the corpus is modelled),
and at least 99.5% of all flows agree with the kernel.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from netdiag.checks import engine as checks
from netdiag.collect import collect_snapshot, namespace_refs
from netdiag.collect.docker import Intent
from netdiag.flows.packet import UNKNOWN, Packet
from netdiag.flows.walk import Engine
from tests import real_flows
from tests.conftest import NetnsFactory, sh

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CORPUS = sorted(Path(__file__).parents[1].joinpath("corpus", "nftables").glob("*.nft"))
FLOWS_PER_RULESET = 60
SEED = 20261207
ADDRESSES = ("10.99.0.1", "10.99.0.2", "172.17.0.1", "172.17.0.2", "192.0.2.1",
             "192.0.2.2", "127.0.0.1")
ADDRESSES6 = ("fd00:99::1", "fd00:99::2", "fd00:17::1", "fd00:17::2", "fd00:db8:2::1",
              "fd00:db8:2::2", "::1")
FLOWS6_PER_RULESET = 60
SEED6 = 20261208
PORTS = (80, 8080, 22, 1000, 2000, 7000, 7001, 9999)
UDP_PORTS = (53, 5353)
# What a ruleset publishes beyond the topology's addresses: (address, tcp port).
PUBLISHED = {
    "kube-proxy-services.nft": (
        ("172.30.0.41", 80), ("172.30.0.42", 80), ("172.30.0.42", 443), ("172.30.0.43", 80),
        ("172.30.0.44", 80), ("172.30.0.45", 80), ("172.30.0.46", 80), ("172.30.0.50", 80),
        ("198.51.100.4", 80), ("198.51.100.8", 80), ("198.51.100.22", 80),
        ("198.51.100.33", 80), ("10.99.0.1", 3001), ("10.99.0.1", 3002), ("10.99.0.1", 3003)),
    "incus-bridge-proxy.nft": (
        ("10.99.0.1", 8081), ("172.17.0.1", 8081), ("192.0.2.1", 8081), ("127.0.0.1", 8081)),
    "firewalld-zones.nft": (
        ("10.99.0.1", 222), ("10.99.0.1", 2222), ("10.99.0.1", 3333), ("10.99.0.1", 1111),
        ("172.17.0.1", 222), ("192.0.2.1", 2222)),
}
PUBLISHED6 = {"firewalld-zones.nft": (("fd00:99::1", 9090), ("fd00:99::1", 222),
                                      ("fd00:99::1", 2222), ("fd00:99::1", 3333))}
LISTEN = {"h": ((22, 80, 3333), (53,)), "out": ((80,), (53,)), "c0": ((22, 80), (53,)),
          "c1": ((22, 80), (53,))}
@pytest.fixture(scope="module")
def topology():
    factory = NetnsFactory()
    servers = []
    try:
        names = {role: factory(role) for role in ("h", "out", "c0", "c1")}
        h = names["h"]
        for ns in names.values():  # before any interface exists: none runs DAD
            sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.accept_dad=0 "
               "net.ipv6.conf.default.accept_dad=0")
        sh(f"ip netns exec {h} sysctl -qw net.ipv4.ip_forward=1 "
           "net.ipv6.conf.all.forwarding=1")
        sh(f"ip -n {h} link add eth0 type veth peer name eth0 netns {names['out']}")
        sh(f"ip -n {h} addr add 10.99.0.1/24 dev eth0")
        sh(f"ip -n {h} addr add fd00:99::1/64 dev eth0")
        sh(f"ip -n {h} link set eth0 up")
        sh(f"ip -n {names['out']} addr add 10.99.0.2/24 dev eth0")
        sh(f"ip -n {names['out']} addr add fd00:99::2/64 dev eth0")
        sh(f"ip -n {names['out']} link set eth0 up")
        sh(f"ip -n {names['out']} route add default via 10.99.0.1")
        sh(f"ip -n {names['out']} -6 route add default via fd00:99::1")
        for bridge, gateway, role, address, prefix, net6 in (
                ("docker0", "172.17.0.1", "c0", "172.17.0.2", 16, "fd00:17::"),
                ("bridge1", "192.0.2.1", "c1", "192.0.2.2", 24, "fd00:db8:2::")):
            ns = names[role]
            sh(f"ip -n {h} link add {bridge} type bridge")
            sh(f"ip -n {h} addr add {gateway}/{prefix} dev {bridge}")
            sh(f"ip -n {h} addr add {net6}1/64 dev {bridge}")
            sh(f"ip -n {h} link set {bridge} up")
            sh(f"ip -n {h} link add v{role} type veth peer name eth0 netns {ns}")
            sh(f"ip -n {h} link set v{role} master {bridge} up")
            sh(f"ip -n {ns} addr add {address}/{prefix} dev eth0")
            sh(f"ip -n {ns} addr add {net6}2/64 dev eth0")
            sh(f"ip -n {ns} link set eth0 up")
            sh(f"ip -n {ns} route add default via {gateway}")
            sh(f"ip -n {ns} -6 route add default via {net6}1")
        real_flows.wait_for_carriers([(name, "eth0") for role, name in names.items()
                                      if role != "h"])
        for role, (tcp, udp) in LISTEN.items():
            servers.append(real_flows.listen(names[role], tcp=tcp, udp=udp))
        yield names
    finally:
        for server in servers:
            server.kill()
            server.wait()
        factory.cleanup()


def _flows(names: dict[str, str], rng: random.Random, published: tuple, count: int = 0,
           addresses: tuple[str, ...] = ADDRESSES, first: int = 0) -> list[dict]:
    flows = []
    for number in range(first, first + (count or FLOWS_PER_RULESET)):
        source = rng.choice(sorted(names))
        draw = rng.random()
        if published and draw < 0.35:
            (dst, port), proto = rng.choice(published), "tcp"
        else:
            dst = rng.choice(addresses)
            proto = "icmp" if draw > 0.8 else "udp" if draw > 0.65 else "tcp"
            port = 0 if proto == "icmp" else rng.choice(UDP_PORTS if proto == "udp" else PORTS)
        # 1 s: a few dozen flows a ruleset to small listeners of our own (no accept queue
        # fills, as with 200 flows at one busybox httpd)
        flows.append({"id": number, "src": source, "dst": dst, "proto": proto, "port": port,
                      "size": 0, "wait": 1.0})
    return flows


def _family(disagreement: str) -> str:
    """The family of a disagreement as real_flows.compare writes it ("c0 → tcp [fd00::1]:80
    size 0...")."""
    destination = disagreement.split(" → ")[1].split()[1]
    return "IPv6" if destination.startswith("[") else "IPv4"


def _has_ipv6(ruleset: Path) -> bool:
    """Does the ruleset have tables an IPv6 packet meets (`inet`, `ip6`)?"""
    return any(line.split()[:2] in (["table", "inet"], ["table", "ip6"])
               or line.split()[:3] in (["add", "table", "inet"], ["add", "table", "ip6"])
               for line in ruleset.read_text().splitlines())


def test_corpus_rulesets_are_modelled_and_agree_with_the_kernel(topology):
    names = topology
    rng, rng6 = random.Random(SEED), random.Random(SEED6)
    total, disagreeing, unknown, counts = 0, [], [], {}
    failed_rules: list[str] = []
    findings: dict[str, list[str]] = {}
    for ruleset in CORPUS:
        host = names["h"]
        sh(f"ip netns exec {host} nft flush ruleset")
        subprocess.run(["ip", "netns", "exec", host, "nft", "-f", str(ruleset)], check=True)
        for name in names.values():  # each ruleset resolves its neighbours itself
            sh(f"ip -n {name} neigh flush all")
        refs = namespace_refs.resolve_all(list(names.values()))
        snapshot = collect_snapshot(refs, intent=Intent())
        ids = {role: namespace_refs.resolve(name, [s.ref for s in snapshot.namespaces]).id
               for role, name in names.items()}
        # every rule judges the ruleset (none fails on it); what they find is printed
        report = checks.run(snapshot)
        failed_rules += [f"{ruleset.name}: {u.rule}: {u.reason} {u.message}"
                         for u in report.unknown]
        findings[ruleset.name] = sorted({f.rule for f in report.findings})
        engine = Engine(snapshot)
        flows = _flows(names, rng, PUBLISHED.get(ruleset.name, ()))
        if _has_ipv6(ruleset):
            flows += _flows(names, rng6, PUBLISHED6.get(ruleset.name, ()), FLOWS6_PER_RULESET,
                            ADDRESSES6, len(flows))
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
        total += len(flows)
        for family, flows_of in (("IPv4", [f for f in flows if ":" not in f["dst"]]),
                                 ("IPv6", [f for f in flows if ":" in f["dst"]])):
            if flows_of:
                counts[f"{ruleset.name} {family}"] = {
                    proto: sum(f["proto"] == proto for f in flows_of)
                    for proto in ("tcp", "udp", "icmp")} | {"disagree": sum(
                        _family(line) == family for line in found)}
    sh(f"ip netns exec {names['h']} nft flush ruleset")
    print("".join(f"\n  {name}: {count}, findings {findings[name.split()[0]]}"
                  for name, count in counts.items()))
    ipv6 = sum(count["tcp"] + count["udp"] + count["icmp"]
               for name, count in counts.items() if name.endswith("IPv6"))
    print(f"\n{total} flows ({ipv6} IPv6) over {len(CORPUS)} rulesets; "
          f"{len(disagreeing)} disagree; {len(unknown)} unknown")
    assert ipv6 >= 300, "the rulesets with inet and ip6 tables must get their IPv6 flows"
    assert not failed_rules, "\n".join(failed_rules)
    assert not unknown, "\n".join(unknown)
    assert 1 - len(disagreeing) / total >= 0.995, "\n".join(disagreeing)
