"""The Podman rules on fixture snapshots: a Podman 4 host whose netavark rules are the ones
Debian 12's Podman 4.3 wrote (tests/integration/test_podman.py runs them for real), quiet as
it is, each rule firing on one fault, and port-contention excusing conmon's hold on the ports
it publishes."""

from dataclasses import dataclass, replace

from netdiag.collect.iptables_save import parse
from netdiag.findings.finding import Severity
from netdiag.model import Gap, NftTable
from netdiag.model.docker import (
    DockerContainer,
    DockerEndpoint,
    DockerEngine,
    DockerIpam,
    DockerNetwork,
    DockerPort,
)
from tests.fixtures.builder import SnapshotBuilder
from tests.fixtures.rules import run_rule

RULES = ("podman-port-unpublished", "podman-network-rules-missing", "podman-forward-dropped",
         "podman-dns-unanswered", "port-contention", "docker-port-unpublished",
         "docker-network-rules-missing", "docker-bridge-broken", "forward-policy-drop")
# iptables-save of the engine's namespace with one container, web, on network n1 (podman1,
# 10.89.0.0/24) publishing 8080 → 80, and an internal network (podman2) with vault on it.
FILTER = """\
-A FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD
-A NETAVARK_FORWARD -d 10.89.0.0/24 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A NETAVARK_FORWARD -s 10.89.0.0/24 -j ACCEPT"""
NAT = """\
-A PREROUTING -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
-A POSTROUTING -j NETAVARK-HOSTPORT-MASQ
-A POSTROUTING -s 10.89.0.0/24 -j NETAVARK-43D91F8451058
-A NETAVARK-43D91F8451058 -d 10.89.0.0/24 -j ACCEPT
-A NETAVARK-43D91F8451058 ! -d 224.0.0.0/4 -j MASQUERADE
-A NETAVARK-DN-43D91F8451058 -s 10.89.0.0/24 -p tcp -m tcp --dport 8080 -j NETAVARK-HOSTPORT-SETMARK
-A NETAVARK-DN-43D91F8451058 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j NETAVARK-HOSTPORT-SETMARK
-A NETAVARK-DN-43D91F8451058 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.89.0.2:80
-A NETAVARK-HOSTPORT-DNAT -p tcp -m tcp --dport 8080 -j NETAVARK-DN-43D91F8451058
-A NETAVARK-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A NETAVARK-HOSTPORT-SETMARK -j MARK --set-xmark 0x2000/0x2000"""


@dataclass
class PodmanHost:
    b: SnapshotBuilder
    host: int
    web: int
    vault: int
    nat: list[str]
    filter: list[str]
    forward_policy: str = "ACCEPT"
    dns_listening: bool = True

    def build(self, **engine_fields):
        b = self.b
        # The collector's own parser: netavark's rules use matches (comment, addrtype, mark)
        # the fixture builder's short one does not know.
        chains, rules = parse(save("filter", self.filter, FORWARD=self.forward_policy)
                              + save("nat", self.nat), "nft", 4)
        b._fields[self.host]["iptables_chains"] = list(chains)
        b._fields[self.host]["iptables_rules"] = list(rules)
        if self.dns_listening:
            b.socket(self.host, "udp", "10.89.0.1", 53, process="aardvark-dns", pid=410)
            b.socket(self.host, "udp", "10.89.1.1", 53, process="aardvark-dns", pid=410)
        b.docker.append(replace(intent(self.host, self.web, self.vault), **engine_fields))
        return b.build()


BUILT_IN = {"filter": ("INPUT", "FORWARD", "OUTPUT"),
            "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}


def save(table: str, lines: list[str], **policies: str) -> str:
    """An iptables-save dump of one table: its built-in chains (policy ACCEPT unless given),
    the chains the rules are in, and the rules."""
    own = dict.fromkeys(line.split()[1] for line in lines) | dict.fromkeys(
        word for line in lines for word in line.split() if word.startswith("NETAVARK"))
    heads = [f":{c} {policies.get(c, 'ACCEPT')} [0:0]" for c in BUILT_IN[table]]
    heads += [f":{c} - [0:0]" for c in own if c not in BUILT_IN[table]]
    return "\n".join([f"*{table}", *heads, *lines, "COMMIT", ""])


def network(name: str, bridge: str, subnet: str, gateway: str, **fields) -> DockerNetwork:
    return DockerNetwork(id=f"{name}0123456789abcdef", name=name, driver="bridge",
                         ipam=(DockerIpam(subnet, gateway),),
                         options=(("com.docker.network.bridge.name", bridge),), **fields)


def intent(host: int, web: int, vault: int) -> DockerEngine:
    port = DockerPort(container_port=80, protocol="tcp", host_port=8080)
    return DockerEngine(
        url="unix:///run/podman/podman.sock", runtime="podman", namespace=host, pid=90,
        name="test", version="4.3.1", networks=(
            network("podman", "podman0", "10.88.0.0/16", "10.88.0.1"),
            network("n1", "podman1", "10.89.0.0/24", "10.89.0.1", dns=True),
            network("inner", "podman2", "10.89.1.0/24", "10.89.1.1", dns=True, internal=True)),
        containers=(
            DockerContainer(id="w" * 64, name="web", state="running", pid=200, netns=web,
                            network_mode="bridge", bound=(port,), endpoints=(DockerEndpoint(
                                "n1", "n1", ip="10.89.0.2", prefixlen=24,
                                gateway="10.89.0.1"),)),
            DockerContainer(id="v" * 64, name="vault", state="running", pid=201, netns=vault,
                            network_mode="bridge", endpoints=(DockerEndpoint(
                                "inner", "inner", ip="10.89.1.2", prefixlen=24,
                                gateway="10.89.1.1"),))))


def podman_host() -> PodmanHost:
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="192.168.1.10/24")
    b.route(host, "default", gateway="192.168.1.1", dev="eth0")
    b.sysctl(host, "net.ipv4.ip_forward", 1)
    b.bridge(host, "podman1", "10.89.0.1/24")
    b.bridge(host, "podman2", "10.89.1.1/24")
    web = b.container("web")
    b.veth(web, "eth0", host, "veth0", address="10.89.0.2/24", peer_master="podman1")
    b.route(web, "default", gateway="10.89.0.1", dev="eth0")
    b.socket(web, "tcp", "0.0.0.0", 80, process="httpd", pid=200)
    vault = b.container("vault")
    b.veth(vault, "eth0", host, "veth1", address="10.89.1.2/24", peer_master="podman2")
    # conmon holds each port its container publishes, as docker-proxy does.
    b.socket(host, "tcp", "0.0.0.0", 8080, process="conmon", pid=300)
    b.socket(host, "tcp", "0.0.0.0", 22, process="sshd", pid=1)
    return PodmanHost(b, host, web, vault, NAT.splitlines(), FILTER.splitlines())


def loud(snapshot) -> list:
    return [f for rule in RULES for f in run_rule(rule, snapshot)
            if f.severity in (Severity.ERROR, Severity.WARNING)]


def test_the_healthy_podman_host_is_quiet():
    assert loud(podman_host().build()) == []


def test_with_forward_policy_drop_netavarks_accept_keeps_it_quiet():
    p = podman_host()
    p.forward_policy = "DROP"
    assert loud(p.build()) == []


def test_conmon_holding_a_port_no_running_container_publishes_is_not_excused():
    """Excused only for what Podman's intent says it publishes: with no container, the DNAT
    left behind shadows conmon's socket like any other listener's."""
    p = podman_host()
    (finding,) = run_rule("port-contention", p.build(containers=()))
    assert finding.subject == "tcp/8080" and "conmon" in finding.message


def test_a_published_port_without_its_dnat():
    p = podman_host()
    p.nat = [line for line in p.nat if "-j DNAT" not in line]
    (finding,) = run_rule("podman-port-unpublished", p.build())
    assert finding.subject == "tcp/8080" and finding.severity is Severity.ERROR
    assert "no DNAT for tcp/8080 to 10.89.0.2:80" in finding.message
    assert finding.related == (p.web,)


def test_a_dnat_no_chain_reaches_does_not_count():
    p = podman_host()
    p.nat = [line for line in p.nat if not line.startswith("-A PREROUTING")
             and not line.startswith("-A OUTPUT")]
    (finding,) = run_rule("podman-port-unpublished", p.build())
    assert "neither PREROUTING nor OUTPUT reaches" in finding.message


def test_flushed_chains_miss_the_masquerade_and_the_forward_accept():
    p = podman_host()
    p.nat, p.filter = [], []  # `iptables -F; iptables -t nat -F`: only the chains are left
    findings = run_rule("podman-network-rules-missing", p.build())
    assert {(f.subject, f.severity) for f in findings} == {
        ("nat/POSTROUTING", Severity.ERROR), ("filter/FORWARD", Severity.WARNING)}
    assert all(f.message.startswith("network n1 (10.89.0.0/24)") for f in findings)


def test_forward_policy_drop_without_netavarks_jump():
    p = podman_host()
    p.forward_policy = "DROP"
    p.filter = [line for line in p.filter if not line.startswith("-A FORWARD")]
    (finding,) = run_rule("podman-forward-dropped", p.build())
    assert finding.subject == "podman1" and "FORWARD policy DROP" in finding.message
    # One cause, one finding: forward-policy-drop leaves netavark's bridges to its twin.
    assert run_rule("forward-policy-drop", p.build()) == []


def test_a_drop_naming_the_bridge_before_netavark():
    p = podman_host()
    p.filter = ["-A FORWARD -i podman1 -j DROP", *p.filter]
    (finding,) = run_rule("podman-forward-dropped", p.build())
    assert "-i podman1 -j DROP" in finding.message


def test_aardvark_dns_not_listening():
    p = podman_host()
    p.dns_listening = False
    findings = run_rule("podman-dns-unanswered", p.build())
    # An internal network's names are served too: vault's network is judged like n1.
    assert {f.subject for f in findings} == {"n1", "inner"}
    assert all("aardvark-dns is not running" in f.message for f in findings)


def test_podman_5s_nftables_table_is_not_judged():
    p = podman_host()
    p.nat, p.filter = [], ["-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"]
    snapshot = p.build()
    host = snapshot.namespace(p.host)
    nft = replace(host.firewall, nft_tables=(NftTable("inet", "netavark", origin="nft"),))
    podman5 = replace(snapshot, namespaces=tuple(
        replace(s, firewall=nft) if s.ref.id == p.host else s for s in snapshot.namespaces))
    # (podman-port-unpublished follows Podman 5's ports through the table: test_podman5_rules)
    for rule in ("podman-network-rules-missing", "podman-forward-dropped"):
        assert run_rule(rule, podman5) == [], rule


def test_docker_rules_leave_podman_engines_alone():
    p = podman_host()
    p.nat, p.filter = [], []
    snapshot = p.build()
    for rule in ("docker-port-unpublished", "docker-network-rules-missing",
                 "docker-bridge-broken"):
        assert run_rule(rule, snapshot) == [], rule


def test_a_firewall_that_was_not_read_is_not_judged():
    p = podman_host()
    p.nat, p.filter = [], []
    snapshot = p.build()
    unread = replace(snapshot, gaps=(Gap(collector="firewall", kind="error", message="x",
                                         namespace=p.host),))
    for rule in ("podman-port-unpublished", "podman-network-rules-missing"):
        assert run_rule(rule, snapshot) != [], rule  # read: the flushed chains are faults
        assert run_rule(rule, unread) == [], rule
