"""Inspect against a real Docker engine: discovery labels, Docker's firewall, embedded DNS.

A user-defined bridge network with one container publishing a port, on the session's engine
(tests/docker_engine.py). Each fact netdiag reports is compared with what Docker itself says
(`docker inspect`) or what iptables-save prints in the same namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from netdiag.model import NsKind
from netdiag.model.serialize import loads
from tests.docker_engine import IMAGE

pytestmark = [pytest.mark.integration, pytest.mark.docker]

NETWORK = "ndt-inspect-net"
CONTAINER = "ndt-inspect-web"
HOST_PORT = 8080


def netdiag(engine, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "netdiag", *args], env=engine.env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"netdiag {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


@pytest.fixture(scope="module")
def web(docker_engine):
    """The container, published on HOST_PORT; removed with its network afterwards."""
    engine = docker_engine
    engine.docker("network", "create", NETWORK)
    try:
        engine.docker("run", "-d", "--name", CONTAINER, "--network", NETWORK,
                      "-p", f"{HOST_PORT}:80", IMAGE, "httpd", "-f", "-p", "80", "-h", "/www")
        engine.wait_until_serving(CONTAINER)
        yield engine.inspect(CONTAINER)
    finally:
        engine.docker("rm", "-f", CONTAINER, check=False)
        engine.docker("network", "rm", NETWORK, check=False)


@pytest.fixture(scope="module")
def snapshot(docker_engine, web):
    """One snapshot of the engine's host namespace and the container's."""
    text = netdiag(docker_engine, "snapshot", "--ns", docker_engine.netns_path,
                   "--ns", f"container:{CONTAINER}")
    return loads(text)


def _state(snapshot, path: str):
    for ns in snapshot.namespaces:
        if ns.ref.path == path:
            return ns
    paths = [ns.ref.path for ns in snapshot.namespaces]
    raise AssertionError(f"{path} not in the snapshot (it has {paths}; gaps {snapshot.gaps})")


def test_ns_list_labels_the_container_namespace(docker_engine, web):
    listed = json.loads(netdiag(docker_engine, "ns", "list", "--json"))
    sandbox = web["NetworkSettings"]["SandboxKey"]
    ours = [ns for ns in listed if ns["path"] == sandbox]
    assert ours, f"{sandbox} missing from ns list"
    ns = ours[0]
    assert ns["kind"] == NsKind.DOCKER.value
    assert ns["container"] == CONTAINER
    assert ns["label"] == CONTAINER
    assert NETWORK in ns["docker_networks"]
    assert web["State"]["Pid"] in ns["pids"]


def test_container_reference_resolves_to_the_sandbox(snapshot, web):
    state = _state(snapshot, web["NetworkSettings"]["SandboxKey"])
    assert state.ref.container == CONTAINER
    ip = web["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    assert any(a.address == ip and a.ifname == "eth0" for a in state.addresses)


def test_engine_snapshot_holds_dockers_chains(docker_engine, snapshot):
    firewall = _state(snapshot, docker_engine.netns_path).firewall
    expected = {("filter", "DOCKER"), ("filter", "DOCKER-USER"),
                ("filter", "DOCKER-ISOLATION-STAGE-1"), ("filter", "DOCKER-ISOLATION-STAGE-2"),
                ("nat", "DOCKER")}
    have = {(c.table, c.name) for c in firewall.iptables_chains if c.family == 4}
    assert expected <= have, f"missing chains: {expected - have}"
    # The FORWARD hooks Docker adds, in Docker's order.
    targets = [r.target for r in firewall.rules("filter", "FORWARD")]
    assert targets[:2] == ["DOCKER-USER", "DOCKER-ISOLATION-STAGE-1"]


def test_engine_snapshot_holds_the_dnat_rule(docker_engine, snapshot, web):
    firewall = _state(snapshot, docker_engine.netns_path).firewall
    ip = web["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    dnat = [r for r in firewall.rules("nat", "DOCKER") if r.target == "DNAT"]
    ours = [r for r in dnat if r.target_option("to-destination") == f"{ip}:80"]
    assert ours, f"no DNAT to {ip}:80 among {[r.text for r in dnat]}"
    rule = ours[0]
    assert rule.match("dport").value == str(HOST_PORT)
    assert rule.match("protocol").value == "tcp"
    # The rule as parsed is the rule iptables-save prints in that namespace.
    printed = docker_engine.in_netns("iptables-save -t nat")
    assert f"-A DOCKER {rule.text}" in printed or rule.text in printed


def test_container_dns_is_the_embedded_resolver(docker_engine, snapshot, web):
    state = _state(snapshot, web["NetworkSettings"]["SandboxKey"])
    dns = state.dns
    assert dns.nameservers == ("127.0.0.11",)
    assert "ndots:0" in dns.options
    # Read through the container's root, not the host's /etc/resolv.conf.
    assert dns.source.startswith(f"/proc/{web['State']['Pid']}/root/"), dns.source
    assert dns.embedded is not None, "embedded DNS NAT rules not recognised"
    # The ports are the ones Docker's DOCKER_OUTPUT chain DNATs 127.0.0.11:53 to.
    rules = docker_engine.in_netns(
        f"nsenter --net={web['NetworkSettings']['SandboxKey']} iptables-save -t nat")
    assert f"--to-destination 127.0.0.11:{dns.embedded.udp_port}" in rules
    assert f"--to-destination 127.0.0.11:{dns.embedded.tcp_port}" in rules
    chains = {c.name for c in state.firewall.iptables_chains if c.table == "nat"}
    assert {"DOCKER_OUTPUT", "DOCKER_POSTROUTING"} <= chains


def test_embedded_resolver_port_has_a_listener(snapshot, web):
    """The daemon's resolver sockets live in the container's namespace: sockets show them."""
    state = _state(snapshot, web["NetworkSettings"]["SandboxKey"])
    embedded = state.dns.embedded
    assert embedded is not None
    listening = {(s.protocol, s.address, s.port) for s in state.sockets}
    assert ("udp", "127.0.0.11", embedded.udp_port) in listening
    assert ("tcp", "127.0.0.11", embedded.tcp_port) in listening
    assert ("tcp", "0.0.0.0", 80) in listening or ("tcp", "::", 80) in listening


def test_a_removed_containers_leftover_file_is_not_a_namespace(docker_engine, web):
    """Docker unmounts a removed container's sandbox at once and deletes the file up to a
    minute later: in between, discovery must not offer it (entering it fails with EINVAL).
    (`web` keeps running, so discovery does look into the engine's sandbox folder.)"""
    engine = docker_engine
    engine.docker("run", "-d", "--name", "ndt-inspect-gone", IMAGE, "sleep", "3600")
    sandbox = engine.sandbox_key("ndt-inspect-gone")
    engine.docker("rm", "-f", "ndt-inspect-gone")
    if not os.path.exists(sandbox):
        pytest.skip("Docker deleted the sandbox file at once: nothing left to trip over")
    listed = json.loads(netdiag(engine, "ns", "list", "--json"))
    assert sandbox not in {ns["path"] for ns in listed}
    done = subprocess.run([sys.executable, "-m", "netdiag", "snapshot", "--ns", sandbox],
                          env=engine.env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2, done.stderr
    assert "not a network namespace" in done.stderr and "Traceback" not in done.stderr
