"""Three overlay hosts on etcd, for tests/integration/test_overlay_etcd.py and
bench/drivers_etcd.py: a switch namespace (br0, UNDERLAY.254) joins etcd (UNDERLAY.250) and
hosts h1..h3 (UNDERLAY.1-3), each with a container namespace c1..c3. Every netdiag command
and every host's agent (`netdiag net agent`) is a process of its own, run in the switch's
namespace, where etcd is reachable — entered with `nsenter --net` only: `ip netns exec` would
give each process a mount namespace of its own, and the overlay namespaces the drivers
bind-mount would die with it.

`namespace(role)` makes the caller's namespaces (the tests' or the benchmark's, with their
prefix) and removes them; `close()` ends the agents by pid, removes the overlay `ov` and etcd.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

from tests.etcd_server import EtcdServer


class OverlayFabric:
    def __init__(self, namespace: Callable[[str], str], underlay: str):
        self.underlay = underlay  # "198.18.9": the first three octets
        self.switch = namespace("sw")
        self.hosts = [namespace(f"h{i}") for i in (1, 2, 3)]
        self.containers = [namespace(f"c{i}") for i in (1, 2, 3)]
        self.etcd: EtcdServer | None = None
        self.agents: list[subprocess.Popen] = []

    @property
    def store(self) -> str:
        return self.etcd.url.replace("http://", "etcd://")

    def build(self, etcd_netns: str = "") -> None:
        """The wires and etcd; `etcd_netns` names etcd's namespace (default: the tests')."""
        sw, net = self.switch, self.underlay
        _sh(f"ip -n {sw} link add br0 type bridge && ip -n {sw} link set br0 up && "
            f"ip -n {sw} addr add {net}.254/24 dev br0")
        for i, host in enumerate(self.hosts, 1):
            _sh(f"ip -n {sw} link add p{i} type veth peer name eth0 netns {host} && "
                f"ip -n {sw} link set p{i} master br0 up && "
                f"ip -n {host} addr add {net}.{i}/24 dev eth0 && ip -n {host} link set eth0 up")
        self.etcd = EtcdServer(sw, f"{net}.250")
        if etcd_netns:
            self.etcd.netns = etcd_netns
        self.etcd.create()

    def _argv(self, *args: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.switch}", sys.executable, "-m", "netdiag",
                "net", "--store", self.store, *args]

    def netdiag(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(self._argv(*args), capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"netdiag net {' '.join(args)}: {done.stderr.strip()}")
        return done

    def start_agent(self, host: str, ttl: int = 5) -> subprocess.Popen:
        agent = subprocess.Popen(self._argv("agent", "--host-ns", host, "--ttl", str(ttl)),
                                 stderr=subprocess.PIPE, text=True)
        self.agents.append(agent)
        said = []  # a warning may come first (plain-HTTP etcd off loopback): up to "serving"
        while not said or "serving" not in said[-1]:
            line = agent.stderr.readline()
            if not line:
                raise AssertionError(f"the agent for {host} did not start: {''.join(said)}")
            said.append(line)
        return agent

    def kill(self, agent: subprocess.Popen) -> None:
        """SIGKILL, as a crash would: its lease runs out instead of being revoked."""
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(timeout=10)

    def close(self) -> None:
        for agent in self.agents:  # ours, by pid
            if agent.poll() is None:
                agent.terminate()
                try:
                    agent.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait()
        if self.etcd is not None:
            if self.etcd.process is not None:
                self.netdiag("rm", "-f", "ov", check=False)
            self.etcd.close()
        for host in self.hosts:  # overlay namespaces the drivers made, if any are left
            for name in os.listdir("/run/netns"):
                if name.startswith(f"{host}-"):
                    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _sh(command: str) -> None:
    subprocess.run(command, shell=True, check=True, capture_output=True)
