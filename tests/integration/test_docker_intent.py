"""Docker's intent against the kernel, end to end on a real engine started in a namespace.

The engine (tests/docker_engine.py), of each version in turn (20.10 and 28), runs with the
userland proxy off, as many production hosts do, and has an uplink: a veth to a "gateway"
namespace of ours (198.19.1.1) and a default route through it, like a host's NIC. Docker itself
makes a user network, a web container publishing a port, and a client. Each test first proves
the set-up healthy, then injects one fault the way it happens in practice (the real user
reports are cited in each test), proves with packets that it breaks traffic, and asserts that
`netdiag check --all` names it — the rule, the subject, and evidence giving Docker's view and
the kernel's. Every fault is undone after its test, pass or fail; where the rule's repair is
safe, `netdiag repair --apply` is the undo, and packets prove it worked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import sh
from tests.docker_engine import (
    IMAGE,
    DockerEngine,
    EngineUnavailable,
    build_busybox_image,
    unavailable_reason,
)
from tests.integration.test_ipv6_docker_hairpin import hairpin_works

pytestmark = [pytest.mark.integration, pytest.mark.docker]

NETWORK = "ndt-intent-net"
SUBNET = "10.91.0.0/24"
GATEWAY = "10.91.0.1"
WEB = "ndt-intent-web"
CLIENT = "ndt-intent-cli"
PORT = 8181
UPLINK = "up0"
OUTSIDE = "198.19.1.1"  # the gateway namespace, standing in for the world beyond the host
HOST_ADDRESS = "198.19.1.2"  # the engine namespace's uplink address
HTTPD = [IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]
# The IPv6 case's network and client, and the uplink's IPv6 ends (ULA), added for it alone.
NETWORK6 = "ndt-intent-six"
SUBNET6 = "fd00:91::/64"
CLIENT6 = "ndt-intent-six-cli"
OUTSIDE6 = "fd00:19:1::1"
HOST_ADDRESS6 = "fd00:19:1::2"


@pytest.fixture(scope="module")
def engine(docker_version):
    reason = unavailable_reason(docker_version)
    if reason:
        pytest.skip(reason)
    engine = DockerEngine("in", config={"userland-proxy": False}, version=docker_version)
    outside = f"{engine.netns}-gw"[:40]
    try:
        engine.create_netns()
        sh(f"ip netns add {outside}")
        sh(f"ip -n {outside} link set lo up")
        sh(f"ip -n {engine.netns} link add {UPLINK} type veth peer name eth0 netns {outside}")
        sh(f"ip -n {outside} addr add {OUTSIDE}/24 dev eth0")
        sh(f"ip -n {outside} link set eth0 up")
        sh(f"ip -n {engine.netns} addr add {HOST_ADDRESS}/24 dev {UPLINK}")
        sh(f"ip -n {engine.netns} link set {UPLINK} up")
        sh(f"ip -n {engine.netns} route add default via {OUTSIDE}")
        try:
            engine.start()
        except EngineUnavailable as exc:
            pytest.skip(f"dockerd cannot run here: {exc}")
        build_busybox_image(engine)
        engine.docker("network", "create", "--subnet", SUBNET, NETWORK)
        engine.docker("run", "-d", "--name", WEB, "--network", NETWORK, "-p", f"{PORT}:80",
                      *HTTPD)
        engine.docker("run", "-d", "--name", CLIENT, "--network", NETWORK, IMAGE, "sleep",
                      "3600")
        engine.outside = outside
        engine.wait_until_serving(WEB, client=CLIENT)
        yield engine
    finally:
        engine.stop()
        sh(f"ip netns del {outside}", check=False)


# --- what the tests use ----------------------------------------------------------------------


def netdiag(engine, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "netdiag", *args, "--docker", engine.host]
    return subprocess.run(argv, env=engine.env, capture_output=True, text=True, timeout=180,
                          check=False)


def check(engine) -> dict:
    done = netdiag(engine, "check", "--all", "--format", "json", "--timeout", "60")
    assert done.returncode in (0, 1), f"netdiag check failed: {done.stderr.strip()}"
    return json.loads(done.stdout)


def loud(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["severity"] in ("warning", "error")]


def describe(findings: list[dict]) -> str:
    return "\n".join(f"  {f['severity']} {f['rule']} [{f['namespace']['label']}] "
                     f"{f['subject']}: {f['message']}" for f in findings) or "  (none)"


def fired(report: dict, rule: str, subject: str, naming: str) -> dict:
    """The one loud finding of `rule` about `subject` that names `naming`."""
    found = [f for f in loud(report) if f["rule"] == rule and f["subject"] == subject
             and naming in json.dumps(f)]
    assert len(found) == 1, f"expected one {rule} on {subject} naming {naming}; got:\n" + \
        describe(loud(report))
    evidence = [e["text"] for e in found[0]["evidence"]]
    assert any(text.startswith("Docker") for text in evidence), \
        f"no evidence gives Docker's view: {evidence}"
    assert any(not text.startswith("Docker") for text in evidence), \
        f"no evidence gives the kernel's view: {evidence}"
    return found[0]


def ours(engine) -> set[int]:
    """This engine's namespaces: its host, its sandboxes, the gateway (other tests' engines
    may run meanwhile, with findings of their own)."""
    paths = [engine.netns_path, f"/run/netns/{engine.outside}"]
    paths += [str(p) for p in engine.netns_dir.iterdir()] if engine.netns_dir.is_dir() else []
    found = set()
    for path in paths:
        try:
            found.add(os.stat(path).st_ino)
        except OSError:
            continue
    return found


def assert_quiet(engine) -> None:
    mine = ours(engine)
    noisy = [f for f in loud(check(engine))
             if {f["namespace"]["id"], *(r["id"] for r in f["related"])} & mine]
    assert not noisy, "findings on healthy Docker state:\n" + describe(noisy)


def http_ok(engine, client: str, address: str, port: int = 80) -> bool:
    request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc -w 2 {address} {port}"
    return "200 OK" in engine.docker("exec", client, "sh", "-c", request, check=False)


def http_ok_from_outside(engine, port: int = PORT) -> bool:
    request = (f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 /bin/busybox nc -w 2 "
               f"{HOST_ADDRESS} {port}")
    done = subprocess.run(["ip", "netns", "exec", engine.outside, "sh", "-c", request],
                          capture_output=True, text=True, timeout=30, check=False)
    return "200 OK" in done.stdout


def pings(engine, container: str, address: str) -> bool:
    done = engine.docker("exec", container, "ping", "-c", "1", "-W", "2", address, check=False)
    return " 0% packet loss" in done


def pings6(engine, container: str, address: str) -> bool:
    done = engine.docker("exec", container, "ping", "-6", "-c", "1", "-W", "2", address,
                         check=False)
    return " 0% packet loss" in done


def bridge(engine) -> str:
    network_id = engine.docker("network", "inspect", NETWORK, "--format", "{{.Id}}").strip()
    return f"br-{network_id[:12]}"


def host_veth(engine, container: str) -> str:
    """The engine-side end of a container's eth0."""
    index = engine.docker("exec", container, "cat", "/sys/class/net/eth0/iflink").strip()
    links = json.loads(engine.in_netns("ip -j link show"))
    return next(link["ifname"] for link in links if str(link["ifindex"]) == index)


def repair(engine, *refs: str) -> subprocess.CompletedProcess:
    args = ["repair", "--apply"]
    for ref in refs:
        args += ["--ns", ref]
    return netdiag(engine, *args)


# --- the tests -------------------------------------------------------------------------------


def test_intent_is_collected_and_the_host_is_quiet(engine):
    """Every container, running or not, with what Docker meant for it; nothing to report."""
    engine.docker("run", "--name", "ndt-intent-exit", IMAGE, "sh", "-c", "exit 3", check=False)
    engine.docker("run", "-d", "--name", "ndt-intent-side", "--network", f"container:{WEB}",
                  IMAGE, "sleep", "3600")
    try:
        done = netdiag(engine, "show", "docker", "--json")
        assert done.returncode == 0, done.stderr
        (found,) = json.loads(done.stdout)
        assert found["url"] == engine.host and found["version"] == engine.server_version
        assert found["daemon"]["userland_proxy"] is False  # from its daemon.json
        containers = {c["name"]: c for c in found["containers"]}
        assert containers["ndt-intent-exit"]["state"] == "exited"
        assert containers["ndt-intent-exit"]["exit_code"] == 3
        web = containers[WEB]
        assert web["ports"] == [{"container_port": 80, "protocol": "tcp", "host_ip": "",
                                 "host_port": PORT}]
        (endpoint,) = web["endpoints"]
        assert endpoint["network"] == NETWORK and endpoint["ip"].startswith("10.91.0.")
        assert containers["ndt-intent-side"]["network_mode"] == f"container:{web['id']}"
        assert containers["ndt-intent-side"]["netns"] == web["netns"]
        network = next(n for n in found["networks"] if n["name"] == NETWORK)
        assert network["ipam"] == [{"subnet": SUBNET, "gateway": GATEWAY, "ip_range": ""}]
        text = netdiag(engine, "show", "docker").stdout
        assert WEB in text and f"shares {WEB}" in text and "exited (3)" in text
        assert_quiet(engine)
    finally:
        engine.docker("rm", "-f", "ndt-intent-exit", "ndt-intent-side", check=False)


def test_port_already_allocated_by_another_container(engine):
    """A second container asks for a published port another one holds and never starts
    ("Bind for 0.0.0.0:3000 failed: port is already allocated": runtipi/runtipi#62,
    moby/moby#20486, telekom-security/tpotce#666)."""
    engine.docker("create", "--name", "ndt-intent-clash", "--network", NETWORK, "-p",
                  f"{PORT}:80", *HTTPD)
    try:
        engine.docker("start", "ndt-intent-clash", check=False)
        assert "port is already allocated" in engine.inspect("ndt-intent-clash")["State"]["Error"]
        # What it was meant to serve: nothing answers in its name (it has no address at all),
        # while the port is web's.
        assert not engine.inspect("ndt-intent-clash")["State"]["Running"]
        assert http_ok_from_outside(engine)
        finding = fired(check(engine), "docker-port-unpublished", f"tcp/{PORT}",
                        "ndt-intent-clash")
        assert f"published by {WEB}" in finding["message"]
    finally:
        engine.docker("rm", "-f", "ndt-intent-clash", check=False)


def test_port_held_by_a_program_on_the_host(engine):
    """A program on the host listens on the port a container publishes, so the container
    does not start ("address already in use"), and clients reach the program instead."""
    port = PORT + 1
    listener = subprocess.Popen(["ip", "netns", "exec", engine.netns, "/bin/busybox", "nc",
                                 "-ll", "-p", str(port), "-e", "/bin/busybox", "echo", "nope"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        engine.in_netns(f"for i in $(seq 50); do ss -ltn | grep -q ':{port} ' && exit 0; "
                        "sleep 0.1; done; exit 1")
        engine.docker("run", "-d", "--name", "ndt-intent-late", "--network", NETWORK, "-p",
                      f"{port}:80", *HTTPD, check=False)
        assert "address already in use" in \
            engine.inspect("ndt-intent-late")["State"]["Error"]
        assert not http_ok_from_outside(engine, port)  # the program answers, not the web server
        finding = fired(check(engine), "docker-port-unpublished", f"tcp/{port}",
                        "ndt-intent-late")
        assert "busybox (pid" in finding["message"] and "listens on" in finding["message"]
    finally:
        listener.kill()
        listener.wait()
        engine.docker("rm", "-f", "ndt-intent-late", check=False)


def test_dnat_rules_flushed(engine):
    """Something flushed Docker's nat rules: a firewall reload (moby/moby#15254,
    moby/moby#12294: "Docker networking fails after iptables service is restarted"); the
    published port no longer reaches the container."""
    assert http_ok_from_outside(engine)
    saved = engine.in_netns("iptables-save -t nat")
    engine.in_netns("iptables -t nat -F DOCKER")
    try:
        assert not http_ok_from_outside(engine)
        finding = fired(check(engine), "docker-port-unpublished", f"tcp/{PORT}", WEB)
        assert finding["severity"] == "error"  # no userland proxy to fall back on
        assert "no DNAT" in finding["message"]
    finally:
        subprocess.run(["ip", "netns", "exec", engine.netns, "iptables-restore", "-T", "nat"],
                       input=saved, text=True, check=False)
    assert http_ok_from_outside(engine)


def test_bridge_loses_its_gateway_address(engine):
    """A network manager that thinks it manages the bridge flushes its address
    (moby/moby#40217 "docker0 interface keeps loosing IPv4 ipaddress", moby/moby#31477,
    systemd/systemd#28626)."""
    name = bridge(engine)
    assert pings(engine, CLIENT, OUTSIDE)
    engine.in_netns(f"ip addr flush dev {name}")
    try:
        assert not pings(engine, CLIENT, GATEWAY)
        assert not pings(engine, CLIENT, OUTSIDE)
        finding = fired(check(engine), "docker-bridge-broken", name, NETWORK)
        assert GATEWAY in finding["message"]
        assert finding["repair"]["safety"] == "unsafe"
    finally:
        engine.in_netns(f"ip addr add {GATEWAY}/24 dev {name}", check=False)
    assert pings(engine, CLIENT, OUTSIDE)


def test_veth_taken_off_the_bridge(engine):
    """A container's veth is no longer a port of its network's bridge (moby/moby#26492 "Some
    veths created by Docker are not assigned a master bridge", systemd-networkd matching
    veth*); the safe repair puts it back."""
    veth = host_veth(engine, WEB)
    address = engine.container_ip(WEB, NETWORK)
    engine.in_netns(f"ip link set dev {veth} nomaster")
    try:
        assert not http_ok(engine, CLIENT, address)
        finding = fired(check(engine), "docker-endpoint-broken", "eth0", veth)
        assert finding["namespace"]["label"] == WEB
        assert finding["repair"]["safety"] == "safe"
        done = repair(engine, f"container:{WEB}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert http_ok(engine, CLIENT, address)
    finally:
        engine.in_netns(f"ip link set dev {veth} master {bridge(engine)}", check=False)


def test_masquerade_rule_removed(engine):
    """The network's MASQUERADE rule is gone ("Can't access internet from containers",
    moby/moby#13381; a firewall script that rewrote the nat table): containers' packets leave
    with private sources and nothing answers. The safe repair restores Docker's rule."""
    rule = f"POSTROUTING -s {SUBNET} ! -o {bridge(engine)} -j MASQUERADE"
    assert pings(engine, CLIENT, OUTSIDE)
    engine.in_netns(f"iptables -t nat -D {rule}")
    try:
        assert not pings(engine, CLIENT, OUTSIDE)
        finding = fired(check(engine), "docker-network-rules-missing", "nat/POSTROUTING",
                        SUBNET)
        assert finding["repair"]["safety"] == "safe"
        done = repair(engine, engine.netns_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert pings(engine, CLIENT, OUTSIDE)
    finally:
        if "MASQUERADE" not in engine.in_netns(f"iptables -t nat -S POSTROUTING | grep {SUBNET}"
                                               " || true"):
            engine.in_netns(f"iptables -t nat -A {rule}")


def test_ipv6_masquerade_rule_removed(engine):
    """An IPv6 network's NAT66 rule is gone (Docker 28 masquerades a NAT-mode IPv6 network in
    ip6tables, which is on by default; 20.10 only with its experimental ip6tables, off here):
    a container's IPv6 packets leave with their ULA source and nothing answers. The safe
    repair restores Docker's ip6tables rule."""
    if engine.version == "20.10":
        pytest.skip("20.10 writes no ip6tables rules without its experimental ip6tables")
    engine.docker("network", "create", "--ipv6", "--subnet", SUBNET6, NETWORK6)
    engine.docker("run", "-d", "--name", CLIENT6, "--network", NETWORK6, IMAGE, "sleep", "3600")
    engine.in_netns(f"ip addr add {HOST_ADDRESS6}/64 dev {UPLINK} nodad && "
                    f"ip -6 route add default via {OUTSIDE6}")
    sh(f"ip -n {engine.outside} addr add {OUTSIDE6}/64 dev eth0 nodad")
    network_id = engine.docker("network", "inspect", NETWORK6, "--format", "{{.Id}}").strip()
    rule = f"POSTROUTING -s {SUBNET6} ! -o br-{network_id[:12]} -j MASQUERADE"
    try:
        engine.in_netns(f"ip6tables -t nat -C {rule}")  # Docker wrote it
        # The container's address may still be on duplicate address detection: wait for it.
        engine.docker("exec", CLIENT6, "sh", "-c", f"for i in $(seq 50); do ping -6 -c 1 -W 1 "
                      f"{OUTSIDE6} >/dev/null && exit 0; sleep 0.2; done; exit 1")
        engine.in_netns(f"ip6tables -t nat -D {rule}")
        assert not pings6(engine, CLIENT6, OUTSIDE6)
        finding = fired(check(engine), "docker-network-rules-missing", "nat/POSTROUTING",
                        SUBNET6)
        assert "ip6tables" in finding["message"]
        assert finding["repair"]["safety"] == "safe"
        done = repair(engine, engine.netns_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert pings6(engine, CLIENT6, OUTSIDE6)
    finally:
        engine.docker("rm", "-f", CLIENT6, check=False)
        engine.docker("network", "rm", NETWORK6, check=False)
        engine.in_netns(f"ip -6 route del default via {OUTSIDE6}; "
                        f"ip addr del {HOST_ADDRESS6}/64 dev {UPLINK}", check=False)
        sh(f"ip -n {engine.outside} addr del {OUTSIDE6}/64 dev eth0", check=False)


def test_ipv6_hairpin_through_the_dnat(engine):
    """With the userland proxy off, a container on an IPv6 network reaches its own published
    port at the host's IPv6 address through Docker's ip6tables hairpin DNAT, and `path`
    agrees with a real probe (the proxy-on twin: test_ipv6_docker_hairpin.py)."""
    if engine.version == "20.10":
        pytest.skip("20.10 writes no ip6tables rules without its experimental ip6tables")
    hairpin_works(engine)


def test_sidecar_left_in_an_old_namespace(engine):
    """A container sharing another's namespace (`--network container:web`, a VPN sidecar
    set-up) stays in the old, empty namespace when that container restarts
    (passteque/gluetun#641 "Connectivity is lost once gluetun container is restarted")."""
    side = "ndt-intent-sidecar"
    engine.docker("run", "-d", "--name", side, "--network", f"container:{WEB}", IMAGE,
                  "sleep", "3600")
    try:
        client = engine.container_ip(CLIENT, NETWORK)
        assert pings(engine, side, client)
        engine.docker("restart", WEB)
        engine.wait_until_serving(WEB, client=CLIENT)
        assert not pings(engine, side, client)
        finding = fired(check(engine), "docker-endpoint-broken", "network namespace", side)
        assert f"container:{WEB}" in finding["message"] and "only lo" in finding["message"]
    finally:
        engine.docker("rm", "-f", side, check=False)
    assert_quiet(engine)


def test_hairpin_mode_turned_off(engine):
    """With the userland proxy off, a container reaches its own published port through the
    host's address only if its bridge port has hairpin mode, which Docker sets for it
    (moby/libnetwork#286 "When userland-proxy is disabled, enable hairpin mode on the
    host-side of the veth"; docker/docs#17312; moby/moby#6810 on why the kernel otherwise
    drops the frame). Here a script resets the port's flag."""
    veth = host_veth(engine, WEB)
    assert "hairpin on" in engine.in_netns(f"bridge -d link show dev {veth}")
    assert http_ok(engine, WEB, HOST_ADDRESS, PORT)
    engine.in_netns(f"bridge link set dev {veth} hairpin off")
    try:
        assert not http_ok(engine, WEB, HOST_ADDRESS, PORT)
        finding = fired(check(engine), "docker-prerequisite-missing", veth, WEB)
        assert finding["repair"]["safety"] == "safe"
        done = repair(engine, engine.netns_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert http_ok(engine, WEB, HOST_ADDRESS, PORT)
    finally:
        engine.in_netns(f"bridge link set dev {veth} hairpin on", check=False)


def test_icc_off_without_bridge_netfilter(engine):
    """A network with inter-container communication off isolates nothing once bridged frames
    skip iptables (`net.bridge.bridge-nf-call-iptables = 0`, as a sysctl.d file or a kernel
    without br_netfilter leaves it; `docker info` only warns)."""
    network, one, two = "ndt-intent-noicc", "ndt-intent-iso1", "ndt-intent-iso2"
    engine.docker("network", "create", "-o", "com.docker.network.bridge.enable_icc=false",
                  network)
    sysctl = "/proc/sys/net/bridge/bridge-nf-call-iptables"
    try:
        engine.docker("run", "-d", "--name", one, "--network", network, *HTTPD)
        engine.docker("run", "-d", "--name", two, "--network", network, IMAGE, "sleep", "3600")
        address = engine.container_ip(one, network)
        assert engine.in_netns(f"cat {sysctl}").strip() == "1"
        assert not http_ok(engine, two, address)  # isolated, as asked
        engine.in_netns(f"echo 0 > {sysctl}")
        assert http_ok(engine, two, address)  # no longer
        finding = fired(check(engine), "docker-prerequisite-missing",
                        "net.bridge.bridge-nf-call-iptables", network)
        assert finding["repair"]["safety"] == "unsafe"
    finally:
        engine.in_netns(f"echo 1 > {sysctl}", check=False)
        engine.docker("rm", "-f", one, two, check=False)
        engine.docker("network", "rm", network, check=False)


def test_isolation_chain_flushed(engine):
    """A firewall reload that restores a saved rule set without Docker's chains' contents
    (moby/moby#15254 "firewall-cmd --reload still wipes Docker's iptables rules", moby/moby#12294
    with ferm; firewalld/firewalld#844) leaves DOCKER-ISOLATION-STAGE-1 empty: networks that
    Docker keeps apart reach each other. From the kernel alone nothing is isolated, so nothing
    looks broken; Docker's intent says every pair of its networks should be. Docker 28 isolates
    in three places (STAGE-1/2, `DOCKER ! -i br -o br -j DROP` and the raw table's
    direct-routing drops): the reload that breaks it there wipes all three — and while the raw
    drops stand, the networks stay isolated and the rule stays quiet."""
    network, other = "ndt-intent-other", "ndt-intent-oth"
    engine.docker("network", "create", network)
    saved, raw = engine.in_netns("iptables-save -t filter"), engine.in_netns("iptables-save -t raw")
    try:
        engine.docker("run", "-d", "--name", other, "--network", network, *HTTPD)
        address = engine.container_ip(other, network)
        assert not http_ok(engine, CLIENT, address)  # isolated, as Docker promises
        ours = engine.docker("network", "inspect", "-f", "{{.Id}}", network).strip()[:12]
        pair = "<->".join(sorted((bridge(engine), f"br-{ours}")))
        engine.in_netns("iptables -F DOCKER-ISOLATION-STAGE-1")
        if engine.version != "20.10":
            engine.in_netns("iptables -F DOCKER")
            assert not http_ok(engine, CLIENT, address)  # the raw table still drops it
            assert pair not in {f["subject"] for f in check(engine)["findings"]
                                if f["rule"] == "bridge-isolation-broken"}
            raw = engine.in_netns("iptables-save -t raw")  # with the new container's drop
            engine.in_netns("iptables -t raw -F PREROUTING")
        assert http_ok(engine, CLIENT, address)  # no longer
        finding = fired(check(engine), "bridge-isolation-broken", pair, network)
        assert "although Docker isolates its networks" in finding["message"]
        assert finding["repair"]["safety"] == "unsafe"
    finally:
        subprocess.run(["ip", "netns", "exec", engine.netns, "iptables-restore", "-T", "filter"],
                       input=saved, text=True, check=False)
        if engine.version != "20.10":
            subprocess.run(["ip", "netns", "exec", engine.netns, "iptables-restore", "-T", "raw"],
                           input=raw, text=True, check=False)
        engine.docker("rm", "-f", other, check=False)
        engine.docker("network", "rm", network, check=False)


def test_published_port_dropped_in_docker_user(engine):
    """An admin restricts who may reach published ports with a DROP in DOCKER-USER, as the
    answers to such questions advise (moby/moby#34197: `iptables -I DOCKER-USER ! --source
    192.168.0.0/24 -j DROP`; canonical/lxd#11140 on what such a rule also stops), and the
    clients beyond the host are cut off. No rule about one shape of breakage sees it; the
    flow engine names the flow, the hop and the rule."""
    rule = f"DOCKER-USER -i {UPLINK} ! -s 10.0.0.0/8 -j DROP"
    assert http_ok_from_outside(engine)
    assert pings(engine, CLIENT, OUTSIDE)
    engine.in_netns(f"iptables -I {rule}")
    try:
        assert not http_ok_from_outside(engine)
        finding = fired(check(engine), "expected-flow-blocked",
                        f"tcp 198.51.100.7:43210 → {HOST_ADDRESS}:{PORT}", WEB)
        assert "denied in" in finding["message"] and "filter/DOCKER-USER/1" in \
            finding["message"]
        assert any(e["text"].startswith("rule: -A DOCKER-USER") and "-j DROP" in e["text"]
                   for e in finding["evidence"])
        # The same rule stops the answers to the containers' own connections out
        # (canonical/lxd#11140): the flow out leaves, its reply is dropped coming back.
        assert not pings(engine, CLIENT, OUTSIDE)
        report = check(engine)
        outbound = [f for f in loud(report) if f["rule"] == "expected-flow-blocked"
                    and "reaches beyond the host" in f["message"]]
        assert outbound, describe(loud(report))
        assert all("its reply is denied" in f["message"] and "DOCKER-USER" in f["message"]
                   for f in outbound), describe(outbound)
        done = netdiag(engine, "path", engine.netns_path, f"{engine.container_ip(WEB, NETWORK)}"
                       ":80")
        assert done.returncode == 0, done.stdout + done.stderr  # from the host itself: fine
    finally:
        engine.in_netns(f"iptables -D {rule}", check=False)
    assert http_ok_from_outside(engine)
    assert pings(engine, CLIENT, OUTSIDE)


def test_docker_user_rule_without_its_interface(engine):
    """Docker's documentation restricts who reaches the containers with `iptables -I
    DOCKER-USER -i ext_if ! -s 192.168.1.1 -j DROP`; written without `-i ext_if` (the
    shortened form passed around in moby/moby#34197's answers) the rule also drops what the
    containers send each other, since bridged frames pass FORWARD. The expected flow between
    two containers of one network names the rule."""
    rule = "DOCKER-USER ! -s 192.168.1.0/24 -j DROP"
    web = engine.container_ip(WEB, NETWORK)
    client = engine.container_ip(CLIENT, NETWORK)
    assert pings(engine, CLIENT, web)
    engine.in_netns(f"iptables -I {rule}")
    try:
        assert not pings(engine, CLIENT, web)
        finding = fired(check(engine), "expected-flow-blocked", f"icmp {client} → {web}", WEB)
        assert f"{CLIENT} reaches {WEB} ({web}) on network {NETWORK}" in finding["message"]
        assert "filter/DOCKER-USER/1" in finding["message"]
        assert any(e["text"] == f"rule: -A {rule}" for e in finding["evidence"]), \
            finding["evidence"]
    finally:
        engine.in_netns(f"iptables -D {rule}", check=False)
    assert pings(engine, CLIENT, web)


def test_kill_switch_without_loopback(engine):
    """A VPN kill switch inside a container (an OUTPUT policy of DROP that lets out only the
    tunnel, as gluetun-style images set up with NET_ADMIN) that lets out too little also cuts
    what the container should still reach (passteque/gluetun#281 "Name resolution from
    Gluetun ... to other containers on network does not work", #289 "Gluetun cannot reach
    other containers in its local network": an iptables rule missing); here it forgets
    loopback, where Docker's embedded DNS answers (127.0.0.11). The DNAT rules are there, so
    nothing looks broken in the nat table; the expected flow names the policy."""
    pid = engine.docker("inspect", "-f", "{{.State.Pid}}", CLIENT).strip()
    inside = ["nsenter", "-t", pid, "-n", "iptables"]
    assert WEB in engine.docker("exec", CLIENT, "nslookup", WEB, check=False)
    subprocess.run([*inside, "-A", "OUTPUT", "-o", "tun0", "-j", "ACCEPT"], check=True)
    subprocess.run([*inside, "-P", "OUTPUT", "DROP"], check=True)
    try:
        answer = engine.docker("exec", CLIENT, "nslookup", "-timeout=2", WEB, check=False)
        assert engine.container_ip(WEB, NETWORK) not in answer
        finding = fired(check(engine), "expected-flow-blocked",
                        "udp 127.0.0.1:43210 → 127.0.0.11:53", CLIENT)
        assert finding["namespace"]["label"] == CLIENT
        assert "filter/OUTPUT" in finding["message"] and "policy DROP" in finding["message"]
    finally:
        subprocess.run([*inside, "-P", "OUTPUT", "ACCEPT"], check=False)
        subprocess.run([*inside, "-F", "OUTPUT"], check=False)
    assert WEB in engine.docker("exec", CLIENT, "nslookup", WEB, check=False)


def test_the_users_expected_flows(engine, tmp_path):
    """`expect:` in the check configuration, as goss/netassert tests are written: the client
    must reach web's port 80, and must not reach the outside's 8080. Both hold on the healthy
    host; a DROP between the two containers, and a program that starts listening outside,
    each break one, and `check` names the flow and why."""
    config = tmp_path / "netdiag.yaml"
    config.write_text(f"expect:\n"
                      f"  - {{from: container:{CLIENT}, to: {WEB}, port: 80}}\n"
                      f"  - {{from: container:{CLIENT}, to: {OUTSIDE}, port: 8080, "
                      f"reach: false}}\n")

    def expected_flows() -> list[dict]:
        done = netdiag(engine, "check", "--all", "--format", "json", "--config", str(config),
                       "--timeout", "60")
        assert done.returncode in (0, 1), done.stderr
        return [f for f in json.loads(done.stdout)["findings"]
                if f["rule"] == "expected-flow-blocked" and "expect:" in json.dumps(f)]

    assert expected_flows() == []
    web, client = engine.container_ip(WEB, NETWORK), engine.container_ip(CLIENT, NETWORK)
    rule = f"DOCKER-USER -s {client} -d {web} -p tcp --dport 80 -j DROP"
    engine.in_netns(f"iptables -I {rule}")
    listener = subprocess.Popen(["ip", "netns", "exec", engine.outside, "/bin/busybox", "nc",
                                 "-ll", "-p", "8080", "-e", "/bin/busybox", "echo", "hi"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert not http_ok(engine, CLIENT, web)
        subprocess.run(["ip", "netns", "exec", engine.outside, "sh", "-c",
                        "for i in $(seq 50); do ss -ltn | grep -q ':8080 ' && exit 0; "
                        "sleep 0.1; done; exit 1"], check=True)
        found = {f["message"].split(": ")[0]: f["message"] for f in expected_flows()}
        blocked = found[f"container:{CLIENT} → {WEB}:80 (tcp) reaches"]
        assert "denied in" in blocked and "filter/DOCKER-USER/1" in blocked, blocked
        reached = found[f"container:{CLIENT} → {OUTSIDE}:8080 (tcp) is blocked"]
        assert "but it is delivered" in reached, reached
        assert len(found) == 2, found
    finally:
        listener.kill()
        listener.wait()
        engine.in_netns(f"iptables -D {rule}", check=False)
    assert http_ok(engine, CLIENT, web)


def test_faults_are_undone(engine):
    assert_quiet(engine)
    assert http_ok_from_outside(engine)
