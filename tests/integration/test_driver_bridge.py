"""The bridge driver in real namespaces, proven with packets: a "host" namespace holds the
bridges, containers are namespaces, and an "outside" namespace routed from the host stands for
the world (it has no route back to container subnets, so reaching it proves NAT).

Golden files: tests/golden/bridge_<options>.rules hold the normalised iptables-save of a host
built with those options; run with NETDIAG_UPDATE_GOLDEN=1 to rewrite them after a deliberate
change, and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from netdiag.cli import main
from netdiag.drivers.controller import Controller
from netdiag.errors import Conflict
from netdiag.store import SqliteStore
from netdiag.store.records import PortBinding
from tests.conftest import pings, sh

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parent.parent / "golden"
HOST_IP, OUTSIDE_IP = "203.0.113.1", "203.0.113.2"


class Lab:
    """A host namespace with an uplink to an outside namespace, and a controller."""

    def __init__(self, factory, store_path: Path):
        self.factory = factory
        self.host = factory("host")
        self.outside = factory("out")
        sh(f"ip -n {self.host} link add up0 type veth peer name eth0 netns {self.outside}")
        sh(f"ip -n {self.host} addr add {HOST_IP}/24 dev up0")
        sh(f"ip -n {self.host} link set up0 up")
        sh(f"ip -n {self.outside} addr add {OUTSIDE_IP}/24 dev eth0")
        sh(f"ip -n {self.outside} link set eth0 up")
        self.store_path = store_path
        self.controller = Controller(SqliteStore(store_path))
        self.servers: list[subprocess.Popen] = []

    def container(self, role: str) -> str:
        return self.factory(role)

    def network(self, name: str, **kwargs):
        return self.controller.create_network(name, self.host, **kwargs)

    def connect(self, network: str, role: str, **kwargs):
        return self.controller.connect(network, self.container(role), **kwargs)

    def serve_http(self, ns: str, port: int, folder: Path) -> None:
        """python3 -m http.server in `ns`, started here and killed by pid at teardown."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-m", "http.server",
                                 str(port), "--bind", "0.0.0.0", "--directory", str(folder)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.servers.append(proc)
        for _ in range(100):
            if f":{port} " in sh(f"ip netns exec {ns} ss -Htln", check=False):
                return
            time.sleep(0.05)
        raise AssertionError(f"http.server in {ns} did not start")

    def close(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        self.controller.store.close()


@pytest.fixture
def lab(netns_factory, tmp_path):
    lab = Lab(netns_factory, tmp_path / "store.db")
    try:
        yield lab
    finally:
        lab.close()


def http_get(ns: str, url: str) -> str:
    code = ("import urllib.request,sys;"
            f"sys.stdout.write(urllib.request.urlopen('{url}', timeout=3).read().decode())")
    return sh(f"ip netns exec {ns} python3 -c \"{code}\"")


def test_one_bridge_reaches_itself_and_the_outside_through_nat(lab):
    lab.network("web", options={"com.docker.network.driver.mtu": "1400"})
    c1 = lab.connect("web", "c1")
    c2 = lab.connect("web", "c2")
    assert (c1.ip, c2.ip) == ("172.17.0.2", "172.17.0.3")
    assert pings(c1.sandbox.rsplit("/", 1)[1], c2.ip)
    assert pings(c2.sandbox.rsplit("/", 1)[1], OUTSIDE_IP)
    # Link properties: eth0 in the container, MTU on both ends, Docker's MAC, default route.
    c1_ns = c1.sandbox.rsplit("/", 1)[1]
    assert "mtu 1400" in sh(f"ip -n {c1_ns} link show eth0")
    assert "link/ether 02:42:ac:11:00:02" in sh(f"ip -n {c1_ns} link show eth0")
    assert "mtu 1400" in sh(f"ip -n {lab.host} link show {c1.host_ifname}")
    assert "default via 172.17.0.1 dev eth0" in sh(f"ip -n {c1_ns} route")
    assert sh(f"ip netns exec {lab.host} cat /proc/sys/net/ipv4/ip_forward").strip() == "1"


def test_different_bridges_cannot_reach_each_other(lab):
    lab.network("front")
    lab.network("back")
    a = lab.connect("front", "a")
    b = lab.connect("back", "b")
    assert b.address.startswith("172.18.")
    assert pings("".join(b.sandbox.rsplit("/", 1)[1:]), OUTSIDE_IP)  # back itself works
    assert not pings(a.sandbox.rsplit("/", 1)[1], b.ip)


def test_icc_off_separates_containers_on_one_bridge(lab):
    lab.network("quiet", options={"icc": "false"})
    a = lab.connect("quiet", "a")
    b = lab.connect("quiet", "b")
    assert pings(a.sandbox.rsplit("/", 1)[1], OUTSIDE_IP)
    assert not pings(a.sandbox.rsplit("/", 1)[1], b.ip)


def test_internal_network_has_no_egress(lab):
    lab.network("vault", internal=True)
    a = lab.connect("vault", "a")
    b = lab.connect("vault", "b")
    a_ns = a.sandbox.rsplit("/", 1)[1]
    assert pings(a_ns, b.ip)
    assert "default" not in sh(f"ip -n {a_ns} route")
    assert not pings(a_ns, OUTSIDE_IP)
    with pytest.raises(Conflict, match="internal"):
        lab.connect("vault", "c", ports=[PortBinding(80, host_port=8080)])


def test_published_port_answers_http_from_a_client_namespace(lab, tmp_path):
    (tmp_path / "hello.txt").write_text("hello from c1\n")
    lab.network("web")
    c1 = lab.connect("web", "c1", ports=[PortBinding(80, host_port=8080)])
    assert c1.ports == (PortBinding(80, "tcp", 8080, "0.0.0.0"),)
    lab.serve_http(c1.sandbox.rsplit("/", 1)[1], 80, tmp_path)
    assert http_get(lab.outside, f"http://{HOST_IP}:8080/hello.txt") == "hello from c1\n"


def test_hairpin_lets_a_container_reach_its_own_published_port(lab, tmp_path):
    (tmp_path / "hello.txt").write_text("hairpin\n")
    lab.network("loop", options={"hairpin": "true"})
    c1 = lab.connect("loop", "c1", ports=[PortBinding(80, host_port=8080)])
    c1_ns = c1.sandbox.rsplit("/", 1)[1]
    lab.serve_http(c1_ns, 80, tmp_path)
    assert http_get(c1_ns, f"http://{HOST_IP}:8080/hello.txt") == "hairpin\n"
    assert "hairpin on" in sh(f"ip -n {lab.host} -d link show {c1.host_ifname}")


def test_check_finds_a_deleted_veth_a_changed_mtu_and_a_deleted_nat_rule(lab):
    net = lab.network("web")
    c1 = lab.connect("web", "c1")
    c2 = lab.connect("web", "c2")
    assert lab.controller.check() == []
    sh(f"ip -n {lab.host} link del {c1.host_ifname}")
    sh(f"ip -n {c2.sandbox.rsplit('/', 1)[1]} link set eth0 mtu 1300")
    bridge = f"br-{net.id[:12]}"
    sh(f"ip netns exec {lab.host} iptables -t nat -D POSTROUTING -s 172.17.0.0/16 "
       f"! -o {bridge} -j MASQUERADE")
    found = {(f.code, f.subject) for f in lab.controller.check()}
    assert ("ND961", c1.host_ifname) in found
    assert ("ND962", "eth0") in found
    assert ("ND964", "nat/POSTROUTING") in found


def test_a_failed_network_step_rolls_back_store_and_pool(lab):
    sh(f"ip -n {lab.host} link add br-taken type bridge")
    with pytest.raises(Conflict, match="^bridge network web: device failed: device br-taken "
                                       "already exists$"):
        lab.network("web", options={"com.docker.network.bridge.name": "br-taken"})
    assert lab.controller.networks() == []
    assert lab.network("web").subnet == "172.17.0.0/16"  # the pool was given back


def test_a_failed_join_rolls_back_devices_address_and_store(lab):
    lab.network("web")
    c1 = lab.container("c1")
    sh(f"ip -n {c1} link add eth0 type veth peer name other0")  # eth0 is taken in c1
    with pytest.raises(Conflict, match="join .* the sandbox already has a device eth0"):
        lab.controller.connect("web", c1)
    assert lab.controller.store.endpoints() == []
    assert "veth" not in sh(f"ip -n {lab.host} -br link")
    names = sorted(line.split()[0] for line in sh(f"ip -n {c1} -br link").splitlines())
    assert names == ["eth0@other0", "lo", "other0@eth0"]  # the sandbox's own eth0 stays
    assert lab.connect("web", "c2").ip == "172.17.0.2"  # the address was given back


def test_state_survives_a_restart_and_is_reconciled_with_the_kernel(lab, netns_factory):
    lab.network("web")
    lab.connect("web", "c1")
    c2 = lab.connect("web", "c2")
    lab.controller.store.close()
    controller = Controller(SqliteStore(lab.store_path))
    lab.controller = controller
    assert [n.name for n in controller.networks()] == ["web"]
    sh(f"ip netns del {c2.sandbox.rsplit('/', 1)[1]}")
    netns_factory.names.remove(c2.sandbox.rsplit("/", 1)[1])
    assert controller.reconcile() == ["forgot endpoint c2 of web: its namespace is gone"
                                      .replace("c2", c2.name)]
    c3 = controller.connect("web", lab.container("c3"))
    assert c3.ip == c2.ip  # the address came back


def test_net_command_round_trip(lab, capsys):
    store = str(lab.store_path) + ".cli"
    c1 = lab.container("c1")
    assert main(["net", "--store", store, "create", "web", "--host-ns", lab.host,
                 "-o", "mtu=1450"]) == 0
    assert main(["net", "--store", store, "connect", "web", c1, "-p", "8080:80"]) == 0
    assert main(["net", "--store", store, "ls"]) == 0
    assert main(["net", "--store", store, "check"]) == 0
    assert main(["net", "--store", store, "rm", "web"]) == 2  # active endpoints
    assert main(["net", "--store", store, "disconnect", "web", c1]) == 0
    assert main(["net", "--store", store, "rm", "web"]) == 0
    out = capsys.readouterr().out
    assert "eth0 172.17.0.2/16 0.0.0.0:8080->80/tcp" in out
    assert re.search(r"web\s+bridge\s+local\s+172\.17\.0\.0/16", out)
    assert "br-" not in sh(f"ip -n {lab.host} -br link")


# --- golden iptables-save output per option set -----------------------------------------------

GOLDEN_CASES = {
    "default_port": {},
    "icc_off": {"com.docker.network.bridge.enable_icc": "false"},
    "no_masquerade": {"com.docker.network.bridge.enable_ip_masquerade": "false"},
    "internal": {"com.docker.network.internal": "true"},
    "hairpin": {"netdiag.bridge.hairpin": "true"},
    "host_binding": {"com.docker.network.bridge.host_binding_ipv4": HOST_IP},
}


def normalised_save(ns: str) -> str:
    """iptables-save without comments and with bridge names numbered by first appearance."""
    text = "\n".join(line for line in sh(f"ip netns exec {ns} iptables-save").splitlines()
                     if not line.startswith("#")) + "\n"
    names: dict[str, str] = {}
    return re.sub(r"br-[0-9a-f]{12}",
                  lambda m: names.setdefault(m.group(0), f"br-NET{len(names) + 1}"), text)


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / f"bridge_{name}.rules"
    if os.environ.get("NETDIAG_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"iptables-save differs from {path}"


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_iptables_layout_matches_golden_file(lab, case):
    options = GOLDEN_CASES[case]
    lab.network("first", subnet="172.30.0.0/16")
    lab.network("web", subnet="172.18.0.0/16", options=options)
    ports = [] if "internal" in case else [PortBinding(80, host_port=8080)]
    lab.connect("web", "c1", ports=ports)
    assert_golden(case, normalised_save(lab.host))
    # The driver's own rule texts are in iptables-save's form, or check() would cry wolf.
    assert lab.controller.check() == []


def test_removing_everything_leaves_only_the_host_wide_rules(lab):
    lab.network("web", subnet="172.18.0.0/16")
    lab.connect("web", "c1", ports=[PortBinding(80, host_port=8080)])
    lab.controller.delete_network("web", force=True)
    assert_golden("removed", normalised_save(lab.host))


# --- against a real Docker engine -------------------------------------------------------------

DOCKER_NET, DOCKER_WEB = "ndt-cmp-net", "ndt-cmp-web"


def comparable_rules(save: str, bridge: str, container_ip: str) -> list[str]:
    """One network's rules and the host-wide ones; other networks' and containers' are left
    out (the session's engine may hold what other tests made)."""
    kept = []
    for line in save.splitlines():
        if line.startswith("#"):
            continue
        if re.search(r"br-[0-9a-f]{12}", line) and bridge not in line:
            continue
        if "--dport" in line and container_ip not in line:
            continue
        # Packet counters are not the firewall: the session engine's chains count whatever
        # the tests before sent through them.
        kept.append(re.sub(r"\[\d+:\d+\]$", "[0:0]", line.replace(bridge, "br-NET")))
    return kept


def link_facts(ns_command: str, ifname: str) -> dict:
    """What an operator compares: MTU, state, kind, addresses and routes."""
    link = json.loads(sh(f"{ns_command} ip -j -d link show {ifname}"))[0]
    addrs = json.loads(sh(f"{ns_command} ip -j addr show {ifname}"))[0]["addr_info"]
    routes = json.loads(sh(f"{ns_command} ip -j route show dev {ifname}"))
    return {"mtu": link["mtu"], "operstate": link["operstate"],
            "kind": link.get("linkinfo", {}).get("info_kind"),
            "addresses": sorted((a["local"], a["prefixlen"], a.get("broadcast", ""), a["scope"])
                                for a in addrs if a["family"] == "inet"),
            "routes": sorted((r["dst"], r.get("gateway", ""), r.get("protocol", ""),
                              r.get("scope", "")) for r in routes)}


@pytest.mark.docker
def test_same_firewall_and_links_as_a_real_docker_engine(docker_engine, lab):
    from tests.docker_engine import IMAGE

    engine = docker_engine
    engine.docker("network", "create", DOCKER_NET)
    try:
        engine.docker("run", "-d", "--name", DOCKER_WEB, "--network", DOCKER_NET,
                      "-p", "8080:80", IMAGE, "httpd", "-f", "-p", "80", "-h", "/www")
        net = json.loads(engine.docker("network", "inspect", DOCKER_NET))[0]
        bridge = f"br-{net['Id'][:12]}"
        subnet = net["IPAM"]["Config"][0]["Subnet"]
        ip = engine.container_ip(DOCKER_WEB, DOCKER_NET)
        docker_rules = comparable_rules(engine.in_netns("iptables-save"), bridge, ip)
        sandbox = f"nsenter --net={engine.sandbox_key(DOCKER_WEB)}"
        docker_eth0 = link_facts(sandbox, "eth0")
        docker_mac = engine.inspect(DOCKER_WEB)["NetworkSettings"]["Networks"][DOCKER_NET][
            "MacAddress"]
        docker_bridge = link_facts(f"nsenter --net={engine.netns_path}", bridge)
        veth = sh(f"nsenter --net={engine.netns_path} ip -br link show master {bridge}").split()[0]
        docker_veth = link_facts(f"nsenter --net={engine.netns_path}", veth.split("@")[0])
    finally:
        engine.docker("rm", "-f", DOCKER_WEB, check=False)
        engine.docker("network", "rm", DOCKER_NET, check=False)

    # The same host built by netdiag: Docker's default bridge first, then the user network.
    lab.network("bridge", subnet="172.17.0.0/16",
                options={"com.docker.network.bridge.name": "docker0"})
    ours = lab.network(DOCKER_NET, subnet=subnet)
    web = lab.connect(DOCKER_NET, "web", ports=[PortBinding(80, host_port=8080)])
    assert web.ip == ip
    our_bridge = f"br-{ours.id[:12]}"
    assert any("DNAT --to-destination" in line for line in docker_rules)
    assert comparable_rules(sh(f"ip netns exec {lab.host} iptables-save"), our_bridge,
                            ip) == docker_rules
    web_ns = web.sandbox.rsplit("/", 1)[1]
    assert docker_eth0["addresses"] and docker_eth0["routes"]
    assert link_facts(f"ip netns exec {web_ns}", "eth0") == docker_eth0
    assert web.mac == docker_mac
    assert link_facts(f"ip netns exec {lab.host}", our_bridge) == docker_bridge
    assert link_facts(f"ip netns exec {lab.host}", web.host_ifname) == docker_veth


def _make_networks(store_path: str, host: str, prefix: str, count: int) -> None:
    with SqliteStore(store_path) as store:
        controller = Controller(store)
        for i in range(count):
            controller.create_network(f"{prefix}{i}", host)


def test_two_processes_building_on_one_host_leave_a_consistent_host(lab):
    import multiprocessing

    lab.controller.store.close()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_make_networks,
                               args=(str(lab.store_path), lab.host, prefix, 3))
               for prefix in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    lab.controller = Controller(SqliteStore(lab.store_path))
    networks = lab.controller.networks()
    assert len({n.subnet for n in networks}) == len(networks) == 6
    assert lab.controller.check() == []  # no rule lost to a concurrent batch
