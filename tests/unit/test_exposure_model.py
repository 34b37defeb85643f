"""The exposure model (netdiag/checks/exposure_model.py), its two rules and `netdiag exposure`,
on fixture snapshots (no root): the healthy Docker host of both firewall layouts, then one
change at a time — an INPUT policy DROP that allows only ssh (the ufw shape), a port published
on one address, an INPUT rule the model cannot judge, a macvlan container."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from netdiag.checks.docker_bridges import dnat_of
from netdiag.checks.exposure_model import (
    BYPASS,
    CLOSED,
    DIRECT,
    FROM_HOST,
    MACVLAN,
    NETWORK,
    PUBLIC,
    PUBLISHED,
    UNPUBLISHED,
    UPLINK,
    _Model,
    exposures,
    firewall_key,
    published_ports,
)
from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine
from netdiag.model import (
    Firewall,
    IptablesRule,
    MacvlanInfo,
    Match,
    NamespaceRef,
    NamespaceState,
    NftChain,
    NftRule,
    NftSet,
    NsKind,
)
from netdiag.model.docker import DockerContainer, DockerEndpoint, DockerIpam, DockerNetwork
from netdiag.model.serialize import load, save
from netdiag.render import context, firewall_rows
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import MODERN_FILTER, MODERN_RAW, NAT, docker_host
from tests.unit.rules.part2_fixtures import amend
from tests.unit.rules.test_native_nftables_rules import docker29_host, nft_firewall

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


# --- Docker 29's nftables backend: moby's usernet-portmap ruleset, as the collector reads it
# from a namespace it was loaded into (tests/corpus/nftables/listed/, the host of
# tests/unit/rules/test_native_nftables_rules.py: c1 192.0.2.2 publishing 8080 → 80, eth0) ---


def docker29(listed: str, without_chain: tuple[str, str, str] | None = None):
    """The Docker 29 host of `listed`; `without_chain` (family, table, chain): that base
    chain and its rules left out of the listing."""
    snapshot, host = docker29_host(listed)
    if without_chain is not None:
        firewall = nft_firewall(listed)
        firewall = replace(
            firewall,
            nft_chains=tuple(c for c in firewall.nft_chains
                             if (c.family, c.table, c.name) != without_chain),
            nft_rules=tuple(r for r in firewall.nft_rules
                            if (r.family, r.table, r.chain) != without_chain))
        snapshot = amend(snapshot, host, firewall=firewall)
    return snapshot


def test_docker29_native_dnat_is_a_published_door_and_a_healthy_host_is_quiet():
    """No INPUT policy: the port Docker 29 publishes in `table ip docker-bridges` is public,
    reached through its dnat rule (named as the firewall tab names it), no bypass."""
    snapshot = docker29("docker29-usernet-portmap")
    c1 = entry(exposures(snapshot), "c1", 80)
    door = next(d for d in c1.doors if d.source == UPLINK)
    assert (c1.risk, door.via, door.address, door.port) == (PUBLIC, PUBLISHED, "10.99.0.1",
                                                            8080)
    assert door.rule_name.startswith("nft ip docker-bridges nat-prerouting-and-output handle")
    assert "dnat to 192.0.2.2:80" in door.rule and not door.input_drop
    assert firewall_key(door.rule_name).startswith("ip/docker-bridges/nat-prerouting-and-output/")
    assert run_rule("exposure-firewall-bypass", snapshot) == []


def test_docker29_under_an_inet_filter_input_policy_drop_is_a_bypass():
    """Arch Linux's default nftables.conf without its forward chain: the `inet filter` input
    chain drops all but ssh (what nftables users write), and nothing filters forwarding —
    the ufw surprise on Docker 29's nftables backend."""
    snapshot = docker29("docker29-usernet-portmap+archlinux-default",
                        without_chain=("inet", "filter", "forward"))
    assert entry(exposures(snapshot), "c1", 80).risk == BYPASS
    assert entry(exposures(snapshot), "host", 22).risk == PUBLIC
    (finding,) = run_rule("exposure-firewall-bypass", snapshot)
    assert finding.subject == "tcp/8080"
    assert "nft ip docker-bridges nat-prerouting-and-output handle" in finding.message
    # Arch's input chain ends in `meta pkttype host limit rate 5/second ... reject`
    assert "INPUT would drop it (nft inet filter input handle " in finding.message
    assert "eth0" in finding.message and "c1 (192.0.2.2:80)" in finding.message
    keys = [e.key for e in finding.evidence if e.kind == "firewall"]
    host = snapshot.namespace(finding.namespace.id)
    rows = [row for row in firewall_rows(host, context(snapshot)) if set(keys) & row.keys]
    assert [row.cells[2] for row in rows] == ["nat-prerouting-and-output", "input"]
    assert "reject" in rows[1].cells[4] and "dnat to 192.0.2.2:80" in rows[0].cells[4]
    assert "ct original proto-dst 8080 drop" in finding.repair.steps[0].text \
        and "DOCKER-USER" not in finding.repair.title


def test_a_port_forward_and_an_input_drop_of_one_table_are_meant():
    """One nftables table that forwards a port and drops it in its input chain (firewalld's
    forward-port: its nat and filter chains share `table inet firewalld`) says what its
    author meant: public, no bypass — here the Arch input chain moved into the DNAT's table."""
    snapshot = docker29("docker29-usernet-portmap+archlinux-default",
                        without_chain=("inet", "filter", "forward"))
    host = next(s for s in snapshot.namespaces if s.firewall.nft_chains)
    firewall = host.firewall

    def moved(item):
        return replace(item, family="ip", table="docker-bridges") \
            if (item.family, item.table) == ("inet", "filter") else item

    snapshot = amend(snapshot, host.ref.id, firewall=replace(
        firewall, nft_chains=tuple(map(moved, firewall.nft_chains)),
        nft_rules=tuple(map(moved, firewall.nft_rules))))
    assert entry(exposures(snapshot), "c1", 80).risk == PUBLIC
    assert run_rule("exposure-firewall-bypass", snapshot) == []


def test_docker29_under_arch_linux_default_forward_drop_is_no_bypass():
    """With Arch's whole default the forward chain drops the DNATed connection too: the port
    is closed from outside, and nothing is bypassed."""
    snapshot = docker29("docker29-usernet-portmap+archlinux-default")
    c1 = entry(exposures(snapshot), "c1", 80)
    assert c1.risk != BYPASS and not [d for d in c1.doors if d.source == UPLINK]
    assert run_rule("exposure-firewall-bypass", snapshot) == []


def test_the_nft_dnat_of_one_address_a_set_a_range_th_and_maps():
    """The forms nft prints for a published port (as `nft -j` gives them, nftables 1.0.6): a
    `dnat` bound to one address is published there only; port sets, ranges, `th dport` (with
    `meta l4proto`, else TCP and UDP), maps keyed by the port, named or anonymous, alone or
    with the destination address, and Debian's address and port maps; a `dnat` to 127.x
    (Docker's DNS) is none, and a rule whose ports an earlier chain matched (kube-proxy's
    endpoint chain: only `meta l4proto tcp`) publishes none this can read; a `redirect` is
    a DNAT to the host."""
    def published(family: str, *expr: dict, sets: tuple = ()) -> list[tuple]:
        state = NamespaceState(ref=NamespaceRef(id=1, kind=NsKind.HOST, path="/x"))
        rule = NftRule(family=family, table="t", chain="c", handle=1, text="",
                       expr=json.dumps(list(expr)))
        chain = NftChain(family, "t", "c", type="nat", hook="prerouting")
        found = published_ports(replace(state, firewall=Firewall(
            nft_chains=(chain,), nft_rules=(rule,), nft_sets=sets)))
        return [(p.protocol, p.port, p.destination, p.family) for p in found]

    def match(left: dict, right, op: str = "==") -> dict:
        return {"match": {"op": op, "left": left, "right": right}}

    def field(protocol: str, name: str = "dport") -> dict:
        return {"payload": {"protocol": protocol, "field": name}}

    def dnat_map(key: dict, data, **more) -> dict:
        return {"dnat": {"family": "ip", "addr": {"map": {"key": key, "data": data}}, **more}}

    daddr, tcp, udp, th = field("ip", "daddr"), field("tcp"), field("udp"), field("th")
    l4proto = {"meta": {"key": "l4proto"}}
    to = {"dnat": {"addr": "192.0.2.2"}}
    one = (match(daddr, "10.99.0.1"), match(udp, 53), to)
    assert published("ip", *one) == [("udp", 53, "10.99.0.1", 4)]
    assert published("ip", match(tcp, {"set": [80, 443]}), to) == [
        ("tcp", 80, "", 4), ("tcp", 443, "", 4)]
    assert published("ip", match(tcp, {"set": [80, 443]}, "!="), to) == []
    assert published("ip", match(udp, {"range": [7000, 7002]}), to) == [
        ("udp", port, "", 4) for port in (7000, 7001, 7002)]
    assert published("ip", match(l4proto, "udp"), match(th, 53), to) == [("udp", 53, "", 4)]
    assert published("ip", match(th, 54), to) == [("tcp", 54, "", 4), ("udp", 54, "", 4)]
    anonymous = dnat_map(tcp, {"set": [[8080, {"concat": ["192.0.2.2", 80]}],
                                       [8081, {"concat": ["192.0.2.2", 81]}]]})
    assert published("ip", anonymous) == [("tcp", 8080, "", 4), ("tcp", 8081, "", 4)]
    pm = NftSet("ip", "t", "pm", "inet_service", '[[9090, {"concat": ["192.0.2.3", 90]}]]',
                map="ipv4_addr . inet_service")
    assert published("ip", dnat_map(udp, "@pm"), sets=(pm,)) == [("udp", 9090, "", 4)]
    assert published("ip", dnat_map(udp, "@pm")) == []  # the map is not in the snapshot
    concat = dnat_map({"concat": [daddr, tcp]}, {"set": [[{"concat": ["10.99.0.1", 8082]},
                                                          {"concat": ["192.0.2.2", 80]}]]})
    assert published("ip", concat) == [("tcp", 8082, "10.99.0.1", 4)]
    debian = dnat_map(tcp, {"set": [[1000, "192.0.2.2"], [2000, "172.17.0.2"]]},
                      port={"map": {"key": tcp, "data": {"set": [[1000, 80], [2000, 80]]}}})
    assert published("ip", match(daddr, "10.99.0.1"), debian) == [
        ("tcp", 1000, "10.99.0.1", 4), ("tcp", 2000, "10.99.0.1", 4)]
    inet6 = {"dnat": {"family": "ip6", "addr": "fd00::2", "port": 80}}
    assert published("inet", match(tcp, 8080), inet6) == [("tcp", 8080, "", 6)]
    assert published("ip", *one[:2], {"dnat": {"addr": "127.0.0.11"}}) == []
    kube = {"dnat": {"addr": "172.17.0.2", "port": 80}}
    assert published("ip", match(l4proto, "tcp"), kube) == []
    # firewalld's `tcp dport 222 redirect to :22`: to the host itself
    redirect = {"redirect": {"port": 22}}
    assert published("inet", match(tcp, 222), redirect) == [("tcp", 222, "", 4),
                                                            ("tcp", 222, "", 6)]
    ipv6 = match({"meta": {"key": "nfproto"}}, "ipv6")
    assert published("inet", ipv6, match(tcp, 9090), redirect) == [("tcp", 9090, "", 6)]


# An `ip nat` table's rules as `nft -j` writes them, for the tests of what a DNAT reaches.
_FIB_DADDR_LOCAL = {"match": {"op": "==", "right": "local",
                              "left": {"fib": {"result": "type", "flags": ["daddr"]}}}}
_DNAT_TO = {"dnat": {"addr": "192.0.2.2", "port": 80}}


def _nat_rule(chain: str, handle: int, *expr: dict) -> NftRule:
    return NftRule("ip", "nat", chain, handle, "", json.dumps(list(expr)))


def _tcp_dport(number: int) -> dict:
    return {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                      "right": number}}


def test_a_dnat_behind_fib_daddr_type_local_is_the_hosts_only():
    """A `dnat` prerouting reaches for any address (Debian's nat example, firewalld's
    forward-port) takes a connection to a container's address too: published `anywhere`; one
    behind `fib daddr type local` (Docker's, netavark's guard) or bound to an address is the
    host's only."""
    rule, port, local, to = _nat_rule, _tcp_dport, _FIB_DADDR_LOCAL, _DNAT_TO
    daddr = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                       "right": "10.99.0.1"}}
    firewall = Firewall(
        nft_chains=(NftChain("ip", "nat", "pre", type="nat", hook="prerouting"),
                    NftChain("ip", "nat", "guarded")),
        nft_rules=(rule("pre", 1, local, {"jump": {"target": "guarded"}}),
                   rule("pre", 2, port(1000), to), rule("pre", 3, daddr, port(1001), to),
                   rule("pre", 4, local, port(1002), to), rule("guarded", 5, port(1003), to)))
    state = replace(NamespaceState(ref=NamespaceRef(id=1, kind=NsKind.HOST, path="/x")),
                    firewall=firewall)
    anywhere = {p.port: p.anywhere for p in published_ports(state)}
    assert anywhere == {1000: True, 1001: False, 1002: False, 1003: False}


def test_a_dnat_output_reaches_for_any_address_takes_the_hosts_own_connections():
    """A `dnat` that output reaches unbound takes what the host itself sends to any address
    (`anywhere_out`), not what prerouting forwards (`anywhere`); one behind `fib daddr type
    local` neither."""
    rule, port, local, to = _nat_rule, _tcp_dport, _FIB_DADDR_LOCAL, _DNAT_TO
    firewall = Firewall(
        nft_chains=(NftChain("ip", "nat", "pre", type="nat", hook="prerouting"),
                    NftChain("ip", "nat", "out", type="nat", hook="output"),
                    NftChain("ip", "nat", "both")),
        nft_rules=(rule("pre", 1, port(1000), to), rule("out", 2, port(1001), to),
                   rule("out", 3, local, port(1002), to),
                   rule("pre", 4, {"jump": {"target": "both"}}),
                   rule("out", 5, {"jump": {"target": "both"}}),
                   rule("both", 6, port(1003), to)))
    state = replace(NamespaceState(ref=NamespaceRef(id=1, kind=NsKind.HOST, path="/x")),
                    firewall=firewall)
    assert {p.port: (p.anywhere, p.anywhere_out) for p in published_ports(state)} == {
        1000: (True, False), 1001: (False, True), 1002: (False, False), 1003: (True, True)}


def test_a_forward_for_any_address_is_tried_from_the_other_bridge_and_the_host_itself():
    """A host without Docker, two bridges with a namespace behind each, and hand-written
    iptables forwards for any address: PREROUTING's (2000) takes n1's connection to n0's own
    address from the other bridge too; OUTPUT's (2004), the host's own to any address. A
    host without an engine has its bridges for networks, and no Docker control to name."""
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="10.99.0.1/24")
    b.route(host, "default", dev="eth0", gateway="10.99.0.2")
    b.sysctl(host, "net.ipv4.ip_forward", 1)
    for name, bridge, gateway, address in (("n0", "br0", "192.0.2.1", "192.0.2.2"),
                                           ("n1", "br1", "198.51.100.1", "198.51.100.2")):
        ns = b.namespace(name)
        b.bridge(host, bridge, address=f"{gateway}/24")
        b.veth(ns, "eth0", host, f"v{name}", address=f"{address}/24", peer_master=bridge)
        b.route(ns, "default", dev="eth0", gateway=gateway)
        if name == "n0":
            b.socket(ns, "tcp", "0.0.0.0", 80)
    for rule in ("-A PREROUTING -p tcp -m tcp --dport 2000 -j DNAT --to-destination "
                 "192.0.2.2:80", "-A PREROUTING -d 10.99.0.1/32 -p tcp -m tcp --dport 2001 "
                 "-j DNAT --to-destination 192.0.2.2:80",
                 "-A OUTPUT -p tcp -m tcp --dport 2004 -j DNAT --to-destination 192.0.2.2:80"):
        b.iptables(host, "nat", rule)
    (web,) = exposures(b.build())
    doors = {(d.source, d.where, d.address, d.port, d.via) for d in web.doors}
    assert {(NETWORK, "br1", "192.0.2.2", 80, DIRECT),
            (NETWORK, "br1", "192.0.2.2", 2000, PUBLISHED),
            (FROM_HOST, "host", "198.51.100.2", 2004, PUBLISHED)} <= doors
    assert not any(d.port == 2001 and d.address != "10.99.0.1" for d in web.doors)
    assert not any(c.id == "2.2" for c in web.controls)


def test_a_verdict_map_element_whose_key_is_not_read_still_leads_to_its_chain():
    """A verdict map keyed by `ip daddr . tcp dport` whose element names an address prefix
    (not read as a published port's key) still leads to its chain: the DNAT there that names
    its own port is found, bound to a destination (not for any address)."""
    def rule(chain: str, handle: int, *expr: dict) -> NftRule:
        return NftRule("ip", "nat", chain, handle, "", json.dumps(list(expr)))

    daddr = {"payload": {"protocol": "ip", "field": "daddr"}}
    dport = {"payload": {"protocol": "tcp", "field": "dport"}}
    prefix = {"prefix": {"addr": "10.99.0.0", "len": 24}}
    firewall = Firewall(
        nft_chains=(NftChain("ip", "nat", "pre", type="nat", hook="prerouting"),
                    NftChain("ip", "nat", "web"), NftChain("ip", "nat", "ssh")),
        nft_rules=(rule("pre", 1, {"vmap": {"key": {"concat": [daddr, dport]}, "data": {"set": [
                       [{"concat": [prefix, 8080]}, {"jump": {"target": "web"}}],
                       [{"concat": ["10.99.0.1", 2222]}, {"jump": {"target": "ssh"}}]]}}}),
                   rule("web", 2, {"match": {"op": "==", "left": dport, "right": 8080}},
                        {"dnat": {"addr": "192.0.2.2", "port": 80}}),
                   rule("ssh", 3, {"dnat": {"addr": "192.0.2.2", "port": 22}})))
    state = replace(NamespaceState(ref=NamespaceRef(id=1, kind=NsKind.HOST, path="/x")),
                    firewall=firewall)
    assert sorted((p.port, p.destination, p.anywhere) for p in published_ports(state)) == [
        (2222, "10.99.0.1", False), (8080, "", False)]


def test_a_node_port_is_read_from_the_verdict_map_that_leads_to_its_dnat():
    """kube-proxy's nftables mode: `ip daddr @nodeport-ips meta l4proto . th dport vmap
    @service-nodeports` goes to an endpoint chain whose `meta l4proto tcp dnat to
    192.0.2.2:80` names no port — the node port is the map's key, on the set's address."""
    def rule(chain: str, handle: int, *expr: dict) -> NftRule:
        return NftRule("ip", "kube-proxy", chain, handle, "", json.dumps(list(expr)))

    l4proto, th = {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}
    daddr = {"payload": {"protocol": "ip", "field": "daddr"}}
    firewall = Firewall(
        nft_chains=(NftChain("ip", "kube-proxy", "nat-prerouting", type="nat",
                             hook="prerouting"), NftChain("ip", "kube-proxy", "services"),
                    NftChain("ip", "kube-proxy", "endpoint")),
        nft_sets=(NftSet("ip", "kube-proxy", "nodeport-ips", "ipv4_addr", '["10.99.0.1"]'),
                  NftSet("ip", "kube-proxy", "service-nodeports", "inet_proto . inet_service",
                         '[[{"concat": ["tcp", 3003]}, {"goto": {"target": "endpoint"}}]]',
                         map="verdict")),
        nft_rules=(rule("nat-prerouting", 1, {"jump": {"target": "services"}}),
                   rule("services", 2, {"match": {"op": "==", "left": daddr,
                                                  "right": "@nodeport-ips"}},
                        {"vmap": {"key": {"concat": [l4proto, th]},
                                  "data": "@service-nodeports"}}),
                   rule("endpoint", 3, {"match": {"op": "==", "left": l4proto,
                                                  "right": "tcp"}},
                        {"dnat": {"addr": "192.0.2.2", "port": 80}})))
    state = replace(NamespaceState(ref=NamespaceRef(id=1, kind=NsKind.HOST, path="/x")),
                    firewall=firewall)
    assert [(p.protocol, p.port, p.destination, p.anywhere) for p in published_ports(state)] \
        == [("tcp", 3003, "10.99.0.1", False)]


def test_a_dnat_to_a_port_range_keeps_a_port_it_holds():
    """`udp dport 7000-7010 dnat to 192.0.2.2:7000-7002`: the kernel keeps 7001, and takes
    the range's first port for 7005 (nf_nat_core.c's get_unique_tuple)."""
    expr = ('[{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": '
            '"dport"}}, "right": {"range": [7000, 7010]}}}, {"dnat": {"addr": "192.0.2.2", '
            '"port": {"range": [7000, 7002]}}}]')
    found = {d.port: d.target for d in dnat_of(NftRule("ip", "t", "c", 1, "", expr))}
    assert found[7001] == "192.0.2.2:7001" and found[7005] == "192.0.2.2:7000"


# --- IPv6: Docker 28 with ip6tables (a network with IPv6, a port published on [::]) ---------

V6 = {"172.18.0.2/32": "fd00:18::2/128", "172.19.0.2/32": "fd00:19::2/128",
      "172.19.0.0/16": "fd00:19::/64", "172.18.0.0/16": "fd00:18::/64",
      "172.17.0.0/16": "fd00:17::/64", "127.0.0.0/8": "::1/128",
      "--to-destination 172.18.0.2:80": "--to-destination [fd00:18::2]:80"}


def ipv6_host(ufw: bool, with_v6_socket: bool = True):
    """docker_host("modern") with IPv6 as Docker 28 makes it (`--ipv6`, ip6tables on): the
    host's eth0 2001:db8:1::10/64 (default via fe80::1), br-web fd00:18::1/64 with web at
    fd00:18::2 listening on [::]:80, its 8080 published on [::] by ip6tables' DNAT and the
    modern layout's filter and raw rules in ip6tables; `ufw`: ip6tables' INPUT as ufw leaves
    it (policy DROP, ssh allowed), the IPv4 INPUT left open."""
    def six(rule: str) -> str:
        for old, new in V6.items():
            rule = rule.replace(old, new)
        return rule

    d = docker_host("modern")
    b = d.b
    b.sysctl(d.host, "net.ipv6.conf.all.forwarding", 1)
    b.address(d.host, "eth0", "2001:db8:1::10/64")
    b.route(d.host, "default", gateway="fe80::1", dev="eth0", family=6)
    b.address(d.host, "br-web", "fd00:18::1/64")
    b.address(d.web, "eth0", "fd00:18::2/64")
    b.route(d.web, "default", gateway="fd00:18::1", dev="eth0", family=6)
    if with_v6_socket:
        b.socket(d.web, "tcp", "::", 80, process="httpd", pid=200)
    b.chain(d.host, "filter", "FORWARD", "DROP", family=6)
    b.chain(d.host, "filter", "DOCKER-USER", family=6)
    for table, rules in (("filter", MODERN_FILTER), ("nat", NAT), ("raw", MODERN_RAW)):
        for rule in rules.splitlines():
            if "MASQUERADE" not in rule or "172.18" in rule:  # NAT66 of web's subnet only
                b.iptables(d.host, table, six(rule), family=6)
    if ufw:
        b.chain(d.host, "filter", "INPUT", "DROP", family=6)
        # ufw's before6.rules let neighbour discovery in (untracked: no ctstate lets it in);
        # its `-m hl --hl-eq 255` left out
        for rule in ("-A INPUT -i lo -j ACCEPT",
                     "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                     "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT",
                     "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT",
                     "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"):
            b.iptables(d.host, "filter", rule, family=6)
    engine = b.docker[0]
    networks = tuple(replace(n, ipv6=True, ipam=n.ipam + (DockerIpam("fd00:18::/64",
                                                                     "fd00:18::1"),))
                     if n.name == "web" else n for n in engine.networks)
    d.intent(networks=networks)
    return d


def test_ipv6_published_port_under_ip6tables_input_drop_is_a_bypass():
    d = ipv6_host(ufw=True)
    snapshot = d.build()
    web6 = next(e for e in exposures(snapshot) if e.namespace.display == "web"
                and e.socket.address == "::" and e.socket.port == 80)
    door = next(d for d in web6.doors if d.source == UPLINK and d.address == "2001:db8:1::10")
    assert (web6.risk, door.via, door.port) == (BYPASS, PUBLISHED, 8080)
    assert "--to-destination [fd00:18::2]:80" in door.rule
    assert door.input_drop == "filter/INPUT policy DROP"
    # the IPv4 INPUT is open: IPv4's 8080 is public, not a bypass
    web4 = next(e for e in exposures(snapshot) if e.namespace.display == "web"
                and e.socket.address == "0.0.0.0" and e.socket.port == 80)
    assert web4.risk == PUBLIC and not any(":" in d.address for d in web4.doors)
    (finding,) = run_rule("exposure-firewall-bypass", snapshot)
    assert finding.subject == "tcp/8080" and "tcp 2001:db8:1::10:8080" in finding.message
    assert "web ([fd00:18::2]:80)" in finding.message
    assert "filter/INPUT policy DROP" in finding.message and "eth0" in finding.message


def test_ipv6_without_an_input_policy_is_public_and_quiet():
    snapshot = ipv6_host(ufw=False).build()
    web6 = next(e for e in exposures(snapshot) if e.namespace.display == "web"
                and e.socket.address == "::" and e.socket.port == 80)
    assert web6.risk == PUBLIC
    assert any(d.address == "2001:db8:1::10" and d.via == PUBLISHED for d in web6.doors)
    # 28's raw PREROUTING drops the container's own address from outside, as for IPv4
    assert not any(d.source == UPLINK and d.address == "fd00:18::2" for d in web6.doors)
    assert run_rule("exposure-firewall-bypass", snapshot) == []


def test_an_ipv4_only_socket_is_not_reached_over_ipv6():
    """Without web's [::] socket, ip6tables' DNAT to [fd00:18::2]:80 finds no listener: the
    IPv4 socket on 0.0.0.0 takes no IPv6 connection — no IPv6 door, no bypass."""
    snapshot = ipv6_host(ufw=True, with_v6_socket=False).build()
    web4 = entry(exposures(snapshot), "web", 80)
    assert not any(":" in d.address for d in web4.doors)
    assert run_rule("exposure-firewall-bypass", snapshot) == []


def test_an_ipv6_address_the_kernel_has_not_taken_up_is_not_a_door():
    """A real Docker 20.10 host with IPv6 (tests/fixtures/docker28_ipv6/): docker0's
    fd00:20::1 and the idle internal network's fd00:30::1 sit on bridges without carrier,
    so table local has no route for them and nothing reaches them; up0's and the busy
    bridge's addresses are doors, and the published port is reached over IPv6 too."""
    snapshot = load(Path(__file__).parents[1] / "fixtures" / "docker28_ipv6" /
                    "healthy-20.10.json")
    addresses = {d.address for e in exposures(snapshot) for d in e.doors}
    assert {"fd00:19:29::2", "fd00:29::1", "::1"} <= addresses
    assert not {"fd00:20::1", "fd00:30::1"} & addresses
    web = next(e for e in exposures(snapshot) if e.namespace.display == "web")
    assert any(d.address == "fd00:19:29::2" and d.port == 8080 and d.via == PUBLISHED
               and d.source == UPLINK for d in web.doors)
    assert run_rule("exposure-firewall-bypass", snapshot) == []


def test_a_routed_ipv6_networks_published_port_at_the_containers_address_is_meant():
    """gateway_mode_ipv6=routed (Docker 28): the port web publishes is open at its own IPv6
    address on purpose — public, not unpublished; the same network in nat mode: unpublished
    (the ip6tables raw drop taken out, as before 28.2)."""
    def web_risk(mode: str) -> str:
        d = ipv6_host(ufw=False)
        rules = d.b._fields[d.host]["iptables_rules"]
        rules[:] = [r for r in rules if not (r.family == 6 and r.table == "raw")]
        engine = d.b.docker[0]
        d.intent(networks=tuple(replace(n, options=n.options + (
            ("com.docker.network.bridge.gateway_mode_ipv6", mode),)) if n.name == "web" else n
            for n in engine.networks))
        d.container_intent("web", endpoints=tuple(replace(e, ipv6="fd00:18::2")
                                                  for e in engine.containers[1].endpoints))
        snapshot = d.build()
        web6 = next(e for e in exposures(snapshot) if e.namespace.display == "web"
                    and e.socket.address == "::" and e.socket.port == 80)
        assert any(x.source == UPLINK and x.address == "fd00:18::2" and x.via == DIRECT
                   for x in web6.doors), web6.doors
        return web6.risk

    assert web_risk("routed") == PUBLIC
    assert web_risk("nat") == UNPUBLISHED


@pytest.mark.parametrize("v6only", (False, True))
def test_a_v6only_socket_on_the_ipv6_wildcard_takes_no_ipv4(v6only):
    """Docker 28's docker-proxy for a routed network's port listens on [::] alone, with
    IPV6_V6ONLY: the host's own IPv4 connections to the port are refused, its IPv6 ones
    reach it. Without the flag, `::` takes IPv4 too: the flow engine's listener and the
    table agree on both."""
    d = ipv6_host(ufw=False)
    d.b.socket(d.host, "tcp", "::", 8083, process="docker-proxy", pid=301, v6only=v6only)
    snapshot = d.build()
    engine = Engine(snapshot)

    def fate(dst: str) -> str:
        return engine.path(d.host, Packet("", dst, "tcp", 43210, 8083)).disposition

    assert fate("2001:db8:1::10") == fate("::1") == "delivered"
    for address in ("192.168.1.10", "127.0.0.1"):
        assert fate(address) == ("no-listener" if v6only else "delivered")
    proxy = next(e for e in exposures(snapshot) if e.socket.port == 8083)
    ipv4 = {d.address for d in proxy.doors if ":" not in d.address}
    assert {d.address for d in proxy.doors if d.source == FROM_HOST} >= {"2001:db8:1::10"}
    assert (ipv4 == set()) if v6only else "192.168.1.10" in ipv4


def test_a_container_reaches_the_hosts_own_sockets_from_its_network():
    """From the other networks on the host, the host's own addresses are tried too: web's
    network (default route via br-web) reaches sshd at every address of the host; the
    internal network's db, without a default route, only at its own gateway. The ufw-like
    INPUT drops 8080's docker-proxy for them (Docker's DNAT skips the bridge it came in by)."""
    host = docker_host("modern")
    ufw_like(host)
    found = exposures(host.build())
    sshd = {(d.where, d.address) for d in entry(found, "host", 22).doors
            if d.source == NETWORK}
    assert sshd == {("web", a) for a in ("192.168.1.10", "172.17.0.1", "172.18.0.1",
                                         "172.19.0.1")} | {("int", "172.19.0.1")}
    assert not any(d.source == NETWORK for d in entry(found, "host", 8080).doors)
