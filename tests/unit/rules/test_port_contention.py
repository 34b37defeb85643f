"""port-contention (ND301) on fixture snapshots."""

from netdiag.findings.finding import Severity
from netdiag.findings.repair import DeleteIptablesRule
from netdiag.model.docker import DockerPort
from tests.fixtures.rules import run_rule
from tests.fixtures.scenarios import docker_host

PUBLISH = "-A DOCKER ! -i br-web -p tcp -m tcp --dport {port} -j DNAT --to-destination {to}"


def test_healthy_docker_host_with_userland_proxy_passes():
    assert run_rule("port-contention", docker_host().build()) == []


def test_the_engines_own_port_reservation_with_the_userland_proxy_off_passes():
    """With `userland-proxy: false` dockerd itself binds each published port (found on a
    real engine by the healthy matrix)."""
    d = docker_host()  # web publishes 8080 → 80, and its intent says it binds 8080
    d.b._fields[d.host]["sockets"] = [s for s in d.b._fields[d.host]["sockets"]
                                      if s.process != "docker-proxy"]
    d.b.socket(d.host, "tcp", "0.0.0.0", 8080, process="dockerd", pid=10)
    assert run_rule("port-contention", d.build()) == []
    d.b.docker = []  # a version-1 snapshot: the holder's name is all there is to go by
    assert run_rule("port-contention", d.build()) == []


def test_a_keeper_of_a_port_no_container_binds_is_no_reservation():
    """With Docker's intent the holder's name is not enough: a docker-proxy on a port that no
    running container binds is a leftover (moby/moby#25981, moby/moby#26527)."""
    d = docker_host()  # docker-proxy (pid 300) holds web's 8080
    d.b.socket(d.host, "tcp", "0.0.0.0", 9443, process="docker-proxy", pid=301)
    (finding,) = run_rule("port-contention", d.build())
    assert finding.subject == "tcp/9443" and finding.severity is Severity.WARNING
    assert "docker-proxy (pid 301)" in finding.message and "outlived" in finding.message
    assert [e.kind for e in finding.evidence] == ["socket", "docker"]
    # A DNAT for a port that only a leftover holds captures it like any other listener.
    d.b.iptables(d.host, "nat", PUBLISH.format(port=9443, to="172.18.0.2:80"))
    found = {(f.subject, f.severity) for f in run_rule("port-contention", d.build())}
    assert found == {("tcp/9443", Severity.WARNING), ("tcp/9443", Severity.ERROR)}
    # Without intent (a version-1 snapshot) the name is trusted, as before.
    d.b.docker = []
    assert run_rule("port-contention", d.build()) == []


def test_a_stopped_containers_proxy_is_a_leftover():
    """docker/cli#2898: the proxy of a port published on an IPv6 host address outlives
    `docker stop`."""
    d = docker_host()
    d.container_intent("web", state="exited", netns=0, pid=0)
    (finding,) = [f for f in run_rule("port-contention", d.build()) if "outlived" in f.message]
    assert finding.subject == "tcp/8080"


def test_two_programs_on_one_tcp_port():
    d = docker_host()
    d.b.socket(d.host, "tcp", "192.168.1.10", 22, process="dropbear", pid=77)
    (finding,) = run_rule("port-contention", d.build())
    assert finding.subject == "tcp/22" and finding.severity is Severity.ERROR
    assert "sshd (pid 1)" in finding.message and "dropbear (pid 77)" in finding.message


def test_reuseport_workers_of_one_program_and_shared_udp_ports_pass():
    d = docker_host()
    d.b.socket(d.host, "tcp", "0.0.0.0", 443, process="nginx", pid=20)
    d.b.socket(d.host, "tcp", "0.0.0.0", 443, process="nginx", pid=21)
    d.b.socket(d.host, "udp", "0.0.0.0", 5353, process="avahi-daemon", pid=30)
    d.b.socket(d.host, "udp", "0.0.0.0", 5353, process="chrome", pid=31)
    assert run_rule("port-contention", d.build()) == []


def test_dnat_capturing_a_local_listener():
    d = docker_host()
    d.b.socket(d.host, "tcp", "0.0.0.0", 9090, process="python3", pid=4242)
    d.b.iptables(d.host, "nat", PUBLISH.format(port=9090, to="172.18.0.2:80"))
    (finding,) = run_rule("port-contention", d.build())
    assert finding.subject == "tcp/9090"
    assert "shadowing python3 (pid 4242)" in finding.message
    assert {e.kind for e in finding.evidence} == {"firewall", "socket"}


def test_two_dnats_for_one_port_to_different_backends():
    d = docker_host()
    d.b.socket(d.web, "tcp", "0.0.0.0", 81, process="httpd", pid=201)
    d.b.iptables(d.host, "nat", PUBLISH.format(port=8080, to="172.18.0.2:81"))
    (finding,) = run_rule("port-contention", d.build())
    assert finding.subject == "tcp/8080" and finding.severity is Severity.ERROR
    assert "172.18.0.2:80 (web) by nat/DOCKER/3" in finding.message
    assert "172.18.0.2:81 (web) by nat/DOCKER/4" in finding.message
    assert finding.related == (d.web,)
    (step,) = finding.repair.steps
    assert isinstance(step, DeleteIptablesRule)
    assert step.command() == ("iptables -t nat -D DOCKER '!' -i br-web -p tcp -m tcp --dport "
                              "8080 -j DNAT --to-destination 172.18.0.2:81")


def test_dangling_publish_target_without_listener():
    d = docker_host()
    d.b.iptables(d.host, "nat", PUBLISH.format(port=8081, to="172.18.0.2:8000"))
    (finding,) = run_rule("port-contention", d.build())
    assert finding.subject == "tcp/8081" and finding.severity is Severity.WARNING
    assert "nothing listens on tcp port 8000" in finding.message
    assert finding.related == (d.web,)


def test_published_port_inside_the_ephemeral_range():
    d = docker_host()
    d.b.iptables(d.host, "nat", PUBLISH.format(port=40000, to="172.18.0.2:80"))
    web = next(c for c in d.b.docker[0].containers if c.name == "web")
    d.container_intent("web", bound=web.bound + (DockerPort(80, "tcp", "0.0.0.0", 40000),))
    (finding,) = run_rule("port-contention", d.build())
    assert finding.subject == "tcp/40000" and finding.severity is Severity.WARNING
    assert "ephemeral range 32768-60999" in finding.message
    # Held by the userland proxy, the port can never become a source port.
    d.b.socket(d.host, "tcp", "0.0.0.0", 40000, process="docker-proxy", pid=301)
    assert run_rule("port-contention", d.build()) == []


def test_probe_results_for_the_port_become_evidence():
    from dataclasses import replace

    from netdiag.model import PortProbe, Probes

    d = docker_host()
    d.b.socket(d.host, "tcp", "192.168.1.10", 22, process="dropbear", pid=77)
    connect = PortProbe(namespace=d.host, address="192.168.1.10", port=22, open=True,
                        purpose="published")
    snapshot = replace(d.build(), probes=Probes(ports=(connect,)))
    (finding,) = run_rule("port-contention", snapshot)
    assert finding.evidence[-1].kind == "probe"
    assert "tcp connect to 192.168.1.10:22 (published): connected" in finding.evidence[-1].text


def test_a_publish_leads_to_the_container_on_its_own_host_when_addresses_repeat():
    """Every Docker host has 172.17.0.2: the target is the one on this host's bridge."""
    from tests.fixtures.builder import SnapshotBuilder

    b = SnapshotBuilder()
    for name in ("h1", "h2"):  # h1's container comes first and listens on nothing
        host = b.host(name)
        b.bridge(host, "docker0", "172.17.0.1/16")
        app = b.container(f"app-{name}")
        b.veth(app, "eth0", host, f"veth-{name}", peer_master="docker0",
               address="172.17.0.2/16")
        b.route(app, "default", gateway="172.17.0.1", dev="eth0")
    b.socket(app, "tcp", "0.0.0.0", 5000, process="web")
    b.iptables(host, "nat", PUBLISH.format(port=8080, to="172.17.0.2:5000"))
    assert run_rule("port-contention", b.build()) == []
    b.iptables(host, "nat", PUBLISH.format(port=8081, to="172.17.0.2:5001"))
    (finding,) = run_rule("port-contention", b.build())  # still found where it is real
    assert finding.subject == "tcp/8081" and finding.related == (app,)
