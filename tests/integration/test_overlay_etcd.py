"""The overlay's control plane on a real etcd: three hosts, each served by its own agent process
(`netdiag net agent`), and every command a process of its own (`netdiag net --store etcd://`),
so that no host learns of another through a shared process. Containers on the three hosts
reach each other over VXLAN; an agent killed with SIGKILL (a dead host) has its endpoints
withdrawn on the others within its lease's TTL plus a second, and announced again when it comes
back; after an etcd restart the agents still hear what happens.

The topology is tests/overlay_fabric.py's (underlay 198.18.9.0/24), in the test's namespaces,
removed afterwards.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import pings, sh
from tests.etcd_server import unavailable_reason
from tests.overlay_fabric import OverlayFabric

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TTL = 3
SUBNET = "10.91.0.0/24"


@pytest.fixture
def fabric(netns_factory):
    if reason := unavailable_reason():
        pytest.skip(reason)
    made = OverlayFabric(netns_factory, "198.18.9")
    try:
        made.build()
        yield made
    finally:
        made.close()


def test_three_hosts_in_separate_processes_and_a_dead_one_withdrawn(fabric):
    hosts, containers, etcd = fabric.hosts, fabric.containers, fabric.etcd
    fabric.netdiag("create", "ov", "-d", "overlay", "--host-ns", hosts[0], "--subnet", SUBNET)
    agents = [fabric.start_agent(host, TTL) for host in hosts]
    for host, container in zip(hosts, containers):
        fabric.netdiag("connect", "ov", container, "--host-ns", host)
    network = json.loads(fabric.netdiag("inspect", "ov").stdout)
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
    fabric.kill(agents[2])  # host 3's agent dies; its lease runs out
    killed = time.monotonic()
    while any(knows_dead_host(ns) for ns in overlay_ns[:2]):
        assert time.monotonic() - killed <= TTL + 1, "host 3's endpoint was not withdrawn"
        time.sleep(0.1)
    withdrawn = time.monotonic() - killed
    print(f"\nwithdrawn on the other hosts {withdrawn:.2f} s after the agent died (TTL {TTL})")
    assert pings(containers[0], ips[1])  # the living hosts still talk

    # Host 3's agent comes back: it announces host 3's endpoints again and relearns the rest.
    fabric.start_agent(hosts[2], TTL)
    deadline = time.monotonic() + 10
    while not all(knows_dead_host(ns) for ns in overlay_ns[:2]):
        assert time.monotonic() < deadline, "host 3's endpoint was not announced again"
        time.sleep(0.1)
    assert pings(containers[0], ips[2]) and pings(containers[2], ips[1])

    # etcd restarts; the agents reconnect, and what happens next still reaches them.
    etcd.stop()
    etcd.start()
    mac_2 = by_name[containers[1]]["mac"]
    fabric.netdiag("disconnect", "ov", containers[1], "--host-ns", hosts[1])
    deadline = time.monotonic() + 10
    while mac_2 in sh(f"bridge -n {overlay_ns[0]} fdb show | grep dst || true"):
        assert time.monotonic() < deadline, "a withdrawal after etcd's restart was lost"
        time.sleep(0.1)
