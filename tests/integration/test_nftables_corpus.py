"""Real rulesets (tests/corpus/nftables/: Docker 29's, netavark's, Debian's examples), each
loaded with `nft -f` into the host namespace of one small topology, collected, and held
against the kernel: random flows are simulated with the path model and sent for real.

The topology: a host namespace `h` with an uplink `eth0` to an outside namespace, the
bridges `docker0` (172.17.0.1/16, container c0 at .2) and `bridge1` (192.0.2.1/24, container
c1 at .2), IP forwarding on. Listeners everywhere on tcp 80 (and the host on 22 and 8080's
targets), so that a flow's fate is the firewall's and the routes'.

For every ruleset: no flow ends in `unknown` (every expression of the corpus is modelled),
and at least 99.5% of all flows agree with the kernel.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

from netdiag.collect import collect_snapshot, namespace_refs
from netdiag.collect.docker import Intent
from netdiag.flows.packet import UNKNOWN, Packet
from netdiag.flows.walk import Engine
from tests.conftest import NetnsFactory, sh
from tests.integration.test_flows_differential import _compare, _real, start_listeners

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CORPUS = sorted(Path(__file__).parents[1].joinpath("corpus", "nftables").glob("*.nft"))
FLOWS_PER_RULESET = 60
SEED = 20261207
ADDRESSES = ("10.99.0.1", "10.99.0.2", "172.17.0.1", "172.17.0.2", "192.0.2.1",
             "192.0.2.2", "127.0.0.1")
PORTS = (80, 8080, 22, 1000, 2000, 7000, 7001, 9999)


@pytest.fixture(scope="module")
def topology():
    factory = NetnsFactory()
    servers = []
    try:
        names = {role: factory(role) for role in ("h", "out", "c0", "c1")}
        h = names["h"]
        sh(f"ip netns exec {h} sysctl -qw net.ipv4.ip_forward=1")
        sh(f"ip -n {h} link add eth0 type veth peer name eth0 netns {names['out']}")
        sh(f"ip -n {h} addr add 10.99.0.1/24 dev eth0")
        sh(f"ip -n {h} link set eth0 up")
        sh(f"ip -n {names['out']} addr add 10.99.0.2/24 dev eth0")
        sh(f"ip -n {names['out']} link set eth0 up")
        sh(f"ip -n {names['out']} route add default via 10.99.0.1")
        for bridge, gateway, role, address, prefix in (
                ("docker0", "172.17.0.1", "c0", "172.17.0.2", 16),
                ("bridge1", "192.0.2.1", "c1", "192.0.2.2", 24)):
            ns = names[role]
            sh(f"ip -n {h} link add {bridge} type bridge")
            sh(f"ip -n {h} addr add {gateway}/{prefix} dev {bridge}")
            sh(f"ip -n {h} link set {bridge} up")
            sh(f"ip -n {h} link add v{role} type veth peer name eth0 netns {ns}")
            sh(f"ip -n {h} link set v{role} master {bridge} up")
            sh(f"ip -n {ns} addr add {address}/{prefix} dev eth0")
            sh(f"ip -n {ns} link set eth0 up")
            sh(f"ip -n {ns} route add default via {gateway}")
        _wait_for_carriers(names)
        listen = {"h": (80, 22), "out": (80,), "c0": (80,), "c1": (80,)}
        start_listeners(names, listen, servers)
        yield names
    finally:
        for server in servers:
            server.kill()
            server.wait()
        factory.cleanup()


def _wait_for_carriers(names: dict[str, str]) -> None:
    """The kernel reports a new veth's carrier a moment after both ends are up (its link
    watch runs deferred): the snapshot must not catch it before."""
    for _ in range(50):
        if all("NO-CARRIER" not in sh(f"ip -n {name} link show eth0")
               for role, name in names.items() if role != "h"):
            return
        time.sleep(0.1)
    raise AssertionError("the veths got no carrier")


def _flows(names: dict[str, str], rng: random.Random) -> list[dict]:
    flows = []
    for number in range(FLOWS_PER_RULESET):
        source = rng.choice(sorted(names))
        dst = rng.choice(ADDRESSES)
        proto = "icmp" if rng.random() < 0.2 else "tcp"
        flows.append({"id": number, "src": source, "dst": dst, "proto": proto,
                      "port": rng.choice(PORTS) if proto == "tcp" else 0, "size": 0})
    return flows


def test_corpus_rulesets_are_modelled_and_agree_with_the_kernel(topology):
    names = topology
    rng = random.Random(SEED)
    total, disagreeing, unknown = 0, [], []
    for ruleset in CORPUS:
        host = names["h"]
        sh(f"ip netns exec {host} nft flush ruleset")
        subprocess.run(["ip", "netns", "exec", host, "nft", "-f", str(ruleset)], check=True)
        refs = namespace_refs.resolve_all(list(names.values()))
        snapshot = collect_snapshot(refs, intent=Intent())
        ids = {role: namespace_refs.resolve(name, [s.ref for s in snapshot.namespaces]).id
               for role, name in names.items()}
        engine = Engine(snapshot)
        flows = _flows(names, rng)
        for flow in flows:
            packet = Packet("", flow["dst"], flow["proto"], 43210 if flow["port"] else 0,
                            flow["port"])
            result = engine.path(ids[flow["src"]], packet)
            if result.disposition == UNKNOWN:
                drop = result.forward.drop or (result.reply.drop if result.reply else None)
                unknown.append(f"{ruleset.name}: {flow['src']} → {flow['proto']} "
                               f"{flow['dst']}:{flow['port']}: {drop.reason if drop else ''}")
        real = _real(names, flows)
        print(f"\n{ruleset.name}:", end="")
        found, _, _ = _compare(engine, ids, flows, real)
        disagreeing += [f"{ruleset.name}:{line}" for line in found]
        total += len(flows)
    sh(f"ip netns exec {names['h']} nft flush ruleset")
    print(f"\n{total} flows over {len(CORPUS)} rulesets; {len(disagreeing)} disagree; "
          f"{len(unknown)} unknown")
    assert not unknown, "\n".join(unknown)
    assert 1 - len(disagreeing) / total >= 0.995, "\n".join(disagreeing)
