"""The exposure model (netdiag/checks/exposure_model.py), its two rules and `netdiag exposure`,
on fixture snapshots (no root): the healthy Docker host of both firewall layouts, then one
change at a time — an INPUT policy DROP that allows only ssh (the ufw shape), a port published
on one address, an INPUT rule the model cannot judge, a macvlan container."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from netdiag.checks.exposure_model import (
    BYPASS,
    CLOSED,
    DIRECT,
    MACVLAN,
    PUBLIC,
    PUBLISHED,
    UNPUBLISHED,
    UPLINK,
    exposures,
)
from netdiag.model import IptablesRule, MacvlanInfo, Match
from netdiag.model.docker import DockerContainer, DockerEndpoint, DockerIpam, DockerNetwork
from netdiag.model.serialize import save
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import docker_host

LAYOUTS = ("classic", "modern")
PUBLISH_8080 = "--dport 8080 -j DNAT"


def ufw_like(host) -> None:
    """INPUT policy DROP, loopback and replies accepted, ssh allowed: what `ufw enable` and
    `ufw allow ssh` leave, in one chain."""
    host.b.chain(host.host, "filter", "INPUT", "DROP")
    for rule in ("-A INPUT -i lo -j ACCEPT",
                 "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                 "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"):
        host.b.iptables(host.host, "filter", rule)


def entry(found, label: str, port: int):
    return next(e for e in found if e.namespace.display == label and e.socket.port == port)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_published_port_on_a_host_without_input_policy_is_public_and_quiet(layout):
    snapshot = docker_host(layout).build()
    web = entry(exposures(snapshot), "web", 80)
    direct = [d for d in web.doors if d.via == DIRECT and d.source == UPLINK]
    if layout == "classic":  # before 28, FORWARD accepts the container port at its address
        assert web.risk == UNPUBLISHED and direct[0].address == "172.18.0.2"
    else:  # 28's raw PREROUTING drops it
        assert web.risk == PUBLIC and direct == []
    door = next(d for d in web.doors if d.source == UPLINK and d.via == PUBLISHED)
    assert (door.where, door.address, door.port) == ("eth0", "192.168.1.10", 8080)
    assert "--to-destination 172.18.0.2:80" in door.rule and not door.input_drop
    assert [c.name for c in web.controls][:2] == ["CIS 5.14", "CSVS 7.8"]
    assert entry(exposures(snapshot), "host", 22).risk == PUBLIC
    assert run_rule("exposure-firewall-bypass", snapshot) == []
    assert run_rule("exposure-unpublished-port", snapshot) == []  # check: only unpublished


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_ufw_style_bypass_is_a_warning_naming_dnat_input_and_uplink(layout):
    host = docker_host(layout)
    ufw_like(host)
    snapshot = host.build()
    assert entry(exposures(snapshot), "web", 80).risk == BYPASS
    assert entry(exposures(snapshot), "host", 22).risk == PUBLIC  # ssh is allowed: public
    (finding,) = run_rule("exposure-firewall-bypass", snapshot)
    assert finding.severity.value == "warning" and finding.subject == "tcp/8080"
    assert "nat/DOCKER/" in finding.message and "filter/INPUT policy DROP" in finding.message
    assert "eth0" in finding.message and "web (172.18.0.2:80)" in finding.message
    assert {e.kind for e in finding.evidence} >= {"firewall", "link", "control"}


def test_a_port_published_on_one_address_is_no_bypass():
    host = docker_host("modern")
    ufw_like(host)
    rules = host.b._fields[host.host]["iptables_rules"]
    rules[:] = [r for r in rules if PUBLISH_8080 not in r.text]
    host.b.iptables(host.host, "nat", "-A DOCKER -d 192.168.1.10/32 ! -i br-web -p tcp -m tcp "
                                      "--dport 8080 -j DNAT --to-destination 172.18.0.2:80")
    snapshot = host.build()
    web = entry(exposures(snapshot), "web", 80)
    assert web.risk == PUBLIC  # reachable, but bound on purpose to that address
    assert run_rule("exposure-firewall-bypass", snapshot) == []


def test_an_input_rule_the_model_cannot_judge_makes_no_claim():
    host = docker_host("modern")
    host.b.chain(host.host, "filter", "INPUT", "DROP")
    host.b._fields[host.host]["iptables_rules"].append(IptablesRule(
        "nft", 4, "filter", "INPUT", 1, (Match("rcheck", "", module="recent"),), "ACCEPT",
        text="-A INPUT -m recent --rcheck --name ok -j ACCEPT"))
    assert run_rule("exposure-firewall-bypass", host.build()) == []


def test_a_socket_nothing_reaches_is_closed():
    snapshot = docker_host("modern").build()
    assert entry(exposures(snapshot), "web", 41234).risk == CLOSED  # 127.0.0.11 only


def macvlan_container(host, with_port: bool = True) -> int:
    cache = host.b.container("cache")
    host.b.link(cache, "eth0", kind="macvlan", macvlan=MacvlanInfo("bridge"),
                address="192.168.1.50/24", peer_namespace=host.host, peer_name="eth0")
    if with_port:
        host.b.socket(cache, "tcp", "0.0.0.0", 6379, process="redis-server", pid=400)
    engine = host.b.docker[0]
    network = DockerNetwork(id="mv" + "0" * 62, name="mv", driver="macvlan",
                            ipam=(DockerIpam("192.168.1.0/24", "192.168.1.1"),),
                            options=(("parent", "eth0"),))
    container = DockerContainer(id="c" * 64, name="cache", state="running", pid=400,
                                netns=cache, network_mode="mv", endpoints=(DockerEndpoint(
                                    "mv", network.id, ip="192.168.1.50", prefixlen=24),))
    host.intent(networks=engine.networks + (network,),
                containers=engine.containers + (container,))
    return cache


def test_a_container_listening_on_a_macvlan_is_open_on_the_wire_unpublished():
    host = docker_host("modern")
    macvlan_container(host)
    snapshot = host.build()
    cache = entry(exposures(snapshot), "cache", 6379)
    assert cache.risk == UNPUBLISHED
    door = next(d for d in cache.doors if d.source == UPLINK)
    assert (door.via, door.address, door.port) == (MACVLAN, "192.168.1.50", 6379)
    (finding,) = run_rule("exposure-unpublished-port", snapshot)
    assert finding.severity.value == "info" and "192.168.1.50:6379" in finding.message
    assert any(e.key.endswith("#5.9") for e in finding.evidence)


def test_a_macvlan_container_without_listener_is_quiet():
    host = docker_host("modern")
    macvlan_container(host, with_port=False)
    assert run_rule("exposure-unpublished-port", host.build()) == []


def test_the_command_prints_json_and_sarif_with_the_controls(tmp_path):
    host = docker_host("classic")
    ufw_like(host)
    path = tmp_path / "snap.json"
    save(host.build(), path)
    run = [sys.executable, "-m", "netdiag", "exposure", "--from", str(path), "--format"]
    done = subprocess.run([*run, "json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr  # a bypass
    data = json.loads(done.stdout)["exposures"]
    assert data[0]["risk"] == BYPASS and data[0]["namespace"]["label"] == "web"
    assert {"benchmark": "CIS Docker Benchmark v1.6.0", "id": "5.14",
            "title": "Ensure that incoming container traffic is bound to a specific host "
                     "interface"} in data[0]["controls"]
    done = subprocess.run([*run, "sarif"], capture_output=True, text=True, timeout=60)
    run_data = json.loads(done.stdout)["runs"][0]
    bypass = next(r for r in run_data["results"] if r["ruleId"] == "ND931")
    assert {"id": "5.14", "toolComponent": {"name": "CIS Docker Benchmark v1.6.0"}} in \
        bypass["taxa"]
    names = {t["name"] for t in run_data["taxonomies"]}
    assert names == {"CIS Docker Benchmark v1.6.0", "OWASP CSVS 1.0"}
    done = subprocess.run(run[:-1], capture_output=True, text=True, timeout=60)
    first = done.stdout.splitlines()[1].split()
    assert first[:3] == ["bypass", "web", "tcp"] and "nat/DOCKER/3" in done.stdout
    assert "41234" not in done.stdout  # closed sockets only with --closed
    done = subprocess.run([*run[:-1], "--ns", "nosuch"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def test_a_bridge_of_containers_is_no_uplink_even_without_dockers_intent():
    """Read without Docker's intent (no API access, a lab), a host's bridges still hold
    networks of containers: only the interface with the default route (and a bridge that
    enslaves a NIC) is a way in from outside. Taking every bridge for an uplink made the
    table cost the square of the networks (1000 of them: minutes)."""
    from netdiag.checks.exposure_model import _Model
    from netdiag.flows.walk import Engine
    from tests.fixtures.builder import SnapshotBuilder

    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="192.168.1.10/24")
    b.route(host, "default", gateway="192.168.1.1", dev="eth0")
    for n in range(3):
        b.bridge(host, f"br{n}", f"10.{n}.0.1/24")
        c = b.container(f"c{n}")
        b.veth(c, "eth0", host, f"veth{n}", address=f"10.{n}.0.2/24", peer_master=f"br{n}")
    b.bridge(host, "lan0", "192.168.2.1/24")
    b.link(host, "eno1", master="lan0")  # a bridge over a NIC: a way in
    snapshot = b.build()
    model = _Model(snapshot, Engine(snapshot))
    assert sorted(u.link for u in model.uplinks(host)) == ["eth0", "lan0"]
