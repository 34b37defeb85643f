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
  policy DROP (which netavark's own forward chain does not override).
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
from tests.podman_engine import IMAGE, PodmanEngine, build_busybox_image, unavailable_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UPLINK_NET = "198.19.9.{}/24"  # benchmarking range: never a real network
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


def gateway_of(engine: PodmanEngine) -> str:
    return f"{engine.netns}-gw"[:40]


def typical_workload(engine: PodmanEngine) -> None:
    engine.podman("network", "create", "front")
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


def served_from_outside(engine: PodmanEngine, port: int) -> bool:
    """Whether the gateway namespace gets the page through the engine's published port."""
    done = subprocess.run(["ip", "netns", "exec", gateway_of(engine), "sh", "-c",
                           HTTP_GET.format(UPLINK_NET.format(2).split("/")[0], port)],
                          capture_output=True, text=True, timeout=30, check=False)
    return "200 OK" in done.stdout


def reaches_beyond(engine: PodmanEngine, container: str) -> bool:
    """Whether a container's ping reaches the gateway beyond the host, and comes back."""
    out = engine.exec(container, f"ping -c1 -W2 {UPLINK_NET.format(1).split('/')[0]} "
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
        findings = ours(check_all(engine), engine_namespaces(engine))
        found = named(findings, "podman-forward-dropped")
        networks = {f["message"].split(" (")[0] for f in found}
        assert networks == {"network front", "network back", "network podman"}, found
        policy = {4: "FORWARD policy DROP", 5: "the filter FORWARD chain's policy is DROP"}
        assert all(policy[engine.generation] in f["message"] for f in found), found
        # Named once: by this rule alone, one finding per network.
        assert len(loud(findings)) == len(found) == 3, "\n".join(loud(findings))


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
        # DNS (its pid file names a process that is gone).
        engine.podman("run", "--rm", "--network", "front", IMAGE, "true")
    wait_until(lambda: aardvark_pids(engine))
    assert resolves(engine, "web", "api") and resolves(engine, "db", "api"), "not put back"


def wait_until(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.1)
