"""The overlay's control plane on a real etcd: three hosts, each served by its own agent process
(`netdiag net agent`), and every command a process of its own (`netdiag net --store etcd://`),
so that no host learns of another through a shared process. Containers on the three hosts
reach each other over VXLAN; an agent killed with SIGKILL (a dead host) has its endpoints
withdrawn on the others within its lease's TTL plus a second, and announced again when it comes
back; after an etcd restart the agents still hear what happens.

Topology: a switch namespace (br0, 198.18.9.254/24) joins etcd (198.18.9.250) and the hosts
h1..h3 (198.18.9.1-3); the netdiag processes run in the switch's namespace, where etcd is
reachable (entered with nsenter --net only: `ip netns exec` would give each process a mount
namespace of its own, and the overlay namespaces the drivers bind-mount would die with it).
Everything is in the test's namespaces and removed afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import sh
from tests.etcd_server import EtcdServer, unavailable_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL = 3
SUBNET = "10.91.0.0/24"


@pytest.fixture
def fabric(netns_factory):
    if reason := unavailable_reason():
        pytest.skip(reason)
    switch = netns_factory("sw")
    sh(f"ip -n {switch} link add br0 type bridge && ip -n {switch} link set br0 up && "
       f"ip -n {switch} addr add 198.18.9.254/24 dev br0")
    hosts, containers = [], []
    for i in (1, 2, 3):
        host, container = netns_factory(f"h{i}"), netns_factory(f"c{i}")
        sh(f"ip -n {switch} link add p{i} type veth peer name eth0 netns {host}")
        sh(f"ip -n {switch} link set p{i} master br0 up")
        sh(f"ip -n {host} addr add 198.18.9.{i}/24 dev eth0 && ip -n {host} link set eth0 up")
        hosts.append(host)
        containers.append(container)
    etcd = EtcdServer(switch, "198.18.9.250").create()
    agents: list[subprocess.Popen] = []
    try:
        yield switch, hosts, containers, etcd, agents
    finally:
        for agent in agents:  # ours, by pid
            if agent.poll() is None:
                agent.terminate()
                try:
                    agent.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait()
        netdiag(switch, etcd, "rm", "-f", "ov", check=False)
        etcd.close()
        for host in hosts:  # overlay namespaces the drivers made for the hosts, if any are left
            for name in os.listdir("/run/netns"):
                if name.startswith(f"{host}-"):
                    sh(f"ip netns del {name}", check=False)


def netdiag(switch: str, etcd: EtcdServer, *args: str, check: bool = True
            ) -> subprocess.CompletedProcess:
    done = subprocess.run(["nsenter", f"--net=/run/netns/{switch}", sys.executable, "-m",
                           "netdiag", "net",
                           "--store", etcd.url.replace("http://", "etcd://"), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 or not check, done.stderr
    return done


def start_agent(switch: str, etcd: EtcdServer, host: str) -> subprocess.Popen:
    store = etcd.url.replace("http://", "etcd://")
    agent = subprocess.Popen(["nsenter", f"--net=/run/netns/{switch}", sys.executable, "-m",
                              "netdiag", "net", "--store", store, "agent", "--host-ns", host,
                              "--ttl", str(TTL)],
                             stderr=subprocess.PIPE, text=True)
    line = agent.stderr.readline()
    assert "serving" in line, line + agent.stderr.read()
    return agent


def pings(source: str, address: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", source, "ping", "-c1", "-W2", address],
                          capture_output=True).returncode == 0


def test_three_hosts_in_separate_processes_and_a_dead_one_withdrawn(fabric):
    switch, hosts, containers, etcd, agents = fabric
    netdiag(switch, etcd, "create", "ov", "-d", "overlay", "--host-ns", hosts[0],
            "--subnet", SUBNET)
    agents += [start_agent(switch, etcd, host) for host in hosts]
    for host, container in zip(hosts, containers):
        netdiag(switch, etcd, "connect", "ov", container, "--host-ns", host)
    network = json.loads(netdiag(switch, etcd, "inspect", "ov").stdout)
    by_name = {e["name"]: e for e in network["endpoints"]}
    ips = [by_name[c]["address"].split("/")[0] for c in containers]
    assert pings(containers[0], ips[1]) and pings(containers[0], ips[2])
    assert pings(containers[2], ips[1])

    overlay_ns = [f"{host}-1-{network['id'][:10]}" for host in hosts]
    dead_mac = by_name[containers[2]]["mac"]

    def knows_dead_host(ns: str) -> bool:
        """The VXLAN entry (MAC → host 3's VTEP) the control plane programmed; the bridge's
        own learnt entries age by themselves."""
        return any(dead_mac in line and "dst" in line
                   for line in sh(f"bridge -n {ns} fdb show").splitlines())

    assert all(knows_dead_host(ns) for ns in overlay_ns[:2])
    os.kill(agents[2].pid, signal.SIGKILL)  # host 3's agent dies; its lease runs out
    killed = time.monotonic()
    agents[2].wait(timeout=10)
    while any(knows_dead_host(ns) for ns in overlay_ns[:2]):
        assert time.monotonic() - killed <= TTL + 1, "host 3's endpoint was not withdrawn"
        time.sleep(0.1)
    withdrawn = time.monotonic() - killed
    print(f"\nwithdrawn on the other hosts {withdrawn:.2f} s after the agent died (TTL {TTL})")
    assert pings(containers[0], ips[1])  # the living hosts still talk

    # Host 3's agent comes back: it announces host 3's endpoints again and relearns the rest.
    agents.append(start_agent(switch, etcd, hosts[2]))
    deadline = time.monotonic() + 10
    while not all(knows_dead_host(ns) for ns in overlay_ns[:2]):
        assert time.monotonic() < deadline, "host 3's endpoint was not announced again"
        time.sleep(0.1)
    assert pings(containers[0], ips[2]) and pings(containers[2], ips[1])

    # etcd restarts; the agents reconnect, and what happens next still reaches them.
    etcd.stop()
    etcd.start()
    mac_2 = by_name[containers[1]]["mac"]
    netdiag(switch, etcd, "disconnect", "ov", containers[1], "--host-ns", hosts[1])
    deadline = time.monotonic() + 10
    while mac_2 in sh(f"bridge -n {overlay_ns[0]} fdb show | grep dst || true"):
        assert time.monotonic() < deadline, "a withdrawal after etcd's restart was lost"
        time.sleep(0.1)
