"""The flow engine against a real Podman: random flows, simulated and sent for real.

The Podman twin of test_flows_docker.py, on each generation: Debian 12's 4.3 (netavark on
iptables) and 5.8 (netavark on nftables: `table inet netavark`, from .cache/podman5). The
engine (tests/podman_engine.py) gets an uplink to an "outside" namespace (which knows no route
to the containers: only masqueraded traffic comes back), and Podman builds a typical host: two
user networks, an internal network, the default network, a pod, published ports on a user
network, on the default network and on the pod.
Flows are drawn at random among the containers, the host and the outside — to containers,
gateways, the host's uplink address (published ports, through netavark's DNAT chains; conmon
holds each of them on the host) and the outside — simulated from one snapshot, and sent once
for real. At least 99% must agree.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack

import pytest

from netdiag import netns
from netdiag.collect import collect_snapshot, docker, namespace_refs
from netdiag.flows.walk import Engine
from tests import real_flows
from tests.conftest import sh
from tests.docker_engine import EngineUnavailable
from tests.podman_engine import IMAGE, PodmanEngine, build_busybox_image, unavailable_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLOWS = 200
SEED = 4301
HTTPD = [IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]
UPLINK, HOST, OUTSIDE = "fl0", "198.19.10.2", "198.19.10.1"
PORTS = (8091, 8092, 8093)
NETWORKS = {"fl-a": [], "fl-b": [], "fl-int": ["--internal"]}
CONTAINERS = {"fl-a1": ("fl-a", ["-p", "8091:80"]), "fl-a2": ("fl-a", []),
              "fl-b1": ("fl-b", []), "fl-i1": ("fl-int", []),
              "fl-d1": ("podman", ["-p", "8092:80"]), "fl-p1": ("fl-b", ["--pod", "flpod"])}


@pytest.fixture(scope="module", params=[4, 5], ids=["podman4", "podman5"])
def podman_host(request):
    reason = unavailable_reason(request.param)
    if reason:
        pytest.skip(reason)
    with ExitStack() as stack:
        engine = PodmanEngine(f"fl{request.param}", request.param)
        stack.callback(engine.stop)
        try:
            engine.start()
        except EngineUnavailable as exc:
            pytest.skip(f"podman cannot run here: {exc}")
        outside = f"{engine.netns}-fo"[:40]
        sh(f"ip netns add {outside}")
        stack.callback(sh, f"ip netns del {outside}", check=False)
        sh(f"ip -n {outside} link set lo up")
        sh(f"ip -n {engine.netns} link add {UPLINK} type veth peer name eth0 netns {outside}")
        sh(f"ip -n {outside} addr add {OUTSIDE}/24 dev eth0")
        sh(f"ip -n {outside} link set eth0 up")
        sh(f"ip -n {engine.netns} addr add {HOST}/24 dev {UPLINK}")
        sh(f"ip -n {engine.netns} link set {UPLINK} up")
        sh(f"ip -n {engine.netns} route replace default via {OUTSIDE}")
        sh(f"ip netns exec {engine.netns} sysctl -qw net.ipv4.ip_forward=1")
        build_busybox_image(engine)
        for network, options in NETWORKS.items():
            engine.podman("network", "create", *options, network)
        engine.podman("pod", "create", "--name", "flpod", "--network", "fl-b", "-p", "8093:80")
        for name, (network, options) in CONTAINERS.items():
            where = [] if "--pod" in options else ["--network", network]
            engine.run_container(name, *where, *options, *HTTPD)
        for name in CONTAINERS:
            engine.wait_until_serving(name)
        server = subprocess.Popen(["ip", "netns", "exec", outside, sys.executable, "-m",
                                   "http.server", "80", "--bind", OUTSIDE],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(server.wait)
        stack.callback(server.kill)
        engine.start_service()
        yield engine, outside


def test_simulated_flows_agree_with_real_packets_on_a_podman_host(podman_host):
    engine, outside = podman_host
    places = {"host": engine.netns_path, "outside": f"/run/netns/{outside}"}
    for name in CONTAINERS:
        places[name] = f"/proc/{engine.pid_of(name)}/ns/net"
    refs = namespace_refs.resolve_all(list(places.values()))
    intent = docker.read([engine.url])
    assert [(e.runtime, e.version[0]) for e in intent.engines] == [
        ("podman", str(engine.generation))], intent
    snapshot = collect_snapshot(refs, intent=intent)
    ids = {role: netns.inode_of(path) for role, path in places.items()}
    addresses = [HOST, OUTSIDE]
    for name, (network, _) in CONTAINERS.items():
        addresses.append(engine.container_ip(name, network))
    for network in ("fl-a", "fl-b", "fl-int", "podman"):
        addresses.append(engine.podman("network", "inspect", "--format",
                                       "{{(index .Subnets 0).Gateway}}", network).strip())
    addresses = sorted(set(addresses) - {""})
    flows = real_flows.random_flows(SEED, FLOWS, list(places), addresses, (HOST, PORTS))
    real = real_flows.send(places, flows, timeout=90)
    real_flows.assert_agreement(flows, real_flows.compare(Engine(snapshot), ids, flows, real),
                                least_through=0.2)
