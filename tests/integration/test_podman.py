"""Podman as netdiag finds and judges it: Debian 12's 4.3 (netavark on iptables) and 5.8 (netavark
on nftables, from the Debian unstable chroot in .cache/podman5), each with aardvark-dns.

One real Podman of each generation, in a namespace of its own (tests/podman_engine.py), serves
every case of the module: its namespace gets an uplink (a veth to a gateway namespace, and a
default route through it, as real hosts have) and it runs a typical workload: two user networks
with a container on both, a published port on a user network and one on the default network, a
pod with a published port (an httpd and a sidecar in it) and an internal network. A case that
breaks something puts it back before the next begins (`put_back`): the firewall restored from
what it was, compared with it, and the packets that proved the breakage sent again.

* Healthy: `check --all` reports no warning and no error about any namespace of the engine,
  `ns list` names every container (after its pod for a pod's), and `container:NAME` and
  `pod:NAME` resolve — read through the API service, and through the command line when no
  service runs.
* Faults users report on Podman hosts, each first proven broken with real packets (an HTTP
  request through the published port, a ping beyond the host, a DNS lookup of a container's
  name), then named by `check --all`: a published port whose DNAT is gone, netavark's chains
  flushed by a firewall reload, a FORWARD policy that drops a Podman network, aardvark-dns
  not answering — on each generation: on Podman 5 a published port's DNAT chain of `table
  inet netavark` flushed, the table deleted (firewalld's reload does it), Docker's FORWARD
  policy DROP (which netavark's own forward chain does not override; IPv4's alone), and the
  host's own `table inet filter` forward policy drop (containers/netavark#977) on a host
  without an IPv4 default route.
* IPv6 on Podman 5: its engine's uplink is dual-stack and network front too, so web's
  published port is DNATed in both families: reached in IPv6 from outside and by `path`, and
  its IPv6 DNAT deleted alone is named for IPv6.
* Rootless: a user's Podman 4.3 (slirp4netns) in a namespace and a user of its own
  (tests/podman_engine.py's RootlessPodman, a few seconds): its container's namespace is
  labelled for what it is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from tests.conftest import sh
from tests.docker_engine import EngineUnavailable
from tests.podman_engine import (
    IMAGE,
    PodmanEngine,
    RootlessPodman,
    build_busybox_image,
    rootless_unavailable_reason,
    unavailable_reason,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UPLINK_NET = "198.19.9.{}/24"  # benchmarking range: never a real network
UPLINK_NET6 = "2001:db8:9::{}/64"  # documentation range (Podman 5's engine: front is dual-stack)
SERVE = [IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]
IDLE = [IMAGE, "sleep", "3600"]
CONTAINERS = ("web", "api", "db", "classic", "vault")  # pod1's own: pweb, side
# The host has no nc of its own: busybox-static's.
# A connection conmon's socket accepts is never answered: `timeout` ends the wait.
HTTP_GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 /bin/busybox nc -w 3 {} {}"


@pytest.fixture(autouse=True)
def _podman_available():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


def start_engine(stack: ExitStack, role: str, service: bool = True, generation: int = 4
                 ) -> PodmanEngine:
    """A Podman with an uplink, the busybox image and the typical workload."""
    reason = unavailable_reason(generation)
    if reason:
        pytest.skip(reason)
    engine = PodmanEngine(role, generation)
    stack.callback(engine.stop)
    try:
        engine.start()
    except EngineUnavailable as exc:
        pytest.skip(f"podman cannot run here: {exc}")
    add_uplink(stack, engine)
    build_busybox_image(engine)
    typical_workload(engine)
    if service:
        engine.start_service()
    return engine


def add_uplink(stack: ExitStack, engine: PodmanEngine) -> None:
    """A gateway namespace on a veth, and the engine namespace's default route through it."""
    gateway = gateway_of(engine)
    sh(f"ip netns add {gateway}")
    stack.callback(sh, f"ip netns del {gateway}", check=False)
    sh(f"ip -n {gateway} link set lo up")
    sh(f"ip -n {engine.netns} link add up0 type veth peer name eth0 netns {gateway}")
    sh(f"ip -n {gateway} addr add {UPLINK_NET.format(1)} dev eth0")
    sh(f"ip -n {gateway} link set eth0 up")
    sh(f"ip -n {engine.netns} addr add {UPLINK_NET.format(2)} dev up0")
    sh(f"ip -n {engine.netns} link set up0 up")
    sh(f"ip -n {engine.netns} route add default via {UPLINK_NET.format(1).split('/')[0]}")
    sh(f"ip netns exec {engine.netns} sysctl -qw net.ipv4.ip_forward=1")
    if engine.generation == 5:  # IPv6 beside IPv4, as on a dual-stack host
        sh(f"ip -n {gateway} addr add {UPLINK_NET6.format(1)} dev eth0 nodad")
        sh(f"ip -n {engine.netns} addr add {UPLINK_NET6.format(2)} dev up0 nodad")
        sh(f"ip -n {engine.netns} -6 route add default via {uplink(1, 6)}")
        sh(f"ip netns exec {engine.netns} sysctl -qw net.ipv6.conf.all.forwarding=1")


def uplink(end: int, family: int = 4) -> str:
    """The uplink's address at `end`: 1 the gateway, 2 the engine's host."""
    return (UPLINK_NET if family == 4 else UPLINK_NET6).format(end).split("/")[0]


def gateway_of(engine: PodmanEngine) -> str:
    return f"{engine.netns}-gw"[:40]


def typical_workload(engine: PodmanEngine) -> None:
    # On Podman 5, front is dual-stack (netavark picks its IPv6 subnet): its published port
    # is DNATed in both families.
    engine.podman("network", "create", *(["--ipv6"] if engine.generation == 5 else []), "front")
    engine.podman("network", "create", "back")
    engine.podman("network", "create", "--internal", "secret")
    engine.run_container("web", "--network", "front", "-p", "8080:80", *SERVE)
    engine.run_container("api", "--network", "front,back", *SERVE)
    engine.run_container("db", "--network", "back", *IDLE)
    engine.run_container("classic", "-p", "8081:80", *SERVE)  # the default network, podman
    engine.run_container("vault", "--network", "secret", *IDLE)
    engine.podman("pod", "create", "--name", "pod1", "--network", "back", "-p", "8082:80")
    engine.run_container("pweb", "--pod", "pod1", *SERVE)
    engine.run_container("side", "--pod", "pod1", *IDLE)
    for server in ("web", "api", "classic", "pweb"):
        engine.wait_until_serving(server)


def netdiag(engine: PodmanEngine, *args: str, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netdiag", *args], env=env or engine.env,
                          capture_output=True, text=True, timeout=240, check=False)


def check_all(engine: PodmanEngine, env: dict | None = None) -> list[dict]:
    done = netdiag(engine, "check", "--all", "--format", "json", "--timeout", "120", env=env)
    assert done.returncode in (0, 1), f"check --all failed ({done.returncode}): {done.stderr}"
    return json.loads(done.stdout)["findings"]


def engine_namespaces(engine: PodmanEngine) -> set[int]:
    """The inodes of the engine's namespace and of every running container's."""
    found = {os.stat(engine.netns_path).st_ino}
    for pid in engine.podman("ps", "--format", "{{.Pid}}").split():  # one call, not one each
        found.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
    return found


def ours(findings: list[dict], namespaces: set[int]) -> list[dict]:
    return [f for f in findings
            if {f["namespace"]["id"], *(r["id"] for r in f["related"])} & namespaces]


def loud(findings: list[dict]) -> list[str]:
    return [f"{f['severity']} {f['rule']} [{f['namespace']['label']}] {f['subject']}: "
            f"{f['message']}" for f in findings if f["severity"] in ("warning", "error")]


def named(findings: list[dict], rule: str) -> list[dict]:
    return [f for f in findings if f["rule"] == rule]


def served_from_outside(engine: PodmanEngine, port: int, family: int = 4) -> bool:
    """Whether the gateway namespace gets the page through the engine's published port."""
    done = subprocess.run(["ip", "netns", "exec", gateway_of(engine), "sh", "-c",
                           HTTP_GET.format(uplink(2, family), port)],
                          capture_output=True, text=True, timeout=30, check=False)
    return "200 OK" in done.stdout


def reaches_beyond(engine: PodmanEngine, container: str, family: int = 4) -> bool:
    """Whether a container's ping reaches the gateway beyond the host, and comes back."""
    out = engine.exec(container, f"ping -{family} -c1 -W2 {uplink(1, family)} "
                                 ">/dev/null && echo reached")
    return "reached" in out


def resolves(engine: PodmanEngine, container: str, name: str) -> bool:
    """Whether `name` resolves in `container`: both on one network (aardvark-dns answers a
    container with the names of the network it asks on)."""
    return "Address" in engine.exec(container, f"nslookup {name} 2>&1 | tail -n +3")


# --- healthy ----------------------------------------------------------------------------------


def ns_list_labels(engine: PodmanEngine, env: dict | None = None) -> dict[str, str]:
    """label → kind, of every namespace of the engine's containers `ns list` shows (other
    tests' namespaces may be listed beside them)."""
    done = netdiag(engine, "ns", "list", "--json", env=env)
    assert done.returncode == 0, done.stderr
    containers = engine_namespaces(engine) - {os.stat(engine.netns_path).st_ino}
    return {ns["label"]: ns["kind"] for ns in json.loads(done.stdout) if ns["id"] in containers}


def assert_named_and_resolved(engine: PodmanEngine, env: dict | None = None) -> None:
    labels = ns_list_labels(engine, env)
    # Each container's namespace, and the pod's (its three containers share one), once.
    assert labels == {name: "podman" for name in (*CONTAINERS, "pod1")}, labels
    pod_ip = engine.container_ip("pweb", "back")
    for reference in ("pod:pod1", "container:pweb", "container:side", "pod1"):
        done = netdiag(engine, "show", "addrs", "--ns", reference, env=env)
        assert done.returncode == 0, f"{reference}: {done.stderr}"
        assert "== pod1 (podman) ==" in done.stdout and pod_ip in done.stdout, done.stdout
    done = netdiag(engine, "show", "addrs", "--ns", "container:api", env=env)
    assert engine.container_ip("api", "back") in done.stdout
    done = netdiag(engine, "show", "addrs", "--ns", "pod:nopod", env=env)
    assert done.returncode != 0 and "Traceback" not in done.stderr


@pytest.fixture(scope="module", params=[4, 5], ids=["podman4", "podman5"])
def healthy(request) -> Iterator[PodmanEngine]:
    """The module's engine of each generation, healthy (each case that breaks it puts it
    back); pytest runs the cases generation by generation, so one engine at a time: two with
    the same names would make `container:web` ambiguous."""
    with ExitStack() as stack:
        yield start_engine(stack, f"m{request.param}", generation=request.param)


def test_without_the_service_podman_is_read_through_its_command_line(healthy):
    healthy.stop_service()
    try:
        # netdiag runs `podman`: here it must reach this engine's storage and namespaces,
        # as the host's own podman reaches the host's.
        wrapper = healthy.workdir / "bin" / "podman"
        wrapper.parent.mkdir(exist_ok=True)
        wrapper.write_text("#!/bin/sh\nexec " + " ".join(healthy.podman_argv()) + ' "$@"\n')
        wrapper.chmod(0o755)
        env = {**healthy.env, "PATH": f"{wrapper.parent}:{os.environ['PATH']}"}
        assert_named_and_resolved(healthy, env)
        findings = ours(check_all(healthy, env), engine_namespaces(healthy))
        assert not loud(findings), "\n".join(loud(findings))
    finally:
        healthy.start_service()


class TestAHealthyHost:
    """The healthy cases, on the module's engine of each generation."""

    def test_a_healthy_podman_host_is_quiet(self, healthy):
        # The workload works, as the quiet report claims: published ports from outside, the
        # containers beyond the host, names through aardvark-dns.
        assert served_from_outside(healthy, 8080) and served_from_outside(healthy, 8082)
        assert reaches_beyond(healthy, "web") and reaches_beyond(healthy, "classic")
        assert resolves(healthy, "web", "api") and resolves(healthy, "db", "api")
        findings = ours(check_all(healthy), engine_namespaces(healthy))
        assert not loud(findings), "findings on a healthy host:\n" + "\n".join(loud(findings))

    def test_ns_list_names_every_container_and_references_resolve(self, healthy):
        assert_named_and_resolved(healthy)

    def test_path_takes_podman_names(self, healthy):
        """`path` resolves a container's name as aardvark-dns would (on a network they share)
        and a pod by its name, and agrees with a real connection."""
        for source, destination, peer in (("container:web", "api:80", "api"),
                                          ("pod:pod1", "db:80", None)):
            # This engine only: names are the user's per host, and another test's engine (a
            # Docker with its own `web`) may be running beside it.
            done = netdiag(healthy, "path", source, destination, "--format", "json",
                           "--docker", healthy.url)
            assert done.returncode in (0, 1), done.stderr
            disposition = json.loads(done.stdout)["disposition"]
            if peer:  # api serves on 80: delivered, as web's own request shows
                assert disposition == "delivered", done.stdout
                assert "200 OK" in healthy.exec("web", HTTP_GET.replace(
                    "timeout 5 /bin/busybox ", "").format(peer, 80))
            else:  # db serves nothing: the flow reaches db's namespace and finds no listener
                assert disposition == "no-listener", done.stdout

    def test_the_snapshot_says_which_runtime_and_version(self, healthy):
        done = netdiag(healthy, "show", "docker", "--json")
        assert done.returncode == 0, done.stderr
        engines = [e for e in json.loads(done.stdout) if e["url"] == healthy.url]
        assert len(engines) == 1, done.stdout
        engine = engines[0]
        assert engine["runtime"] == "podman" and engine["version"] == healthy.version
        assert healthy.version.startswith({4: "4.3.", 5: "5.8."}[healthy.generation])
        networks = {n["name"]: n for n in engine["networks"]}
        assert networks["secret"]["internal"] and networks["front"]["dns"]
        assert not networks["podman"]["dns"]
        pods = {c["name"]: c["pod"] for c in engine["containers"]}
        assert pods["pweb"] == pods["side"] == "pod1" and pods["web"] == ""


def test_a_rootless_containers_namespace_is_labelled_for_what_it_is():
    """A user's rootless Podman 4.3 (tests/podman_engine.py's RootlessPodman): its container's
    namespace, joined to the network by slirp4netns and not by a bridge, is found through the
    user's API service and named after the container and its user-mode networking;
    `container:NAME` resolves to it. Its published port answers (rootlessport, no DNAT)."""
    reason = rootless_unavailable_reason()
    if reason:
        pytest.skip(reason)
    engine = RootlessPodman()
    try:
        try:
            engine.start()
        except EngineUnavailable as exc:
            pytest.skip(f"rootless podman cannot run here: {exc}")
        build_busybox_image(engine)
        engine.run_container("solo", "-p", "8090:80", *SERVE)
        engine.start_service()
        pid = json.loads(engine.podman("inspect", "solo"))[0]["State"]["Pid"]
        inode = os.stat(f"/proc/{pid}/ns/net").st_ino
        served = "timeout 5 /bin/busybox wget -qO- http://127.0.0.1:8090/ || true"
        end = time.monotonic() + 10
        while "netdiag test page" not in sh_in(engine.netns_path, served):
            assert time.monotonic() < end, "solo's published port never answered"
            time.sleep(0.2)
        # netdiag as root, finding the user's service by its process, as on a desktop.
        done = subprocess.run([sys.executable, "-m", "netdiag", "ns", "list", "--json"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        found = {ns["id"]: (ns["label"], ns["kind"]) for ns in json.loads(done.stdout)}
        assert found.get(inode) == ("solo (slirp4netns)", "podman"), found.get(inode)
        done = subprocess.run([sys.executable, "-m", "netdiag", "show", "addrs", "--ns",
                               "container:solo", "--docker", engine.url],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert "== solo (slirp4netns) (podman) ==" in done.stdout and "tap0" in done.stdout, \
            done.stdout
    finally:
        engine.stop()


def sh_in(netns_path: str, command: str) -> str:
    return subprocess.run(["nsenter", f"--net={netns_path}", "sh", "-c", command],
                          capture_output=True, text=True, timeout=30, check=False).stdout


# --- faults -----------------------------------------------------------------------------------


def netavark_rules(engine: PodmanEngine, table: str) -> list[str]:
    return engine.in_netns(f"iptables -t {table} -S").splitlines()


def firewall(engine: PodmanEngine) -> str:
    """The engine namespace's rule set as netavark writes it: iptables-save's on Podman 4,
    `nft list ruleset` on 5 (every table, iptables-nft's too)."""
    return engine.in_netns("iptables-save" if engine.generation == 4 else "nft list ruleset")


def comparable(rules: str) -> str:
    """A rule set without what changes by itself (iptables-save's dates and counters)."""
    return re.sub(r"\[\d+:\d+\]", "", "\n".join(
        line for line in rules.splitlines() if not line.startswith("#")))


@contextmanager
def put_back(engine: PodmanEngine, **works) -> Iterator[None]:
    """The engine's firewall as it was before the case broke it, restored and proven equal,
    then each of `works` (what the case proved broken, by name) proven working again: the next
    case starts on a healthy host."""
    before = firewall(engine)
    try:
        yield
    finally:
        restore = "iptables-restore" if engine.generation == 4 else \
            "nft flush ruleset && nft -f -"
        engine.in_netns(restore, stdin=before.encode())
    assert comparable(firewall(engine)) == comparable(before)
    for what, working in works.items():
        assert working(), f"firewall put back, and still broken: {what}"


def test_a_published_port_whose_dnat_is_gone_is_named(healthy):
    engine = healthy
    assert served_from_outside(engine, 8080)
    with put_back(engine, port_8080=lambda: served_from_outside(engine, 8080)):
        if engine.generation == 4:
            dnat = next(rule for rule in netavark_rules(engine, "nat")
                        if "--dport 8080" in rule and "-j DNAT" in rule)
            engine.in_netns(f"iptables -t nat {dnat.replace('-A ', '-D ', 1)}")
        else:
            # web's network's DNAT chain flushed (nv_<hash>_dnat, the one with web's DNAT).
            table = engine.in_netns("nft list table inet netavark")
            web = engine.container_ip("web", "front")
            chain = next(block.split()[0] for block in table.split("chain ")[1:]
                         if f"dnat ip to {web}:80" in block)
            engine.in_netns(f"nft flush chain inet netavark {chain}")
        # conmon still holds the port: the connection is accepted, and nothing answers.
        assert ":8080 " in engine.in_netns("ss -ltn")
        assert not served_from_outside(engine, 8080)
        assert served_from_outside(engine, 8082)  # the others still work
        findings = ours(check_all(engine), engine_namespaces(engine))
        found = named(findings, "podman-port-unpublished")
        assert [f["subject"] for f in found] == ["tcp/8080"], "\n".join(loud(findings))
        assert "web:80" in found[0]["message"]
        if engine.generation == 5:
            assert "inet netavark" in found[0]["message"]


def test_netavark_chains_flushed_by_a_firewall_reload_are_named(healthy):
    engine = healthy
    assert reaches_beyond(engine, "web") and served_from_outside(engine, 8080)
    with put_back(engine, web_beyond=lambda: reaches_beyond(engine, "web"),
                  port_8080=lambda: served_from_outside(engine, 8080)):
        if engine.generation == 4:
            engine.in_netns("iptables -F && iptables -t nat -F")
        else:
            # firewalld's reload (or an `nft flush ruleset` in a script) takes netavark's table.
            engine.in_netns("nft delete table inet netavark")
        assert not reaches_beyond(engine, "web")  # its source is no longer masqueraded
        assert not served_from_outside(engine, 8080)
        findings = ours(check_all(engine), engine_namespaces(engine))
        if engine.generation == 5:
            # One cause, named once: not a missing rule per network and a DNAT per port.
            loud_ones = [f for f in findings if f["severity"] in ("warning", "error")]
            assert [(f["rule"], f["subject"]) for f in loud_ones] == [
                ("podman-network-rules-missing", "inet netavark")], "\n".join(loud(findings))
            message = loud_ones[0]["message"]
            # Every network that reaches beyond the host; never the internal one.
            assert all(f"{n} (" in message for n in ("front", "back", "podman")), message
            assert "secret" not in message
            return
        missing = named(findings, "podman-network-rules-missing")
        masquerade = {f["message"].split(" (")[0] for f in missing
                      if f["subject"] == "nat/POSTROUTING"}
        # Every network in use that reaches beyond the host; never the internal one.
        assert masquerade == {"network front", "network back", "network podman"}, missing
        unpublished = {f["subject"] for f in named(findings, "podman-port-unpublished")}
        assert unpublished == {"tcp/8080", "tcp/8081", "tcp/8082"}


def test_a_forward_policy_that_drops_a_podman_network_is_named(healthy):
    engine = healthy
    assert reaches_beyond(engine, "web")
    with put_back(engine, web_beyond=lambda: reaches_beyond(engine, "web")):
        if engine.generation == 4:
            # Another firewall set the policy to DROP and reloaded without netavark's jump.
            jump = next(rule for rule in netavark_rules(engine, "filter")
                        if rule.startswith("-A FORWARD") and "NETAVARK_FORWARD" in rule)
            engine.in_netns(f"iptables -P FORWARD DROP && "
                            f"iptables {jump.replace('-A ', '-D ', 1)}")
        else:
            # Docker on the same host: its FORWARD policy DROP (iptables-nft's `table ip
            # filter`) drops what `table inet netavark`'s forward chain accepts — each base
            # chain of the hook must accept.
            engine.in_netns("iptables -P FORWARD DROP")
        assert not reaches_beyond(engine, "web")
        if engine.generation == 5:  # the policy is IPv4's: dual-stack front's IPv6 gets out
            assert reaches_beyond(engine, "web", 6)
        findings = ours(check_all(engine), engine_namespaces(engine))
        found = named(findings, "podman-forward-dropped")
        networks = {f["message"].split(" (")[0] for f in found}
        assert networks == {"network front", "network back", "network podman"}, found
        policy = {4: "FORWARD policy DROP", 5: "the filter FORWARD chain's policy is DROP"}
        assert all(policy[engine.generation] in f["message"] for f in found), found
        if engine.generation == 5:
            front = next(f["message"] for f in found if f["message"].startswith("network front"))
            assert ": IPv4 traffic out of" in front, front
        # Named once: by this rule alone, one finding per network.
        assert len(loud(findings)) == len(found) == 3, "\n".join(loud(findings))


# The host's own forward chain, policy drop, accepting only a router's LAN-to-WAN traffic:
# containers/netavark#977's ruleset.
HOST_FILTER = """table inet filter {
    chain forward {
        type filter hook forward priority filter; policy drop;
        iifname "lan0" oifname "wan0" accept
    }
}
"""


def test_the_hosts_own_forward_drop_on_a_host_without_a_default_route_is_named(healthy):
    """Podman 5: a `table inet filter` forward chain with policy drop (containers/netavark#977)
    drops what netavark's table accepts, in both families; on a host with no IPv4 default
    route (its LAN, and a route to its resolver), judged towards that route's gateway."""
    engine = healthy
    if engine.generation != 5:
        pytest.skip("Podman 4's iptables FORWARD is the previous case's")
    default = engine.in_netns("ip -4 route show default").strip()
    resolver = engine.in_netns("sed -n 's/^nameserver //p' /etc/resolv.conf").split()[0]
    engine.in_netns(f"ip -4 route del default && ip route add {resolver} via {uplink(1)}")
    try:
        # Without a default route, the LAN is still reached, in both families.
        assert reaches_beyond(engine, "web") and reaches_beyond(engine, "web", 6)
        with put_back(engine, web_beyond=lambda: reaches_beyond(engine, "web")):
            engine.in_netns("nft -f -", stdin=HOST_FILTER.encode())
            assert not reaches_beyond(engine, "web") and not reaches_beyond(engine, "web", 6)
            findings = ours(check_all(engine), engine_namespaces(engine))
            found = named(findings, "podman-forward-dropped")
            assert {f["message"].split(" (")[0] for f in found} == {
                "network front", "network back", "network podman"}, found
            assert all("nft inet filter forward has policy drop" in f["message"]
                       for f in found), found
            front = next(f for f in found if f["message"].startswith("network front"))
            assert ": traffic out of" in front["message"], front  # both families
            beyond = [e["text"] for e in front["evidence"] if e["text"].startswith("flow")]
            assert f"to {uplink(1)} (IPv4" in beyond[0] and f"to {uplink(1, 6)} (IPv6" in \
                beyond[1], beyond
            assert len(loud(findings)) == len(found) == 3, "\n".join(loud(findings))
    finally:
        engine.in_netns(f"ip route del {resolver} via {uplink(1)}; "
                        f"ip -4 route replace {default}")
    assert reaches_beyond(engine, "web", 6), "not put back"


def test_an_ipv6_published_port_is_followed_and_its_dnat_gone_is_named(healthy):
    """Podman 5: web's published port on dual-stack front, reached in IPv6 from outside and
    by `path`; its IPv6 DNAT deleted (the IPv4 one kept), named for IPv6 alone."""
    engine = healthy
    if engine.generation != 5:
        pytest.skip("dual-stack front is Podman 5's engine's")
    web6 = engine.inspect("web")["NetworkSettings"]["Networks"]["front"]["GlobalIPv6Address"]
    assert web6 and served_from_outside(engine, 8080, 6)
    gateway = os.stat(f"/run/netns/{gateway_of(engine)}").st_ino
    done = netdiag(engine, "path", f"inode:{gateway}", f"[{uplink(2, 6)}]:8080", "--format",
                   "json", "--docker", engine.url)
    assert done.returncode in (0, 1), done.stderr
    flow = json.loads(done.stdout)
    assert flow["disposition"] == "delivered", done.stdout
    web_ns = os.stat(f"/proc/{engine.pid_of('web')}/ns/net").st_ino
    assert flow["hops"][-1]["namespace"]["id"] == web_ns, done.stdout
    with put_back(engine, port_8080_ipv6=lambda: served_from_outside(engine, 8080, 6)):
        table = engine.in_netns("nft -a list table inet netavark")
        chain, handle = next(
            (block.split()[0], line.rsplit("# handle ", 1)[1])
            for block in table.split("chain ")[1:] for line in block.splitlines()
            if f"dnat ip6 to [{web6}]:80" in line)
        engine.in_netns(f"nft delete rule inet netavark {chain} handle {handle}")
        assert not served_from_outside(engine, 8080, 6)
        assert served_from_outside(engine, 8080)  # IPv4 still
        findings = ours(check_all(engine), engine_namespaces(engine))
        found = named(findings, "podman-port-unpublished")
        assert [f["subject"] for f in found] == ["tcp/8080"], "\n".join(loud(findings))
        assert f"takes no IPv6 connection to tcp/8080 to [{web6}]:80" in found[0]["message"]
        assert len(loud(findings)) == 1, "\n".join(loud(findings))


def aardvark_pids(engine: PodmanEngine) -> set[str]:
    return set(re.findall(r'"aardvark-dns",pid=(\d+)', engine.in_netns("ss -lunp")))


def test_aardvark_dns_not_answering_is_named(healthy):
    engine = healthy
    assert resolves(engine, "web", "api") and resolves(engine, "db", "api")
    pids = aardvark_pids(engine)
    assert pids
    try:
        for pid in pids:  # aardvark-dns was started by this engine (netavark, in its namespaces)
            os.kill(int(pid), 9)
        wait_until(lambda: not aardvark_pids(engine))
        assert not resolves(engine, "web", "api") and not resolves(engine, "db", "api")
        findings = ours(check_all(engine), engine_namespaces(engine))
        found = named(findings, "podman-dns-unanswered")
        # The networks with DNS and a container, the internal one too: the default network
        # has no DNS.
        assert {f["subject"] for f in found} == {"front", "back", "secret"}, found
        # Named once: by this rule alone, one finding per network.
        assert len(loud(findings)) == len(found), "\n".join(loud(findings))
    finally:
        # netavark starts aardvark-dns again for a container it sets up on a network with
        # DNS (its pid file names a process that is gone); on a busy machine a first set-up
        # has been seen to leave it down, so the put-back tries three times.
        for _ in range(3):
            engine.podman("run", "--rm", "--network", "front", IMAGE, "true")
            if wait_until(lambda: aardvark_pids(engine), fail=False):
                break
    assert aardvark_pids(engine), "aardvark-dns not started again by three containers"
    assert resolves(engine, "web", "api") and resolves(engine, "db", "api"), "not put back"


def wait_until(condition, timeout: float = 10.0, fail: bool = True) -> bool:
    """Poll `condition` until it holds (True), or fail after `timeout` (False if not `fail`)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= end:
            assert not fail, "condition not met in time"
            return False
        time.sleep(0.1)
    return True
