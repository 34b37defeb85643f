"""One lab, three host processes: `netdiag lab up FILE --etcd URL --host NAME` run once per host,
at the same time, on a real etcd — each its own process, none learning of another but through
etcd. 300 containers (100 a host) reach each other over the overlay and by name; the three
processes, allocating at once, hand out no address twice; a host whose agent is killed (a
dead host) has its endpoints withdrawn on the others within the agent's lease TTL plus a
second; etcd restarts and loses nothing; each `lab down --host` removes its part, and the last
one the network and the shared switch.

etcd runs in a namespace of its own on its loopback, and every `netdiag` here is started in
that namespace (`nsenter --net`): that is where the lab's processes reach their store from.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netdiag.drivers.overlay.etcd_plane import HOST_TTL
from netdiag.topology import journal as journals
from tests.conftest import pings, sh
from tests.etcd_server import running_etcd, unavailable_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAB = "ndt-hl"
HOSTS = ("h1", "h2", "h3")
PER_HOST = 30  # 90 addresses allocated by three processes at once (300: test_etcd_store)
TOPOLOGY = f"""\
name: {LAB}
description: three hosts, each built by its own lab up, on one etcd
hosts: [{{name: h1}}, {{name: h2}}, {{name: h3}}]
underlay: {{subnet: 198.18.12.0/24, mtu: 1500}}
networks:
  - {{name: ovl, driver: overlay, subnet: 10.93.0.0/22}}
containers:
""" + "".join(f"  - {{name: {host}c{i}, host: {host}, networks: [ovl]}}\n"
              for host in HOSTS for i in range(1, PER_HOST + 1))


class Hosts:
    """The lab's three host parts, each driven by `netdiag` processes in etcd's namespace."""

    def __init__(self, etcd, topology: Path):
        self.etcd, self.topology = etcd, topology

    def argv(self, *args: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.etcd.netns}", sys.executable, "-m",
                "netdiag", *args]

    def netdiag(self, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"netdiag {' '.join(args)}: {done.stderr}"
        return done

    def up_all(self) -> list[subprocess.CompletedProcess]:
        """The three `lab up --host` at once."""
        started = [subprocess.Popen(self.argv("lab", "up", str(self.topology), "--etcd",
                                              self.etcd.url, "--host", host),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for host in HOSTS]
        return [subprocess.CompletedProcess(p.args, p.wait(timeout=180), *p.communicate())
                for p in started]

    def down(self, host: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv("lab", "down", LAB, "--host", host),
                              capture_output=True, text=True, timeout=120)

    def network(self) -> dict:
        return json.loads(self.netdiag("net", "--store", self.etcd.url, "inspect",
                                       "ovl").stdout)

    def etcd_keys(self) -> list[str]:
        """Every key netdiag keeps in etcd, but the writers' lock (on a lease of seconds)."""
        done = subprocess.run(["ip", "netns", "exec", self.etcd.netns, "etcdctl", "get",
                               "--prefix", "/netdiag/", "--keys-only"], capture_output=True,
                              text=True, check=True, env={"ETCDCTL_API": "3",
                                                          "PATH": "/usr/bin:/bin"})
        return [k for k in done.stdout.split() if not k.endswith("/lock")]

    def agent_pid(self, host: str) -> int:
        journal = journals.load(journals.host_part(LAB, host))
        [pid] = [p.pid for p in journal.processes
                 if b"agent" in Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")]
        return pid


@pytest.fixture
def hosts(tmp_path):
    if reason := unavailable_reason():
        pytest.skip(reason)
    topology = tmp_path / "lab.yaml"
    topology.write_text(TOPOLOGY)
    with running_etcd() as etcd:
        made = Hosts(etcd, topology)
        try:
            yield made
        finally:
            for host in HOSTS:
                made.down(host)


def _overlay_ns(host: str, network_id: str) -> str:
    return f"{LAB}-{host}-1-{network_id[:10]}"


def _remote_macs(ns: str) -> set[str]:
    """The MACs of the VXLAN entries (MAC → its host's VTEP) the host's agent programmed."""
    return {line.split()[0] for line in sh(f"bridge -n {ns} fdb show").splitlines()
            if " dst " in line}


def test_three_host_processes_build_one_lab(hosts):
    for done in hosts.up_all():
        assert done.returncode == 0, done.stderr
        assert "is up" in done.stdout
    status = hosts.netdiag("lab", "status", f"{LAB}@h1").stdout
    assert f"lab {LAB}@h1: up" in status and "processes: 2 of 2 running" in status, status
    assert "driver checks: 0 findings" in status, status
    network = hosts.network()
    by_name = {e["name"]: e for e in network["endpoints"]}
    assert sorted(by_name) == sorted(f"{h}c{i}" for h in HOSTS for i in range(1, PER_HOST + 1))
    ips = {name: e["address"].split("/")[0] for name, e in by_name.items()}
    assert len(set(ips.values())) == len(ips), f"an address handed out twice: {ips}"

    # Over the overlay, between every pair of hosts, and by name through each host's resolver.
    assert pings(f"{LAB}-h1c1", ips["h2c1"]) and pings(f"{LAB}-h1c2", ips["h3c2"])
    assert pings(f"{LAB}-h3c1", ips["h2c2"])
    assert sh(f"ip netns exec {LAB}-h3c1 getent hosts h1c2").split()[0] == ips["h1c2"]

    # h3's agent dies (kill -9: nothing withdraws its endpoints but its lease running out).
    others = [_overlay_ns(h, network["id"]) for h in HOSTS[:2]]
    dead_macs = {by_name[f"h3c{i}"]["mac"] for i in range(1, PER_HOST + 1)}
    assert all(dead_macs <= _remote_macs(ns) for ns in others)
    subprocess.run(["kill", "-KILL", str(hosts.agent_pid("h3"))], check=True)
    killed = time.monotonic()
    while any(dead_macs & _remote_macs(ns) for ns in others):
        assert time.monotonic() - killed <= HOST_TTL + 1, "h3's endpoints were not withdrawn"
        time.sleep(0.1)
    print(f"\nh3's endpoints withdrawn on h1 and h2 {time.monotonic() - killed:.2f} s after "
          f"its agent died (TTL {HOST_TTL} s)")
    assert pings(f"{LAB}-h1c1", ips["h2c2"])  # the living hosts still talk

    # etcd restarts: the store keeps every network and endpoint, and the agents go on.
    hosts.etcd.stop()
    hosts.etcd.start()
    assert {e["name"]: e["address"] for e in hosts.network()["endpoints"]} == \
        {name: e["address"] for name, e in by_name.items()}
    assert pings(f"{LAB}-h2c1", ips["h1c2"])

    # Each host part goes by itself; the last one takes the network and the switch.
    for host in HOSTS:
        done = hosts.down(host)
        assert done.returncode == 0, done.stderr
    assert "1 network from the shared store" in done.stdout, done.stdout
    assert not [ns for ns in sh("ip netns list").split() if ns.startswith(f"{LAB}-")]
    assert json.loads(hosts.netdiag("net", "--store", hosts.etcd.url, "ls",
                                    "--json").stdout) == []
    assert hosts.etcd_keys() == [], "the lab left records in etcd"
    assert not [n for n in journals.names() if n.startswith(LAB)]


def test_a_host_part_refuses_what_it_cannot_build(hosts, tmp_path):
    """Bad input: one line, no traceback, nothing left behind."""
    cases = [(("lab", "up", str(hosts.topology), "--host", "h1"),
              "lab up --host and --etcd go together"),
             (("lab", "up", str(hosts.topology), "--etcd", hosts.etcd.url, "--host", "h9"),
              "lab ndt-hl has no host 'h9' (its hosts: h1, h2, h3)")]
    for args, message in cases:
        done = subprocess.run(hosts.argv(*args), capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    # h2 waits for the network h1 makes; without h1 it gives up in time and removes its part.
    done = subprocess.run(hosts.argv("lab", "up", str(hosts.topology), "--etcd", hosts.etcd.url,
                                     "--host", "h2", "--wait", "1"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "network ovl did not appear" in done.stderr and "--host h1" in done.stderr
    assert not [ns for ns in sh("ip netns list").split() if ns.startswith(f"{LAB}-")]
    assert not [n for n in journals.names() if n.startswith(LAB)]
