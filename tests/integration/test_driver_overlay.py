"""The overlay driver across two hosts with packets: each host is a namespace with its own
underlay link to a shared underlay bridge; containers on different hosts ping each other and
speak HTTP, finding each other by name through the embedded DNS; check() names a missing FDB
entry and a wrong MTU; an encrypted network is refused on this kernel; a published port answers
from the underlay through docker_gwbridge and is gone after disconnect."""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from netdiag import netns
from netdiag.drivers.controller import Controller
from netdiag.drivers.dns import EmbeddedDnsServer
from netdiag.drivers.dns.store_names import StoreNames
from netdiag.drivers.ipam import GLOBAL_SPACE, DefaultIpam
from netdiag.drivers.overlay import OverlayDriver, gateway
from netdiag.drivers.overlay.dataplane import VXLAN, sandbox_path
from netdiag.drivers.overlay.options import VNI_KEY
from netdiag.errors import KernelFeatureMissing
from netdiag.store import SqliteStore, Store
from netdiag.store.records import Endpoint, Network, PortBinding, Scope
from tests.conftest import sh

pytestmark = pytest.mark.integration


class TwoHostController:
    """The controller steps the test needs, with each endpoint on the host the test names.

    drivers.controller puts every endpoint on its network's (first) host; an overlay spans
    hosts, so this test places endpoints itself.
    """

    def __init__(self, store: Store):
        self.store = store
        self.ipam = DefaultIpam(store)
        self.driver = OverlayDriver(store)

    def network(self, name: str, host: str, **options: str) -> Network:
        pool = self.ipam.request_pool(GLOBAL_SPACE)
        network = Network(id=secrets.token_hex(32), name=name, driver="overlay", host=host,
                          scope=Scope.GLOBAL, subnet=pool.subnet, pool_id=pool.id,
                          gateway=self.ipam.request_address(pool.id, owner="gateway"),
                          options=tuple(options.items()))
        network = self.driver.create_network(network)
        with self.store.transaction() as tx:
            tx.add_network(network)
        return network

    def run(self, network: Network, name: str, host: str, sandbox: str) -> Endpoint:
        address = self.ipam.request_address(network.pool_id, owner=name)
        prefix = ipaddress.ip_network(network.subnet).prefixlen
        endpoint = Endpoint(id=secrets.token_hex(32), network_id=network.id, name=name,
                            host=host, address=f"{address}/{prefix}")
        endpoint = self.driver.create_endpoint(network, endpoint)
        with self.store.transaction() as tx:
            tx.add_endpoint(endpoint)
        endpoint = self.driver.join(network, endpoint, sandbox)
        with self.store.transaction() as tx:
            tx.update_endpoint(endpoint)
        return endpoint

    def remove(self, network: Network, endpoint: Endpoint) -> None:
        endpoint = self.driver.leave(network, endpoint)
        self.driver.delete_endpoint(network, endpoint)
        with self.store.transaction() as tx:
            tx.delete_endpoint(endpoint.id)


@pytest.fixture
def cluster(netns_factory, tmp_path):
    """Two hosts on an underlay bridge (10.210.0.0/24), a container namespace for each."""
    underlay, h1, h2 = netns_factory("ul"), netns_factory("h1"), netns_factory("h2")
    c1, c2 = netns_factory("c1"), netns_factory("c2")
    sh(f"ip -n {underlay} link add ubr type bridge && ip -n {underlay} link set ubr up")
    for i, host in enumerate((h1, h2), start=1):
        sh(f"ip -n {host} link add eth0 type veth peer name u{i} netns {underlay}")
        sh(f"ip -n {underlay} link set u{i} master ubr up")
        sh(f"ip -n {host} addr add 10.210.0.{i}/24 dev eth0 && ip -n {host} link set eth0 up")
    store = SqliteStore(tmp_path / "drivers.db")
    try:
        yield TwoHostController(store), {"h1": f"/run/netns/{h1}", "h2": f"/run/netns/{h2}",
                                  "c1": f"/run/netns/{c1}", "c2": f"/run/netns/{c2}"}
    finally:
        store.close()
        for host in (h1, h2):  # overlay namespaces nested in our hosts: not the factory's
            for leftover in netns.NAMED_DIR.glob(f"{host}-*"):
                netns.delete_named(leftover.name)


HTTP = "import http.server as h; h.HTTPServer(('', 8080), h.SimpleHTTPRequestHandler)" \
       ".serve_forever()"


def test_two_hosts_ping_and_http_by_name(cluster, tmp_path):
    ctl, ns = cluster
    network = ctl.network("ov", ns["h1"])
    assert network.option(VNI_KEY) == "4096"
    e1 = ctl.run(network, "c1", ns["h1"], ns["c1"])
    e2 = ctl.run(network, "c2", ns["h2"], ns["c2"])
    assert e1.mac == "02:42:" + ":".join(f"{b:02x}" for b in
                                        ipaddress.IPv4Address(e1.ip).packed)
    c1, c2 = Path(ns["c1"]).name, Path(ns["c2"]).name
    assert "mtu 1450" in sh(f"ip -n {c1} link show eth0")
    overlay_h1 = Path(sandbox_path(ns["h1"], network)).name
    fdb = sh(f"bridge -n {overlay_h1} fdb show dev {VXLAN}")
    entry = next(line for line in fdb.splitlines() if line.startswith(e2.mac))
    assert "dst 10.210.0.2" in entry and entry.endswith("self permanent")
    (tmp_path / "index.html").write_text("hello over vxlan\n")
    server = subprocess.Popen(["ip", "netns", "exec", c2, sys.executable, "-c", HTTP],
                              cwd=tmp_path)
    with EmbeddedDnsServer(StoreNames(ctl.store)) as dns:
        for name in ("c1", "c2"):
            dns.attach(ns[name])
        try:
            sh(f"ip netns exec {c1} ping -c 2 -W 2 c2")
            page = sh(f"ip netns exec {c1} curl -s --retry 20 --retry-connrefused "
                      f"--retry-delay 0 --max-time 10 http://c2:8080/index.html")
            assert page == "hello over vxlan\n"
        finally:
            server.kill()
            server.wait()
    # The container's second leg leaves through docker_gwbridge with masquerade.
    assert "MASQUERADE" in sh(f"ip netns exec {Path(ns['h1']).name} iptables-save -t nat")
    assert list(ctl.driver.check(network, ctl.store.endpoints(network.id))) == []
    ctl.remove(network, e2)
    assert f"{e2.mac} dst" not in sh(f"bridge -n {overlay_h1} fdb show dev {VXLAN}")
    assert not Path(sandbox_path(ns["h2"], network)).exists()


def test_check_finds_missing_fdb_entry_and_wrong_mtu(cluster):
    ctl, ns = cluster
    network = ctl.network("ov", ns["h1"])
    ctl.run(network, "c1", ns["h1"], ns["c1"])
    e2 = ctl.run(network, "c2", ns["h2"], ns["c2"])
    overlay_h1 = Path(sandbox_path(ns["h1"], network)).name
    sh(f"bridge -n {overlay_h1} fdb del {e2.mac} dev {VXLAN} dst 10.210.0.2")
    sh(f"ip -n {overlay_h1} link set {VXLAN} mtu 1400")
    findings = list(ctl.driver.check(network, ctl.store.endpoints(network.id)))
    # br0 follows its smallest port's MTU, so the kernel lowered it too.
    assert sorted((f.rule, f.subject) for f in findings) == [
        ("driver-mtu-differs", "br0"), ("driver-mtu-differs", VXLAN),
        ("overlay-fdb-missing", e2.mac)]
    fdb_repair = next(f for f in findings if f.rule == "overlay-fdb-missing").repair
    assert fdb_repair.steps[0].command(overlay_h1) == (
        f"ip netns exec {overlay_h1} bridge fdb append {e2.mac} dev {VXLAN} "
        "dst 10.210.0.2 self permanent")


def test_encrypted_network_is_refused_on_this_kernel(cluster):
    ctl, ns = cluster
    with pytest.raises(KernelFeatureMissing, match="kernel lacks ESP/AES-GCM"):
        ctl.network("secret", ns["h1"], encrypted="true")


def test_two_networks_share_the_hosts_vxlan_port(cluster, netns_factory):
    ctl, ns = cluster
    first, second = ctl.network("ov1", ns["h1"]), ctl.network("ov2", ns["h1"])
    assert (first.option(VNI_KEY), second.option(VNI_KEY)) == ("4096", "4097")
    c3, c4 = netns_factory("c3"), netns_factory("c4")
    ctl.run(first, "c1", ns["h1"], ns["c1"])
    target1 = ctl.run(first, "c2", ns["h2"], ns["c2"])
    ctl.run(second, "c3", ns["h1"], f"/run/netns/{c3}")
    target2 = ctl.run(second, "c4", ns["h2"], f"/run/netns/{c4}")
    sh(f"ip netns exec {Path(ns['c1']).name} ping -c 1 -W 2 {target1.ip}")
    sh(f"ip netns exec {c3} ping -c 1 -W 2 {target2.ip}")
    for network in (first, second):
        for endpoint in ctl.store.endpoints(network.id):
            ctl.remove(network, endpoint)
        ctl.driver.delete_network(network)
    assert not list(netns.NAMED_DIR.glob(f"{Path(ns['h1']).name}-*"))


def test_published_port_answers_from_the_underlay_and_disconnect_removes_it(cluster,
                                                                           netns_factory,
                                                                           tmp_path):
    ctl, ns = cluster
    controller = Controller(ctl.store)  # the real connect/disconnect: publish after join
    h1 = Path(ns["h1"]).name
    client = netns_factory("cl")  # "the world": on the underlay, routed to nothing else
    underlay = next(n for n in netns_factory.names if n.endswith("-ul"))
    sh(f"ip -n {client} link add eth0 type veth peer name u9 netns {underlay}")
    sh(f"ip -n {underlay} link set u9 master ubr up")
    sh(f"ip -n {client} addr add 10.210.0.9/24 dev eth0 && ip -n {client} link set eth0 up")
    controller.create_network("ov", ns["h1"], "overlay")
    web = controller.connect("ov", ns["c1"], "web", host=ns["h1"],
                             ports=[PortBinding(5000, host_port=8080)])
    assert [str(p) for p in web.ports] == ["0.0.0.0:8080->5000/tcp"]
    gw_ip = gateway.address_of(web)
    nat = sh(f"ip netns exec {h1} iptables-save -t nat")
    assert (f"-A DOCKER ! -i {gateway.NAME} -p tcp -m tcp --dport 8080 -j DNAT "
            f"--to-destination {gw_ip}:5000") in nat
    assert (f"-A DOCKER -d {gw_ip}/32 ! -i {gateway.NAME} -o {gateway.NAME} -p tcp -m tcp "
            "--dport 5000 -j ACCEPT") in sh(f"ip netns exec {h1} iptables-save -t filter")
    assert controller.check() == []
    (tmp_path / "index.html").write_text("published over docker_gwbridge\n")
    server = subprocess.Popen(["ip", "netns", "exec", Path(ns["c1"]).name, sys.executable,
                               "-m", "http.server", "5000", "--directory", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = sh(f"ip netns exec {client} curl -s --retry 20 --retry-connrefused "
                  "--retry-delay 0 --max-time 10 http://10.210.0.1:8080/index.html")
        assert page == "published over docker_gwbridge\n"
    finally:
        server.kill()
        server.wait()
    # check() names a lost DNAT rule like the bridge driver's does.
    dnat = f"DOCKER ! -i {gateway.NAME} -p tcp -m tcp --dport 8080 -j DNAT " \
           f"--to-destination {gw_ip}:5000"
    sh(f"ip netns exec {h1} iptables -t nat -D {dnat}")
    findings = controller.check()
    assert [(f.rule, f.subject) for f in findings] == [
        ("driver-firewall-rule-missing", "nat/DOCKER")]
    assert "--dport 8080" in findings[0].message
    controller.disconnect("ov", web.id, host=ns["h1"])
    left = sh(f"ip netns exec {h1} iptables-save")
    assert "--dport 8080" not in left and "--dport 5000" not in left
    with ctl.store.transaction(write=False) as tx:
        assert tx.ports() == []  # the host port is free again
