"""netdiag's drivers as a real Docker engine's network and IPAM plugin (`netdiag plugin serve`).

The engine runs in its own namespace (tests/docker_engine.py); the plugin is started by the test
as its own process under a name of its own, so its socket in the shared /run/docker/plugins is
no other engine's business, and is ended by its pid. Containers on its networks must reach each
other and not the containers of another of its networks; `docker network rm` must leave no
device and no store row; bad requests get {"Err": ...} and the plugin lives on; a restarted
plugin keeps what it handed out.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from netdiag.store import SqliteStore
from tests.docker_engine import DOCKER_CLI, IMAGE
from tests.docker_plugin import PluginProcess

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def plugin(docker_engine, tmp_path):
    process = PluginProcess(docker_engine, str(tmp_path / "plugin.db"))
    process.start()
    made: list[tuple[str, str]] = []  # what the test made in the engine, to remove at the end
    process.made = made
    try:
        yield process
    finally:
        for kind, name in reversed(made):
            docker_engine.docker(kind, "rm", "-f", name, check=False) if kind == "container" \
                else docker_engine.docker("network", "rm", name, check=False)
        process.stop()


def network(engine, plugin, name: str, *args: str) -> None:
    plugin.made.append(("network", name))
    engine.docker("network", "create", "-d", plugin.name, "--ipam-driver", plugin.name,
                  *args, name)


def container(engine, plugin, name: str, net: str) -> str:
    plugin.made.append(("container", name))
    engine.docker("run", "-d", "--name", name, "--network", net, IMAGE, "sleep", "600")
    return engine.container_ip(name, net)


def pings(engine, source: str, address: str) -> bool:
    done = engine.docker("exec", source, "ping", "-c", "1", "-W", "2", address, check=False)
    return " 0% packet loss" in done


def plugin_devices(engine) -> list[str]:
    """Devices of the plugin's making in the engine's namespace: its veths and bridges."""
    links = engine.in_netns("ip -o link show")
    return [line.split(":")[1].strip() for line in links.splitlines()
            if any(f" {prefix}" in line for prefix in ("ndp", "veth", "br-"))
            and "docker0" not in line]


def test_containers_on_a_plugin_network_reach_each_other_and_not_another_network(
        docker_engine, plugin):
    engine = docker_engine
    before = plugin_devices(engine)
    network(engine, plugin, "ndt-plug-a", "--subnet", "172.31.71.0/24")
    network(engine, plugin, "ndt-plug-b")
    a1 = container(engine, plugin, "ndt-plug-a1", "ndt-plug-a")
    a2 = container(engine, plugin, "ndt-plug-a2", "ndt-plug-a")
    b1 = container(engine, plugin, "ndt-plug-b1", "ndt-plug-b")
    assert a1.startswith("172.31.71.") and a2.startswith("172.31.71.") and a1 != a2
    assert pings(engine, "ndt-plug-a1", a2), "containers on one plugin network must talk"
    assert not pings(engine, "ndt-plug-a1", b1), "two plugin networks must be isolated"
    # The addresses are netdiag's IPAM's, recorded in its store.
    with SqliteStore(plugin.store) as store:
        recorded = {e.ip for e in store.endpoints()}
    assert {a1, a2, b1} <= recorded
    # The container's interface is the engine's ethN, with the engine's name for it.
    assert "eth0" in engine.docker("exec", "ndt-plug-a1", "ip", "-o", "link")

    for name in ("ndt-plug-a1", "ndt-plug-a2", "ndt-plug-b1"):
        engine.docker("rm", "-f", name)
    engine.docker("network", "rm", "ndt-plug-a", "ndt-plug-b")
    assert plugin_devices(engine) == before
    with SqliteStore(plugin.store) as store:
        assert not store.networks() and not store.endpoints()
        with store.transaction(write=False) as tx:
            assert not tx.pools(f"local:{engine.netns_path}")


def test_a_macvlan_network_of_the_plugin(docker_engine, plugin):
    """`-o netdiag.driver=macvlan -o parent=IF`: containers get macvlan children of the
    parent (a veth the test makes in the engine's namespace; this kernel has no dummy
    devices) and reach each other."""
    engine = docker_engine
    engine.in_netns("ip link add ndtmvparent type veth peer name ndtmvpeer && "
                    "ip link set ndtmvparent up && ip link set ndtmvpeer up")
    try:
        network(engine, plugin, "ndt-plug-mv", "--subnet", "172.31.72.0/24",
                "-o", "netdiag.driver=macvlan", "-o", "parent=ndtmvparent")
        m1 = container(engine, plugin, "ndt-plug-m1", "ndt-plug-mv")
        m2 = container(engine, plugin, "ndt-plug-m2", "ndt-plug-mv")
        link = subprocess.run(["nsenter", f"--net={engine.sandbox_key('ndt-plug-m1')}", "ip",
                               "-d", "link", "show", "eth0"], capture_output=True, text=True)
        assert "macvlan mode bridge" in link.stdout, link.stdout
        assert pings(engine, "ndt-plug-m1", m2) and pings(engine, "ndt-plug-m2", m1)
        for name in ("ndt-plug-m1", "ndt-plug-m2"):
            engine.docker("rm", "-f", name)
        engine.docker("network", "rm", "ndt-plug-mv")
        assert "ndp" not in engine.in_netns("ip -o link show")  # no child left behind
    finally:
        engine.in_netns("ip link del ndtmvparent", check=False)


def test_published_ports_and_a_quiet_check_on_a_plugin_network(docker_engine, plugin):
    """`docker run -p` on a plugin network publishes through netdiag's bridge driver, and
    `netdiag check` on the container (named by Docker) finds nothing to warn about: a healthy
    plugin network is quiet."""
    engine = docker_engine
    network(engine, plugin, "ndt-plug-p")
    plugin.made.append(("container", "ndt-plug-web"))
    engine.docker("run", "-d", "--name", "ndt-plug-web", "--network", "ndt-plug-p",
                  "-p", "8089:80", IMAGE, "httpd", "-f", "-p", "80", "-h", "/www")
    engine.wait_until_serving("ndt-plug-web")
    gateway = json.loads(engine.docker("network", "inspect", "ndt-plug-p"))[0][
        "IPAM"]["Config"][0]["Gateway"]
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'"
    answer = engine.in_netns(f"{request} | busybox nc -w 3 {gateway} 8089")
    assert answer.startswith("HTTP/1."), answer

    done = subprocess.run([sys.executable, "-m", "netdiag", "check", "--ns", "ndt-plug-web",
                           "--format", "json", "--docker", engine.host],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    report = json.loads(done.stdout)
    # One true finding is the test set-up's: the embedded DNS forwards to this machine's
    # resolver, which the engine's namespace has no route to. Nothing else may be said.
    loud = [f for f in report["findings"] if f["severity"] in ("warning", "error")
            and not (f["rule"] == "dns-unreachable"
                     and f["namespace"]["label"] == engine.netns)]
    assert not loud, loud
    assert not [g for g in report["gaps"] if g["kind"] == "permission"], report["gaps"]
    # netdiag knows the network by its Docker name, and its driver by the plugin's.
    shown = subprocess.run([sys.executable, "-m", "netdiag", "show", "docker", "--docker",
                            engine.host], capture_output=True, text=True, timeout=120)
    line = next((x for x in shown.stdout.splitlines() if "ndt-plug-p" in x), "")
    assert plugin.name in line, shown.stdout


def test_the_engine_passes_the_plugins_errors_to_the_cli(docker_engine, plugin):
    plugin.made.append(("network", "ndt-plug-bad"))
    done = subprocess.run(
        [DOCKER_CLI, "-H", docker_engine.host, "network", "create", "-d", plugin.name,
         "--ipam-driver", plugin.name, "-o", "netdiag.driver=overlay", "ndt-plug-bad"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "the overlay driver is global-scoped; this plugin serves local networks" \
        in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_bad_requests_get_err_answers_and_the_plugin_lives_on(plugin):
    assert plugin.post("/Plugin.Activate", b"") == {"Implements": ["NetworkDriver",
                                                                   "IpamDriver"]}
    assert "no NetworkID" in plugin.post("/NetworkDriver.CreateEndpoint", b"{}")["Err"]
    assert "JSON object" in plugin.post("/NetworkDriver.Join", b"{not json")["Err"]
    assert "unknown call" in plugin.post("/NetworkDriver.Explode", b"{}")["Err"]
    assert "not one of this plugin's" in plugin.post(
        "/NetworkDriver.Join", json.dumps({"NetworkID": "f" * 64, "EndpointID": "e" * 64,
                                           "SandboxKey": "/nowhere"}).encode())["Err"]
    assert "Error" in plugin.post("/IpamDriver.RequestAddress",
                                  json.dumps({"PoolID": "no-such-pool"}).encode())
    assert plugin.process.poll() is None
    assert plugin.post("/NetworkDriver.GetCapabilities", b"{}")["Scope"] == "local"


def test_the_plugin_takes_a_burst_of_connections(plugin):
    """`docker rm -f` of many containers calls the plugin for all of them at the same time:
    every connection of such a burst must be taken (socketserver's listen backlog of 5
    refused them, EAGAIN, and the engine kept endpoints it could not revoke)."""
    import socket

    opened, refused = [], 0
    try:
        for _ in range(200):  # as fast as connect() goes, before the plugin accepts them
            connection = socket.socket(socket.AF_UNIX)
            connection.setblocking(False)  # as the engine's (Go's) are: refused, not queued
            opened.append(connection)
            try:
                connection.connect(plugin.socket)
            except BlockingIOError:
                refused += 1
    finally:
        for connection in opened:
            connection.close()
    assert refused == 0, f"{refused} of 200 connections refused"
    assert plugin.post("/NetworkDriver.GetCapabilities", b"{}")["Scope"] == "local"


def test_a_restarted_plugin_keeps_its_networks_and_addresses(docker_engine, plugin):
    engine = docker_engine
    network(engine, plugin, "ndt-plug-r")
    first = container(engine, plugin, "ndt-plug-r1", "ndt-plug-r")
    plugin.stop()
    plugin.start()
    second = container(engine, plugin, "ndt-plug-r2", "ndt-plug-r")
    assert second != first, "a restarted plugin handed out an address in use"
    assert pings(engine, "ndt-plug-r2", first)


def test_without_host_ns_the_plugin_serves_the_namespace_dockerd_runs_in(docker_engine,
                                                                         monkeypatch):
    """On a user's host the engine's namespace is wherever dockerd runs — usually the root
    namespace, which the plugin serves (the tests' refusal of it is tests/docker_plugin.py's).
    Here: the running engine is the test's, in its own namespace; with several engines the
    plugin asks which one, naming them."""
    from netdiag import docker_api
    from netdiag.commands.plugin import engine_namespace
    from netdiag.errors import UsageError

    ours = docker_engine._dockerd_pid()
    every = docker_api.dockerd_processes()
    assert ours in {pid for pid, _ in every}
    monkeypatch.setattr(docker_api, "dockerd_processes",
                        lambda: [(pid, argv) for pid, argv in every if pid == ours])
    assert engine_namespace() == docker_engine.netns_path  # its /run/netns name, stable
    monkeypatch.setattr(docker_api, "dockerd_processes", lambda: [])
    with pytest.raises(UsageError, match="no dockerd is running"):
        engine_namespace()
    other = subprocess.Popen(["sleep", "30"])  # a process in the root namespace, as a stand-in
    try:
        monkeypatch.setattr(docker_api, "dockerd_processes",
                            lambda: [(ours, []), (other.pid, [])])
        with pytest.raises(UsageError, match=f"pid {ours} .*pid {other.pid}|pid {other.pid} "
                                             f".*pid {ours}"):
            engine_namespace()
    finally:
        other.kill()  # ours, by its pid
        other.wait()
