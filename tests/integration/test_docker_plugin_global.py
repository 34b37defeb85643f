"""The plugin's overlay across two real Docker 20.10 engines that share a cluster store.

Two engines, each in a network namespace (and a mount namespace whose /run/docker/plugins is
its own, so each finds its own plugin of the one name), joined by a switch on which a real
etcd runs with its v2 API on: the engines' `cluster-store` (libkv speaks v2), and the v3 store
their plugins share (`netdiag plugin serve --scope global --store etcd://...`). A network
made with `docker network create -d PLUGIN` on one engine is a global network both know; a
container on each engine reaches the other over netdiag's VXLAN, not a container of another
such network; a network that is not internal has the engine's own way out (docker_gwbridge);
removing the containers and the networks leaves no device, namespace or store record.

Why the cluster store and not a Swarm: Swarm takes only managed plugins (`docker plugin
create` from a rootfs), and a legacy plugin is what `netdiag plugin serve` is.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import pytest

from tests.docker_engine import IMAGE, PREFIX, DockerEngine, build_busybox_image, run, wire
from tests.docker_engine import unavailable_reason as engine_unavailable
from tests.docker_plugin import PluginProcess
from tests.etcd_server import EtcdServer
from tests.etcd_server import unavailable_reason as etcd_unavailable

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.docker]

UNDERLAY = "198.18.14.{}"
ETCD = UNDERLAY.format(254)
STORE = f"etcd://{ETCD}:2379"
SUBNET = "10.94.0.0/24"
OTHER = "10.94.1.0/24"


class Cluster:
    """A switch, etcd on it, and two engines wired to it, each with its own plugin."""

    def __init__(self):
        self.tag = secrets.token_hex(3)
        self.switch = f"{PREFIX}{self.tag}-sw"
        self.plugin_name = f"ndt-gplug-{self.tag}"
        self.etcd: EtcdServer | None = None
        self.engines: list[DockerEngine] = []
        self.plugins: list[PluginProcess] = []

    def start(self) -> None:
        run(["ip", "netns", "add", self.switch])
        run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.switch, "link", "set", "br0", "up"])
        self.etcd = EtcdServer(self.switch, ETCD, v2=True).create()
        for index in (1, 2):
            address = UNDERLAY.format(index)
            engine = DockerEngine(f"g{index}", own_plugins=True, config={
                "cluster-store": f"etcd://{ETCD}:2379",
                "cluster-advertise": f"{address}:2376"})
            self.engines.append(engine)  # before anything can fail, so stop() removes it
            engine.create_netns()
            wire(self.switch, f"g{index}{self.tag}", engine.netns, f"{address}/24")
            engine.start()
            build_busybox_image(engine)
            plugin = PluginProcess(engine, STORE, name=self.plugin_name, scope="global")
            self.plugins.append(plugin)
            plugin.start()

    def netdiag(self, *args: str) -> str:
        """netdiag on the plugins' store, from where it is reached (an engine's namespace)."""
        done = subprocess.run(["nsenter", f"--net={self.engines[0].netns_path}",
                               sys.executable, "-m", "netdiag", *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self) -> None:
        """Also after a failed test: the plugin's networks go while the plugins still answer
        (their overlay namespaces would outlive the engines), then everything else."""
        try:
            for engine in self.engines:
                if engine.dockerd is not None and engine.dockerd.poll() is None:
                    engine.docker("rm", "-f", *engine.docker("ps", "-aq").split(), check=False)
                    networks = engine.docker("network", "ls", "-q", "--filter",
                                             f"driver={self.plugin_name}").split()
                    if networks:
                        engine.docker("network", "rm", *networks, check=False)
            for plugin in self.plugins:
                plugin.stop()
        finally:
            for engine in reversed(self.engines):
                engine.stop()
            if self.etcd is not None:
                self.etcd.close()
            run(["ip", "netns", "del", self.switch], check=False)
            for name in os.listdir("/run/netns"):  # overlay namespaces the drivers made
                if any(name.startswith(f"{engine.netns}-") for engine in self.engines):
                    run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def cluster():
    if reason := engine_unavailable() or etcd_unavailable():
        pytest.skip(reason)
    made = Cluster()
    try:
        made.start()
        yield made
    finally:
        made.stop()


def _wait_for(what: str, ready, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _pings(engine: DockerEngine, container: str, address: str) -> bool:
    return "1 packets received" in engine.docker("exec", container, "ping", "-c", "1", "-W",
                                                 "1", address, check=False)


def _names(engine: DockerEngine) -> list[str]:
    return engine.docker("network", "ls", "--format", "{{.Name}}").split()


def test_overlay_networks_of_the_plugin_span_two_engines(cluster):
    one, two = cluster.engines
    name = cluster.plugin_name
    one.docker("network", "create", "-d", name, "--ipam-driver", name, "--subnet", SUBNET,
               "ndt-gnet")
    two.docker("network", "create", "-d", name, "--ipam-driver", name, "--subnet", OTHER,
               "--internal", "ndt-gint")
    _wait_for("each engine sees the other's network",
              lambda: "ndt-gnet" in _names(two) and "ndt-gint" in _names(one))
    made = json.loads(one.docker("network", "inspect", "ndt-gnet"))[0]
    assert made["Scope"] == "global" and made["Driver"] == name
    one.docker("run", "-d", "--name", "ndt-ga", "--network", "ndt-gnet", IMAGE, "sleep", "600")
    two.docker("run", "-d", "--name", "ndt-gb", "--network", "ndt-gnet", IMAGE, "sleep", "600")
    two.docker("run", "-d", "--name", "ndt-gc", "--network", "ndt-gint", IMAGE, "sleep", "600")
    a_ip = one.container_ip("ndt-ga", "ndt-gnet")
    b_ip = two.container_ip("ndt-gb", "ndt-gnet")
    c_ip = two.container_ip("ndt-gc", "ndt-gint")
    assert a_ip != b_ip

    # Across the engines over netdiag's VXLAN, both ways; not from one network to the other.
    assert _pings(one, "ndt-ga", b_ip) and _pings(two, "ndt-gb", a_ip)
    assert not _pings(one, "ndt-ga", c_ip) and not _pings(two, "ndt-gc", b_ip)
    # Not internal: the engine gave the container its way out (docker_gwbridge, NATed), as
    # for its own overlay, and it reaches the other engine's address; the internal one not.
    assert _pings(one, "ndt-ga", UNDERLAY.format(2))
    assert not _pings(two, "ndt-gc", UNDERLAY.format(1))

    network = json.loads(cluster.netdiag("net", "--store", STORE, "inspect", made["Id"]))
    assert {e["host"] for e in network["endpoints"]} == {one.netns_path, two.netns_path}

    for engine, container in ((one, "ndt-ga"), (two, "ndt-gb"), (two, "ndt-gc")):
        engine.docker("rm", "-f", container)
    one.docker("network", "rm", "ndt-gnet", "ndt-gint")
    _wait_for("the other engine still has the networks",
              lambda: not {"ndt-gnet", "ndt-gint"} & set(_names(two)))
    assert json.loads(cluster.netdiag("net", "--store", STORE, "ls", "--json")) == []
    leftovers = run(["ip", "netns", "list"]).stdout.decode()
    assert network["id"][:10] not in leftovers, leftovers
    for engine in cluster.engines:
        assert "ndp" not in engine.in_netns("ip -br link"), "a handed-over interface is left"
