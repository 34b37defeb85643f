"""End to end: build each rule's fault in real namespaces with ip/iptables, run the real
`netdiag check --ns ... --format json`, and assert the rule fires on the right subject with the
right evidence (needs root; everything lives in namespaces netns_factory removes)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from netdiag.netns import inode_of
from tests.conftest import sh
from tests.fixtures.live import findings, listen, run_check

pytestmark = pytest.mark.integration


def veth(a: str, a_if: str, b: str, b_if: str, mtu: int = 1500, b_mtu: int | None = None) -> None:
    sh(f"ip -n {a} link add {a_if} mtu {mtu} type veth peer name {b_if} netns {b} "
       f"mtu {b_mtu or mtu}")
    sh(f"ip -n {a} link set {a_if} up && ip -n {b} link set {b_if} up")


def bridge(ns: str, name: str, address: str = "") -> None:
    sh(f"ip -n {ns} link add {name} type bridge && ip -n {ns} link set {name} up")
    if address:
        sh(f"ip -n {ns} addr add {address} dev {name}")


def container_on_bridge(factory, host: str, br: str, role: str, address: str,
                        gateway: str = "", mtu: int = 1500) -> str:
    ns = factory(role)
    veth(host, f"v-{role}"[:15], ns, "eth0", mtu)
    sh(f"ip -n {host} link set v-{role} master {br}"[:200])
    sh(f"ip -n {ns} addr add {address} dev eth0")
    if gateway:
        sh(f"ip -n {ns} route add default via {gateway}")
    return ns


def test_overlapping_subnets(netns_factory):
    host, vpn = netns_factory("host"), netns_factory("vpn")
    bridge(host, "br-x", "10.8.0.1/16")
    veth(host, "vpn0", vpn, "eth0")
    sh(f"ip -n {host} addr add 10.99.0.2/24 dev vpn0")
    sh(f"ip -n {host} route add 10.0.0.0/8 via 10.99.0.1 dev vpn0")
    bridge(host, "br-a", "172.30.0.1/16")
    bridge(host, "br-b", "172.30.5.1/24")
    _, report = run_check(host, vpn)
    found = {f["subject"]: f for f in findings(report, "overlapping-subnets", host)}
    assert set(found) == {"br-x", "br-b"}
    assert "traffic to 10.8.0.0/16 takes br-x" in found["br-x"]["message"]
    assert "10.0.0.0/8 via 10.99.0.1 dev vpn0" in found["br-x"]["message"]
    assert {(e["kind"], e["key"]) for e in found["br-x"]["evidence"]} >= {
        ("address", "10.8.0.0/16"), ("route", "10.0.0.0/8")}
    assert "takes br-b" in found["br-b"]["message"]


def test_overlapping_subnets_overlay_against_its_underlay(netns_factory):
    host, overlay = netns_factory("host"), netns_factory("ov")
    wan = netns_factory("wan")
    veth(host, "eth0", wan, "eth0")
    sh(f"ip -n {host} addr add 10.0.0.1/16 dev eth0")
    # Made in the host, then moved, as Docker does: only the netnsid says where it is routed.
    sh(f"ip -n {host} link add vx0 type vxlan id 7 dstport 4789")
    sh(f"ip -n {host} link set vx0 netns {overlay}")
    bridge(overlay, "br0", "10.0.1.1/24")
    sh(f"ip -n {overlay} link set vx0 master br0 up")
    _, report = run_check(overlay)  # the host comes in as the VXLAN's underlay
    (finding,) = findings(report, "overlapping-subnets", overlay)
    assert finding["subject"] == "vx0"
    assert "overlay subnet 10.0.1.0/24 (VXLAN vx0) overlaps underlay 10.0.0.0/16 on eth0" \
        f" in {host}" in finding["message"]


def test_mtu_mismatch_veth_ends(netns_factory):
    a, b = netns_factory("a"), netns_factory("b")
    veth(a, "veth0", b, "eth0", mtu=1400, b_mtu=1500)
    code, report = run_check(a, b)
    (finding,) = findings(report, "mtu-mismatch")
    assert code == 1
    assert finding["namespace"]["label"] == b and finding["subject"] == "eth0"
    assert [(e["key"], e["text"].split(": ")[1]) for e in finding["evidence"]] == [
        ("eth0", "eth0 mtu 1500"), ("veth0", "veth0 mtu 1400 (peer)")]
    assert finding["repair"]["steps"][0]["command"] == \
        f"ip netns exec {b} ip link set dev eth0 mtu 1400"


def two_vxlan_hosts(factory, h1_mtu: int, h2_mtu: int) -> tuple[str, str]:
    h1, h2 = factory("h1"), factory("h2")
    veth(h1, "u1", h2, "u2")
    sh(f"ip -n {h1} addr add 10.200.0.1/24 dev u1")
    sh(f"ip -n {h2} addr add 10.200.0.2/24 dev u2")
    for ns, local, remote, mtu in ((h1, "10.200.0.1", "10.200.0.2", h1_mtu),
                                   (h2, "10.200.0.2", "10.200.0.1", h2_mtu)):
        # No `dev`: such a VXLAN accepts any MTU, which is how the mismatch happens.
        sh(f"ip -n {ns} link add vx0 mtu {mtu} type vxlan id 42 dstport 4789 local {local}")
        sh(f"ip -n {ns} link set vx0 up")
        sh(f"bridge -n {ns} fdb append 00:00:00:00:00:00 dev vx0 dst {remote}")
    return h1, h2


def test_mtu_mismatch_vxlan_above_its_underlay(netns_factory):
    h1, h2 = two_vxlan_hosts(netns_factory, 1500, 1450)
    _, report = run_check(h1, h2)
    (finding,) = findings(report, "mtu-mismatch")
    assert finding["namespace"]["label"] == h1 and finding["subject"] == "vx0"
    texts = [e["text"] for e in finding["evidence"]]
    assert "+50 bytes VXLAN over IPv4 = 1550" in texts[0]
    assert "u1 mtu 1500" in texts[1] and "towards VTEP 10.200.0.2" in texts[1]
    assert {(s["link"], s["mtu"]) for s in finding["repair"]["steps"]} >= {("vx0", 1450)}


def test_mtu_mismatch_container_above_its_path(netns_factory):
    host, wan = netns_factory("host"), netns_factory("wan")
    bridge(host, "br0", "10.202.0.1/24")
    veth(host, "up0", wan, "eth0", mtu=1400)
    sh(f"ip -n {host} addr add 10.203.0.1/24 dev up0")
    sh(f"ip -n {wan} addr add 10.203.0.2/24 dev eth0")
    sh(f"ip -n {host} route add default via 10.203.0.2")
    sh(f"ip netns exec {host} sysctl -qw net.ipv4.ip_forward=1")
    web = container_on_bridge(netns_factory, host, "br0", "web", "10.202.0.2/24", "10.202.0.1")
    _, report = run_check(host, wan, web)
    (finding,) = findings(report, "mtu-mismatch", web)
    assert finding["subject"] == "eth0" and finding["severity"] == "warning"
    hops = [(e["namespace"], e["key"]) for e in finding["evidence"]]
    ids = {label: inode_of(f"/run/netns/{label}") for label in (host, wan, web)}
    assert hops == [(ids[web], "eth0"), (ids[host], "v-web"), (ids[host], "br0"),
                    (ids[host], "up0"), (ids[wan], "eth0")]
    assert {s["mtu"] for s in finding["repair"]["steps"]} == {1400}


def test_mtu_below_ipv6_minimum_on_an_ipv6_bridge(netns_factory):
    """A container on a dual-stack bridge whose veth is set to 1200: the kernel deletes its
    IPv6 address; the finding says so and raises the MTU rather than lowering the bridge."""
    host = netns_factory("host")
    bridge(host, "br0", "10.206.0.1/24")
    # An MTU set by hand (to another value first: setting the one it has is not noted), else
    # the bridge follows its smallest port down and loses its own IPv6 address with it.
    sh(f"ip -n {host} link set br0 mtu 1400 && ip -n {host} link set br0 mtu 1500")
    sh(f"ip -n {host} addr add fd00:206::1/64 dev br0 nodad")
    web = container_on_bridge(netns_factory, host, "br0", "web", "10.206.0.2/24")
    sh(f"ip -n {web} addr add fd00:206::2/64 dev eth0 nodad")
    sh(f"ip -n {web} link set eth0 mtu 1200 && ip -n {host} link set v-web mtu 1200")
    assert "inet6" not in sh(f"ip -n {web} addr show dev eth0")  # gone with the MTU
    _, report = run_check(host, web)
    (finding,) = findings(report, "mtu-mismatch")
    assert finding["namespace"]["label"] == web and finding["subject"] == "eth0"
    assert "below IPv6's minimum of 1280" in finding["message"]
    assert {(s.get("link"), s.get("mtu")) for s in finding["repair"]["steps"]} >= {
        ("eth0", 1280), ("v-web", 1280)}


def test_duplicate_ipv6_address_and_failed_dad(netns_factory):
    """Two containers on one bridge given the same IPv6 address, with DAD: the second one's
    fails. With both holding it, one duplicate-address finding; once the first has let it go
    (the second's stays unused: DAD does not run again), the failed DAD is the finding."""
    host = netns_factory("host")
    bridge(host, "br0", "10.207.0.1/24")
    web = container_on_bridge(netns_factory, host, "br0", "web", "10.207.0.2/24")
    api = container_on_bridge(netns_factory, host, "br0", "api", "10.207.0.3/24")
    sh(f"ip -n {web} addr add fd00:207::5/64 dev eth0 nodad")
    sh(f"ip -n {api} addr add fd00:207::5/64 dev eth0")  # DAD runs, and fails
    for _ in range(100):
        if "dadfailed" in sh(f"ip -n {api} addr show dev eth0"):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("DAD did not fail")
    _, report = run_check(host, web, api)
    (finding,) = findings(report, "duplicate-address")
    assert finding["subject"] == "fd00:207::5"
    assert any(e["text"] == f"fd00:207::5/64 on eth0 in {api} (its duplicate address "
               "detection failed)" for e in finding["evidence"])
    sh(f"ip -n {web} addr del fd00:207::5/64 dev eth0")
    _, report = run_check(host, web, api)
    (finding,) = findings(report, "duplicate-address")
    assert finding["namespace"]["label"] == api and "failed duplicate address detection" \
        in finding["message"]


def test_port_contention(netns_factory):
    host, web = netns_factory("host"), netns_factory("web")
    veth(host, "vweb", web, "eth0")
    sh(f"ip -n {host} addr add 10.201.0.1/24 dev vweb")
    sh(f"ip -n {web} addr add 10.201.0.2/24 dev eth0")
    listen(web, 80)
    listen(host, 18080)
    nat = f"ip netns exec {host} iptables -t nat -A PREROUTING -p tcp"
    sh(f"{nat} --dport 18080 -j DNAT --to-destination 10.201.0.2:80")  # captures the listener
    sh(f"{nat} --dport 18081 -j DNAT --to-destination 10.201.0.2:8000")  # dangling
    sh(f"{nat} --dport 18082 -j DNAT --to-destination 10.201.0.2:80")
    sh(f"{nat} --dport 18082 -j DNAT --to-destination 10.201.0.9:80")  # never matches
    sh(f"{nat} --dport 40000 -j DNAT --to-destination 10.201.0.2:80")  # ephemeral range
    _, report = run_check(host, web)
    by_subject: dict[str, list[dict]] = {}
    for finding in findings(report, "port-contention", host):
        by_subject.setdefault(finding["subject"], []).append(finding)
    assert set(by_subject) == {"tcp/18080", "tcp/18081", "tcp/18082", "tcp/40000"}
    (captured,) = by_subject["tcp/18080"]
    assert "shadowing python" in captured["message"] and captured["severity"] == "error"
    assert {e["kind"] for e in captured["evidence"]} == {"firewall", "socket"}
    (dangling,) = by_subject["tcp/18081"]
    assert "nothing listens on tcp port 8000" in dangling["message"]
    (twice,) = by_subject["tcp/18082"]
    assert "10.201.0.9:80" in twice["message"]
    assert twice["repair"]["steps"][0]["action"] == "delete-iptables-rule"
    (ephemeral,) = by_subject["tcp/40000"]
    assert ephemeral["severity"] == "warning" and "ephemeral range" in ephemeral["message"]


def routed_container(factory, forward: bool, default_route: bool) -> tuple[str, str]:
    """A host routing for a container on its bridge, with an uplink to a stand-in router."""
    host, wan = factory("host"), factory("wan")
    veth(host, "up0", wan, "eth0")
    sh(f"ip -n {host} addr add 10.205.0.1/24 dev up0")
    sh(f"ip -n {wan} addr add 10.205.0.2/24 dev eth0")
    sh(f"ip -n {host} route add default via 10.205.0.2")
    bridge(host, "br0", "10.204.0.1/24")
    sh(f"ip netns exec {host} sysctl -qw net.ipv4.ip_forward={int(forward)}")
    web = container_on_bridge(factory, host, "br0", "web", "10.204.0.2/24",
                              "10.204.0.1" if default_route else "")
    return host, web


def test_ip_forward_disabled(netns_factory):
    host, web = routed_container(netns_factory, forward=False, default_route=True)
    code, report = run_check(host, web)
    (finding,) = findings(report, "ip-forward-disabled")
    assert code == 1 and finding["namespace"]["label"] == host
    assert finding["subject"] == "net.ipv4.ip_forward"
    assert any(e["kind"] == "sysctl" and e["text"] == "net.ipv4.ip_forward = 0"
               for e in finding["evidence"])
    assert any("10.204.0.1 on br0" in e["text"] for e in finding["evidence"])


def test_ip_forward_disabled_on_one_ipv4_interface(netns_factory):
    host, web = routed_container(netns_factory, forward=True, default_route=True)
    sh(f"ip netns exec {host} sysctl -qw net.ipv4.conf.br0.forwarding=0")
    _, report = run_check(host, web)
    (finding,) = findings(report, "ip-forward-disabled")
    assert finding["subject"] == "net.ipv4.conf.br0.forwarding"
    assert finding["repair"]["steps"][0]["command"] == \
        f"ip netns exec {host} sysctl -w net.ipv4.conf.br0.forwarding=1"


def test_ip_forward_disabled_ipv6(netns_factory):
    """A dual-stack container behind a host with IPv4 forwarding on and IPv6 forwarding off:
    only IPv6 is reported; with IPv6 forwarding on, nothing is."""
    host, web = routed_container(netns_factory, forward=True, default_route=True)
    wan = host.replace("-host", "-wan")
    sh(f"ip -n {host} addr add fd00:205::1/64 dev up0 nodad")
    sh(f"ip -n {wan} addr add fd00:205::2/64 dev eth0 nodad")
    sh(f"ip -n {host} -6 route add default via fd00:205::2")
    sh(f"ip -n {host} addr add fd00:204::1/64 dev br0 nodad")
    sh(f"ip -n {web} addr add fd00:204::2/64 dev eth0 nodad")
    sh(f"ip -n {web} -6 route add default via fd00:204::1")
    sh(f"ip netns exec {host} sysctl -qw net.ipv6.conf.all.forwarding=0")
    code, report = run_check(host, web)
    (finding,) = findings(report, "ip-forward-disabled")
    assert code == 1 and finding["namespace"]["label"] == host
    assert finding["subject"] == "net.ipv6.conf.all.forwarding"
    assert "fd00:204::1 on br0" in finding["message"]
    assert finding["repair"]["steps"][0]["command"] == \
        f"ip netns exec {host} sysctl -w net.ipv6.conf.all.forwarding=1"
    sh(f"ip netns exec {host} sysctl -qw net.ipv6.conf.all.forwarding=1")
    _, report = run_check(host, web)
    assert findings(report, "ip-forward-disabled") == []


def test_missing_default_route(netns_factory):
    host, web = routed_container(netns_factory, forward=True, default_route=False)
    _, report = run_check(host, web)
    (finding,) = findings(report, "missing-default-route")
    assert finding["namespace"]["label"] == web and finding["subject"] == "eth0"
    assert finding["repair"]["steps"][0]["command"] == \
        f"ip netns exec {web} ip route add default via 10.204.0.1 dev eth0"


def test_forward_policy_drop(netns_factory):
    host, web = routed_container(netns_factory, forward=True, default_route=True)
    sh(f"ip netns exec {host} iptables -P FORWARD DROP")
    _, report = run_check(host, web)
    (finding,) = findings(report, "forward-policy-drop")
    assert finding["namespace"]["label"] == host and finding["subject"] == "br0"
    assert any(e["key"] == "filter/FORWARD" and "policy DROP" in e["text"]
               for e in finding["evidence"])
    assert finding["repair"]["safety"] == "unsafe"


def test_link_down_peer_set_down(netns_factory):
    host, web = routed_container(netns_factory, forward=True, default_route=True)
    sh(f"ip -n {web} link set eth0 down")
    _, report = run_check(host, web)
    (finding,) = findings(report, "link-down")
    assert finding["namespace"]["label"] == host and finding["subject"] == "v-web"
    assert f"its peer eth0 in {web} is set down" in finding["message"]
    assert finding["repair"]["steps"][0]["command"] == \
        f"ip netns exec {web} ip link set dev eth0 up"


def test_without_root_it_cannot_collect_and_exits_3():
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    done = subprocess.run([*nobody, sys.executable, "-m", "netdiag", "check", "--all"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "needs root" in done.stderr
    # Its own namespace it can read, with what needs root reported as not checked.
    done = subprocess.run([*nobody, sys.executable, "-m", "netdiag", "check", "--ns", "self"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "NOT CHECKED" in done.stdout and "permission" in done.stdout


def test_ns_reports_what_is_on_the_namespaces_paths_and_nothing_beyond(netns_factory):
    host, web = routed_container(netns_factory, forward=False, default_route=True)
    db = container_on_bridge(netns_factory, host, "br0", "db", "10.204.0.3/24", "10.204.0.1")
    sh(f"ip -n {db} link set eth0 mtu 1400")  # on web's bridge: on web's path
    far_a, far_b = netns_factory("far-a"), netns_factory("far-b")
    veth(far_a, "eth0", far_b, "eth0", mtu=1500, b_mtu=1400)  # wired to nothing of web's
    _, everything = run_check(host, web, db, far_a, far_b)
    _, report = run_check(web)
    seen = {(f["rule"], f["namespace"]["label"]) for f in report["findings"]}
    assert ("ip-forward-disabled", host) in seen and ("mtu-mismatch", host) in seen
    assert not {label for _, label in seen} & {far_a, far_b}
    assert all(f in everything["findings"] for f in report["findings"])
    _, report = run_check(far_a)
    assert {f["namespace"]["label"] for f in report["findings"]} <= {far_a, far_b}
    assert report["findings"], "far-a's own mismatch is reported"
