"""The flow engine against a real Docker engine: random flows, simulated and sent for real.

The session's engine of each version (20.10 and 28; userland proxy on, the default) gets an
uplink to an "outside" namespace (which knows no route to the containers: only masqueraded
traffic comes back), and Docker builds a typical host: two user networks, an internal network,
a network with icc off, the default bridge, published ports on a user network and on the
default bridge. Flows are drawn at random among the containers, the host and the outside — to
containers, gateways, the host's uplink address (published ports, through Docker's DNAT or
docker-proxy) and the outside — simulated from one snapshot, and sent once for real. At least
99% must agree.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from netdiag import netns
from netdiag.collect import collect_snapshot, docker, namespace_refs
from netdiag.flows.walk import Engine
from tests import real_flows
from tests.conftest import sh
from tests.docker_engine import IMAGE

pytestmark = [pytest.mark.integration, pytest.mark.docker]

FLOWS = 200
SEED = 1202
HTTPD = [IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]
UPLINK, HOST, OUTSIDE = "fl0", "198.19.8.2", "198.19.8.1"
NETWORKS = {"ndt-fl-a": [], "ndt-fl-b": [], "ndt-fl-int": ["--internal"],
            "ndt-fl-noicc": ["-o", "com.docker.network.bridge.enable_icc=false"]}
CONTAINERS = {"ndt-fl-a1": ("ndt-fl-a", ["-p", "8091:80"]), "ndt-fl-a2": ("ndt-fl-a", []),
              "ndt-fl-b1": ("ndt-fl-b", []), "ndt-fl-i1": ("ndt-fl-int", []),
              "ndt-fl-n1": ("ndt-fl-noicc", []), "ndt-fl-n2": ("ndt-fl-noicc", []),
              "ndt-fl-d1": ("bridge", ["-p", "8092:80"])}


@pytest.fixture(scope="module")
def docker_host(each_docker_engine):
    engine = each_docker_engine
    outside = f"{engine.netns}-fo"[:40]
    try:
        sh(f"ip netns add {outside}")
        sh(f"ip -n {outside} link set lo up")
        sh(f"ip -n {engine.netns} link add {UPLINK} type veth peer name eth0 netns {outside}")
        sh(f"ip -n {outside} addr add {OUTSIDE}/24 dev eth0")
        sh(f"ip -n {outside} link set eth0 up")
        sh(f"ip -n {engine.netns} addr add {HOST}/24 dev {UPLINK}")
        sh(f"ip -n {engine.netns} link set {UPLINK} up")
        sh(f"ip -n {engine.netns} route replace default via {OUTSIDE}")
        for network, options in NETWORKS.items():
            engine.docker("network", "create", *options, network)
        for name, (network, options) in CONTAINERS.items():
            engine.docker("run", "-d", "--name", name, "--network", network, *options, *HTTPD)
        engine.wait_until_serving("ndt-fl-a1", client="ndt-fl-a2")
        subprocess.Popen(["ip", "netns", "exec", outside, sys.executable, "-m", "http.server",
                          "80", "--bind", OUTSIDE], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        yield engine, outside
    finally:
        engine.docker("rm", "-f", *CONTAINERS, check=False)
        for network in NETWORKS:
            engine.docker("network", "rm", network, check=False)
        for pid in sh(f"ip netns pids {outside}", check=False).split():
            sh(f"kill -9 {pid}", check=False)
        sh(f"ip -n {engine.netns} route del default", check=False)
        sh(f"ip -n {engine.netns} link del {UPLINK}", check=False)
        sh(f"ip netns del {outside}", check=False)


def _places(engine, outside: str) -> dict[str, str]:
    """Role → the path of its network namespace."""
    places = {"host": engine.netns_path, "outside": f"/run/netns/{outside}"}
    for name in CONTAINERS:
        pid = engine.docker("inspect", "-f", "{{.State.Pid}}", name).strip()
        places[name] = f"/proc/{pid}/ns/net"
    return places


def test_simulated_flows_agree_with_real_packets_on_a_docker_host(docker_host):
    engine, outside = docker_host
    places = _places(engine, outside)
    refs = namespace_refs.resolve_all(list(places.values()))
    intent = docker.read([engine.host])
    snapshot = collect_snapshot(refs, intent=intent)
    ids = {role: netns.inode_of(path) for role, path in places.items()}
    addresses = [HOST, OUTSIDE]
    for name, (network, _) in CONTAINERS.items():
        addresses.append(engine.container_ip(name, network))
        gateway = engine.docker("network", "inspect", "-f",
                                "{{(index .IPAM.Config 0).Gateway}}", network).strip()
        addresses.append(gateway)
    addresses = sorted(set(addresses) - {""})
    flows = real_flows.random_flows(SEED, FLOWS, list(places), addresses, (HOST, (8091, 8092)))
    real = real_flows.send(places, flows, timeout=90)
    real_flows.assert_agreement(flows, real_flows.compare(Engine(snapshot), ids, flows, real),
                                least_through=0.2)
