"""Healthy means quiet, proven on a matrix of real Docker engines.

Each case runs on both engine versions (Debian's 20.10 and 28: the `docker_version` fixture)
and starts the daemon in a namespace of its own (tests/docker_engine.py) with a daemon
configuration people run — the defaults; the userland proxy off; icc off; ip-masq off; a custom
`bip`, `mtu` and `default-address-pools`; live-restore — gives its host an uplink (a veth to a
gateway namespace and a default route, as real hosts have), and runs the workload of a typical
host: two user networks with a container on both, a published port on a user network and one on
the default bridge, an internal network, and containers with `--network none`, `--network host`
and `--network container:web` (on 28 also a network in each of the routed, nat-unprotected and
isolated gateway modes and an IPv6 network; on 20.10 an IPv6 network in the case whose daemon
has IPv6 and its experimental ip6tables on; each with a published port, but for the isolated
network). Then `netdiag check --all` must report no warning and no error about any
namespace of that engine.

The Swarm cases: two independent two-node Swarms on one machine — each with its ingress
network, a published replicated service and two attachable overlays with a container on each
node — that reuse everything Swarms reuse: VNIs from 4096, overlay subnets from 10.0.0.0/8,
even the underlay addresses (each Swarm on a switch of its own).

When a rule fires here, its model of Docker is wrong: fix the rule and keep the case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from functools import partial

import pytest

from tests.conftest import sh
from tests.docker_engine import (
    IMAGE,
    DockerEngine,
    EngineUnavailable,
    Swarm,
    all_at_once,
    build_busybox_image,
    unavailable_reason,
)

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]

UPLINK_NET = "198.19.7.{}/24"  # benchmarking range: never a real network
SERVE = [IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]
IDLE = [IMAGE, "sleep", "3600"]

CONFIGS = {
    "defaults": {},
    "userland-proxy-off": {"userland-proxy": False},
    "icc-off": {"icc": False},
    "ip-masq-off": {"ip-masq": False},
    "custom-addressing": {"bip": "10.123.0.1/24", "mtu": 1400,
                          "default-address-pools": [{"base": "10.124.0.0/16", "size": 24}]},
    "live-restore": {"live-restore": True},
}


@pytest.fixture(autouse=True)
def _docker_available():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


def check_all(env: dict) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "netdiag", "check", "--all", "--format",
                           "json", "--timeout", "120"], env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode in (0, 1), f"check --all failed ({done.returncode}): {done.stderr}"
    return json.loads(done.stdout)["findings"]


def engine_namespaces(engines: list[DockerEngine]) -> set[int]:
    """The inodes of every namespace the engines made: their hosts and their sandboxes."""
    nsfs = os.stat("/proc/self/ns/net").st_dev
    found = set()
    for engine in engines:
        found.add(os.stat(engine.netns_path).st_ino)
        for path in engine.netns_dir.iterdir() if engine.netns_dir.is_dir() else ():
            if path.stat().st_dev == nsfs:
                found.add(path.stat().st_ino)
    return found


def assert_quiet(findings: list[dict], ours: set[int]) -> None:
    loud = [f for f in findings if f["severity"] in ("warning", "error")
            and ({f["namespace"]["id"], *(r["id"] for r in f["related"])} & ours)]
    assert not loud, "findings on a healthy Docker host:\n" + "\n".join(
        f"  {f['severity']} {f['rule']} [{f['namespace']['label']}] {f['subject']}: "
        f"{f['message']}" for f in loud)


def add_uplink(stack: ExitStack, engine: DockerEngine) -> None:
    """A gateway namespace on a veth, and the host's default routes (IPv4 and IPv6) through
    it: the IPv6 networks' flows beyond the host are then expected too."""
    gateway = f"{engine.netns}-gw"[:40]
    sh(f"ip netns add {gateway}")
    stack.callback(sh, f"ip netns del {gateway}", check=False)
    sh(f"ip -n {gateway} link set lo up")
    sh(f"ip -n {engine.netns} link add up0 type veth peer name eth0 netns {gateway}")
    sh(f"ip -n {gateway} addr add {UPLINK_NET.format(1)} dev eth0")
    sh(f"ip -n {gateway} link set eth0 up")
    sh(f"ip -n {engine.netns} addr add {UPLINK_NET.format(2)} dev up0")
    sh(f"ip -n {engine.netns} link set up0 up")
    sh(f"ip -n {engine.netns} route add default via {UPLINK_NET.format(1).split('/')[0]}")
    sh(f"ip -n {gateway} addr add fd00:19:7::1/64 dev eth0 nodad")
    sh(f"ip -n {engine.netns} addr add fd00:19:7::2/64 dev up0 nodad")
    sh(f"ip -n {engine.netns} -6 route add default via fd00:19:7::1")


# Only modern engines (28) have these: a network in each gateway mode other than nat — routed
# (no NAT; its published port is opened at the container's own address), nat-unprotected (NAT,
# without the direct-routing protection) and isolated (an internal network whose bridge has no
# address on the host) — and an IPv6 network (ip6tables, with NAT66 for a ULA prefix, on by
# default). Each gets a container, publishing a port where the network reaches beyond the host.
GATEWAY_MODE = "com.docker.network.bridge.gateway_mode_ipv4="
MODERN_NETWORKS = {"routed": (["-o", f"{GATEWAY_MODE}routed"], True),
                   "unprot": (["-o", f"{GATEWAY_MODE}nat-unprotected"], True),
                   "isolated": (["--internal", "-o", f"{GATEWAY_MODE}isolated"], False),
                   "six": (["--ipv6", "--subnet", "fd00:28::/64"], True)}
# Docker 20.10's IPv6: the default bridge's prefix and ip6tables, which 20.10 has only as an
# experimental feature. Given to one case of the matrix (its addressing one), whose engine also
# gets an IPv6 user network with a published port.
IPV6_2010 = {"ipv6": True, "fixed-cidr-v6": "fd00:20::/64", "experimental": True,
             "ip6tables": True}
IPV6_CASE = "custom-addressing"


def typical_workload(engine: DockerEngine) -> None:
    """The workload, made in four steps of commands sent at once (a daemon takes them in
    parallel, as it does from a host's many clients): the networks, the containers, what
    needs a container made before it, then the wait for each server to answer."""
    networks = [["front"], ["back"], ["--internal", "private"]]
    containers = [["--name", "web", "--network", "front", "-p", "8080:80", *SERVE],
                  ["--name", "app", "--network", "front", *SERVE],
                  ["--name", "db", "--network", "back", *IDLE],
                  ["--name", "vault", "--network", "private", *IDLE],
                  ["--name", "classic", "-p", "8081:80", *SERVE],
                  ["--name", "offline", "--network", "none", *IDLE],
                  ["--name", "hostnet", "--network", "host", *IDLE]]
    servers = [("web", "app"), ("classic", None)]  # (server, the client that asks it)
    if engine.version != "20.10":
        for port, (network, (options, publish)) in enumerate(MODERN_NETWORKS.items(), 8082):
            networks.append([*options, network])
            containers.append(["--name", f"web-{network}", "--network", network,
                               *(["-p", f"{port}:80"] if publish else []), *SERVE])
            servers.append((f"web-{network}", None))
    elif engine.config.get("ip6tables"):
        networks.append(["--ipv6", "--subnet", "fd00:2010::/64", "six"])
        containers.append(["--name", "web-six", "--network", "six", "-p", "8082:80", *SERVE])
        servers.append(("web-six", None))
    all_at_once(*(partial(engine.docker, "network", "create", *args) for args in networks))
    all_at_once(*(partial(engine.docker, "run", "-d", *args) for args in containers))
    all_at_once(partial(engine.docker, "network", "connect", "back", "app"),
                partial(engine.docker, "run", "-d", "--name", "sidecar", "--network",
                        "container:web", *IDLE))
    all_at_once(*(partial(engine.wait_until_serving, server, client=client)
                  for server, client in servers))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_healthy_docker_host_is_quiet(name, docker_version):
    with ExitStack() as stack:
        config = CONFIGS[name]
        if docker_version == "20.10" and name == IPV6_CASE:
            config = {**config, **IPV6_2010}
        engine = DockerEngine(f"h{name[:6]}", config=config, version=docker_version)
        stack.callback(engine.stop)
        try:
            engine.create_netns()
            add_uplink(stack, engine)
            engine.start()
        except EngineUnavailable as exc:
            pytest.skip(f"dockerd cannot run here: {exc}")
        build_busybox_image(engine)
        typical_workload(engine)
        assert_quiet(check_all(engine.env), engine_namespaces([engine]))


SWARM_UNDERLAY = "198.18.4.{}/24"  # both Swarms: the same addresses, on switches of their own


def swarm_workload(swarm: Swarm, tag: str) -> None:
    manager, worker = swarm.nodes
    sh(f"ip -n {swarm.switch} addr add {SWARM_UNDERLAY.format(254)} dev br0")
    for node in swarm.nodes:
        sh(f"ip -n {node.netns} route add default via {SWARM_UNDERLAY.format(254)[:-3]}")
    for overlay in ("ov-a", "ov-b"):
        manager.docker("network", "create", "-d", "overlay", "--attachable", overlay)
    manager.docker("service", "create", "--detach", "--name", f"svc-{tag}", "--replicas", "2",
                   "--publish", "8080:80", "--no-resolve-image", *SERVE, timeout=180)
    manager.docker("run", "-d", "--name", "one", "--network", "ov-a", *SERVE)
    worker.docker("run", "-d", "--name", "two", "--network", "ov-a", *SERVE)
    worker.docker("network", "connect", "ov-b", "two")
    manager.docker("run", "-d", "--name", "three", "--network", "ov-b", *IDLE)
    worker.wait_until_serving("one", client="two")
    manager.wait_until_serving("two", client="one")


def test_two_independent_swarms_on_one_machine_are_quiet(docker_version):
    with ExitStack() as stack:
        # Independent: each Swarm is started, given its workload and stopped beside the other.
        swarms = [Swarm(underlay=SWARM_UNDERLAY, version=docker_version) for _ in "ab"]
        stack.callback(all_at_once, *(swarm.stop for swarm in swarms))
        try:
            all_at_once(*(swarm.start for swarm in swarms))
        except EngineUnavailable as exc:
            pytest.skip(f"dockerd cannot run here: {exc}")
        all_at_once(*(partial(swarm_workload, swarm, tag) for swarm, tag in zip(swarms, "ab")))
        engines = [node for swarm in swarms for node in swarm.nodes]
        vni = '{{index .Options "com.docker.network.driver.overlay.vxlanid_list"}}'
        vnis = {swarm.nodes[0].docker("network", "inspect", "ov-a", "--format", vni).strip()
                for swarm in swarms}
        assert len(vnis) == 1, f"the Swarms were meant to reuse their VNIs: {vnis}"
        assert_quiet(check_all(engines[0].env), engine_namespaces(engines))
