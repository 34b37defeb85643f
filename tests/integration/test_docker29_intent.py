"""Docker's intent rules on Docker 29's nftables backend: moby's own rulesets, loaded with
`nft -f` into a namespace of ours, listed back with `nft -j` / `nft -a` and read by the
collector's parser, beside the Docker intent that goes with each (fixture snapshots).

The rulesets: moby's generated nftables documents (tests/corpus/nftables/docker29-*.nft:
moby/moby, integration/network/bridge/nftablesdoc/generated/*.md), and, for a dual-stack
network, moby's nftabler golden files of one configuration in both families (DUAL_STACK_IP /
DUAL_STACK_IP6 below: moby/moby, daemon/libnetwork/drivers/bridge/internal/nftabler/testdata/
TestNftabler/hairpin=false,internal=false,icc=false,masq=true,snat=false,gwm=nat,bindlh=false
__ip.golden and __ip6.golden; copied as is but for nat-OUTPUT's priority, which nft 1.0.6
takes only as its value at the output hook, -100, without the counters' zero values
and the blank lines between chains).

Each document with its intent is quiet for every Docker intent rule; a masquerade rule, a
verdict map's element, a DNAT rule or an ICC drop cut out of the loaded table is named by
docker-network-rules-missing or docker-port-unpublished, with a repair that is the daemon's
(manual), never an iptables rule.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from netdiag.collect.nftables import parse_ruleset
from netdiag.findings.repair import ManualStep, Safety
from netdiag.model import Firewall
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
from tests.unit.rules.part2_fixtures import amend

pytestmark = [pytest.mark.integration]

CORPUS = Path(__file__).parents[1] / "corpus" / "nftables"
RULES = ("docker-port-unpublished", "docker-bridge-broken", "docker-endpoint-broken",
         "docker-network-rules-missing")
BRIDGE_NAME = "com.docker.network.bridge.name"
ICC = "com.docker.network.bridge.enable_icc"
GATEWAY_MODE = "com.docker.network.bridge.gateway_mode_ipv4"
WEB = DockerPort(container_port=80, protocol="tcp", host_port=8080)


@dataclass(frozen=True)
class Net:
    bridge: str
    subnet: str
    options: tuple[tuple[str, str], ...] = ()
    internal: bool = False
    subnet6: str = ""


@dataclass(frozen=True)
class Ctr:
    network: str  # the bridge's name
    address: str
    bindings: tuple[str, ...] = ()  # the host addresses its port 8080 → 80 is bound to
    address6: str = ""


DOCKER0 = Net("docker0", "172.17.0.0/16")
BRIDGE1 = Net("bridge1", "192.0.2.0/24")
C1 = Ctr("bridge1", "192.0.2.2", ("0.0.0.0",))
# Each of moby's documents: the daemon's networks and containers its text says it ran.
INTENTS = {
    "docker29-new-daemon": ((DOCKER0,), ()),
    "docker29-usernet-portmap": ((DOCKER0, BRIDGE1), (C1,)),
    "docker29-usernet-portmap-noicc": (
        (DOCKER0, replace(BRIDGE1, options=((ICC, "false"),))), (C1,)),
    "docker29-usernet-portmap-natunprot": (
        (DOCKER0, replace(BRIDGE1, options=((GATEWAY_MODE, "nat-unprotected"),))), (C1,)),
    "docker29-usernet-portmap-routed": (
        (DOCKER0, replace(BRIDGE1, options=((GATEWAY_MODE, "routed"),))), (C1,)),
    "docker29-usernet-portmap-lo": ((DOCKER0, BRIDGE1), (replace(C1, bindings=("127.0.0.1",)),)),
    "docker29-usernet-internal": (
        (DOCKER0, Net("bridgeICC", "192.0.2.0/24", internal=True),
         Net("bridgeNoICC", "198.51.100.0/24", ((ICC, "false"),), internal=True)),
        (Ctr("bridgeICC", "192.0.2.2"), Ctr("bridgeNoICC", "198.51.100.2"))),
}
DUAL = "dual-stack"
DUAL_NET = Net("br-dummy", "192.168.0.0/24", ((ICC, "false"),), subnet6="fd49:efd7:54aa::/64")
INTENTS[DUAL] = ((DUAL_NET,), (Ctr("br-dummy", "192.168.0.2", ("0.0.0.0", "::"),
                                   "fd49:efd7:54aa::1"),))

DUAL_STACK_IP = """\
table ip docker-bridges {
	map filter-forward-in-jumps {
		type ifname : verdict
		elements = { "br-dummy" : jump filter-forward-in__br-dummy }
	}
	map filter-forward-out-jumps {
		type ifname : verdict
		elements = { "br-dummy" : jump filter-forward-out__br-dummy }
	}
	map nat-postrouting-in-jumps {
		type ifname : verdict
		elements = { "br-dummy" : jump nat-postrouting-in__br-dummy }
	}
	map nat-postrouting-out-jumps {
		type ifname : verdict
		elements = { "br-dummy" : jump nat-postrouting-out__br-dummy }
	}
	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		oifname vmap @filter-forward-in-jumps
		iifname vmap @filter-forward-out-jumps
	}
	chain nat-OUTPUT {
		type nat hook output priority -100; policy accept;
		ip daddr != 127.0.0.0/8 fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		iifname vmap @nat-postrouting-out-jumps
		oifname vmap @nat-postrouting-in-jumps
	}
	chain nat-PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-prerouting-and-output {
		iifname != "br-dummy" tcp dport 8080 counter dnat to 192.168.0.2:80 comment "DNAT"
	}
	chain raw-PREROUTING {
		type filter hook prerouting priority raw; policy accept;
		ip daddr 192.168.0.2 iifname != "br-dummy" counter drop comment "DROP DIRECT ACCESS"
	}
	chain filter-forward-in__br-dummy {
		ct state established,related counter accept
		iifname "br-dummy" counter drop comment "ICC"
		ip daddr 192.168.0.2 tcp dport 80 counter accept
		counter drop comment "UNPUBLISHED PORT DROP"
	}
	chain filter-forward-out__br-dummy {
		ct state established,related counter accept
		counter accept comment "OUTGOING"
	}
	chain nat-postrouting-in__br-dummy {
	}
	chain nat-postrouting-out__br-dummy {
		oifname != "br-dummy" ip saddr 192.168.0.0/24 counter masquerade comment "MASQUERADE"
	}
}
"""
DUAL_STACK_IP6 = """\
table ip6 docker-bridges {
	map filter-forward-in-jumps {
		type ifname : verdict
		elements = { "br-dummy" : jump filter-forward-in__br-dummy }
	}
	map filter-forward-out-jumps {
		type ifname : verdict
		elements = { "br-dummy" : jump filter-forward-out__br-dummy }
	}
	map nat-postrouting-in-jumps {
		type ifname : verdict
		elements = { "br-dummy" : jump nat-postrouting-in__br-dummy }
	}
	map nat-postrouting-out-jumps {
		type ifname : verdict
		elements = { "br-dummy" : jump nat-postrouting-out__br-dummy }
	}
	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		oifname vmap @filter-forward-in-jumps
		iifname vmap @filter-forward-out-jumps
	}
	chain nat-OUTPUT {
		type nat hook output priority -100; policy accept;
		ip6 daddr != ::1 fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		iifname vmap @nat-postrouting-out-jumps
		oifname vmap @nat-postrouting-in-jumps
	}
	chain nat-PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-prerouting-and-output {
		iifname != "br-dummy" ip6 saddr != fe80::/10 tcp dport 8080 counter dnat to [fd49:efd7:54aa::1]:80 comment "DNAT"
	}
	chain raw-PREROUTING {
		type filter hook prerouting priority raw; policy accept;
		ip6 daddr fd49:efd7:54aa::1 iifname != "br-dummy" counter drop comment "DROP DIRECT ACCESS"
	}
	chain filter-forward-in__br-dummy {
		ct state established,related counter accept
		iifname "br-dummy" counter drop comment "ICC"
		ip6 daddr fd49:efd7:54aa::1 tcp dport 80 counter accept
		counter drop comment "UNPUBLISHED PORT DROP"
	}
	chain filter-forward-out__br-dummy {
		ct state established,related counter accept
		counter accept comment "OUTGOING"
	}
	chain nat-postrouting-in__br-dummy {
	}
	chain nat-postrouting-out__br-dummy {
		oifname != "br-dummy" ip6 saddr fd49:efd7:54aa::/64 counter masquerade comment "MASQUERADE"
	}
}
"""  # noqa: E501 (moby's rules, one a line)


# --- what the tests use ----------------------------------------------------------------------


def nft(ns: str, *args: str, stdin: str = "") -> str:
    done = subprocess.run(["ip", "netns", "exec", ns, "nft", *args], input=stdin,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"nft {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


def load(ns: str, document: str) -> None:
    if document == DUAL:
        nft(ns, "-f", "-", stdin=DUAL_STACK_IP + DUAL_STACK_IP6)
    else:
        nft(ns, "-f", str(CORPUS / f"{document}.nft"))


def listed(ns: str) -> Firewall:
    """The namespace's ruleset as the collector reads it."""
    tables, chains, rules, sets = parse_ruleset(nft(ns, "-j", "list", "ruleset"),
                                                nft(ns, "-a", "list", "ruleset"))
    return Firewall(nft_tables=tables, nft_chains=chains, nft_rules=rules, nft_sets=sets)


def delete_rule(ns: str, family: str, chain: str, comment: str) -> None:
    """Cut the rule of `chain` that carries `comment` out of Docker's table."""
    text = nft(ns, "-a", "list", "chain", family, "docker-bridges", chain)
    handle = re.search(rf'comment "{comment}" # handle (\d+)', text)
    assert handle, f"no {comment} rule in {chain}:\n{text}"
    nft(ns, "delete", "rule", family, "docker-bridges", chain, "handle", handle.group(1))


Case = tuple[tuple[Net, ...], tuple[Ctr, ...]]  # the daemon's networks and containers


def intent(case: Case, host: int, netns: dict[str, int]) -> DockerEngine:
    networks, containers = case
    return DockerEngine(
        url="unix:///var/run/docker.sock", namespace=host, pid=10, name="test",
        version="29.0.0",
        networks=tuple(DockerNetwork(
            id=f"{n.bridge.lower():0<12}0123456789abcdef", name=n.bridge, driver="bridge",
            internal=n.internal, ipv6=bool(n.subnet6),
            ipam=(DockerIpam(n.subnet),) + ((DockerIpam(n.subnet6),) if n.subnet6 else ()),
            options=((BRIDGE_NAME, n.bridge), *n.options)) for n in networks),
        containers=tuple(DockerContainer(
            id=f"{i:064d}", name=f"c-{c.network}", state="running", pid=200 + i,
            netns=netns[c.network], network_mode=c.network,
            ports=(WEB,) if c.bindings else (),
            bound=tuple(replace(WEB, host_ip=address) for address in c.bindings),
            endpoints=(DockerEndpoint(c.network, f"{c.network.lower():0<12}0123456789abcdef",
                                      ip=c.address, prefixlen=int(net.subnet.split("/")[1]),
                                      ipv6=c.address6),))
            for i, (c, net) in enumerate(
                (c, next(n for n in networks if n.bridge == c.network)) for c in containers)))


def snapshot_of(case: Case, firewall: Firewall):
    """The Docker 29 host of a case: its bridges, a container on each, the firewall read
    from our namespace, and the intent."""
    networks, containers = case
    b = SnapshotBuilder()
    host = b.host()
    b.link(host, "eth0", address="10.99.0.1/24")
    b.route(host, "default", gateway="10.99.0.2", dev="eth0")
    b.sysctl(host, "net.ipv4.ip_forward", 1)
    for n in networks:
        gateway = n.subnet.replace(".0/", ".1/")
        b.bridge(host, n.bridge, gateway, oper_state="up" if any(
            c.network == n.bridge for c in containers) else "down")
    netns = {}
    for i, c in enumerate(containers):
        ns = b.container(f"c-{c.network}")
        prefix = next(n.subnet for n in networks if n.bridge == c.network).split("/")[1]
        b.veth(ns, "eth0", host, f"veth{i}", address=f"{c.address}/{prefix}",
               peer_master=c.network)
        netns[c.network] = ns
    b.docker.append(intent(case, host, netns))
    return amend(b.build(), host, firewall=firewall)


def findings(case: Case, firewall: Firewall) -> list:
    snapshot = snapshot_of(case, firewall)
    return [f for rule in RULES for f in run_rule(rule, snapshot) if f.severity.rank >= 1]


def judged(document: str, ns: str) -> list:
    """The findings on the host of one of moby's documents, our namespace's ruleset as read."""
    return findings(INTENTS[document], listed(ns))


def the_one(found: list, rule: str, naming: str):
    assert [f.rule for f in found] == [rule], \
        [(f.rule, f.subject, f.message) for f in found]
    finding = found[0]
    assert naming in finding.message, finding.message
    assert finding.repair.safety is Safety.MANUAL
    assert all(isinstance(step, ManualStep) for step in finding.repair.steps)
    return finding


@pytest.fixture
def ns(netns_factory):
    return netns_factory("d29")


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("document", sorted(INTENTS))
def test_each_of_mobys_rulesets_with_its_intent_is_quiet(ns, document):
    load(ns, document)
    firewall = listed(ns)
    assert any(t.name == "docker-bridges" for t in firewall.nft_tables)
    found = findings(INTENTS[document], firewall)
    assert not found, [(f.rule, f.subject, f.message) for f in found]


def test_the_masquerade_rule_cut_out(ns):
    load(ns, "docker29-usernet-portmap")
    delete_rule(ns, "ip", "nat-postrouting-out__bridge1", "MASQUERADE")
    finding = the_one(judged("docker29-usernet-portmap", ns),
                      "docker-network-rules-missing", "192.0.2.0/24")
    assert finding.subject == "nft ip docker-bridges"


def test_the_masquerade_chains_map_element_cut_out(ns):
    """The rule is there, but no packet reaches it: its bridge's element of the verdict map
    that leads to it is gone."""
    load(ns, "docker29-usernet-portmap")
    nft(ns, "delete", "element", "ip", "docker-bridges", "nat-postrouting-out-jumps",
        '{ "bridge1" }')
    the_one(judged("docker29-usernet-portmap", ns), "docker-network-rules-missing",
            "192.0.2.0/24")


def test_a_routed_network_needs_no_masquerade(ns):
    """Routed: Docker writes no masquerade and no DNAT (and with them cut from the NAT
    twin's table, a NAT network would be named)."""
    load(ns, "docker29-usernet-portmap-routed")
    firewall = listed(ns)
    assert not findings(INTENTS["docker29-usernet-portmap-routed"], firewall)
    nat_intent = findings(INTENTS["docker29-usernet-portmap"], firewall)
    assert sorted(f.rule for f in nat_intent) == ["docker-network-rules-missing",
                                                  "docker-port-unpublished"]


def test_the_dnat_rule_cut_out(ns):
    load(ns, "docker29-usernet-portmap")
    delete_rule(ns, "ip", "nat-prerouting-and-output", "DNAT")
    finding = the_one(judged("docker29-usernet-portmap", ns),
                      "docker-port-unpublished", "192.0.2.2:80")
    assert finding.subject == "tcp/8080"
    assert "docker-bridges" in finding.message


def test_the_loopback_dnat_cut_out(ns):
    load(ns, "docker29-usernet-portmap-lo")
    delete_rule(ns, "ip", "nat-prerouting-and-output", "DNAT")
    the_one(judged("docker29-usernet-portmap-lo", ns), "docker-port-unpublished",
            "127.0.0.1:8080")


def test_the_icc_drop_cut_out(ns):
    load(ns, "docker29-usernet-portmap-noicc")
    delete_rule(ns, "ip", "filter-forward-in__bridge1", "ICC")
    finding = the_one(judged("docker29-usernet-portmap-noicc", ns),
                      "docker-network-rules-missing", "inter-container communication is off")
    assert finding.severity.name == "WARNING"


def test_the_internal_networks_icc_drop_cut_out(ns):
    load(ns, "docker29-usernet-internal")
    delete_rule(ns, "ip", "filter-forward-in__bridgeNoICC", "ICC")
    the_one(judged("docker29-usernet-internal", ns), "docker-network-rules-missing",
            "bridgeNoICC")


def test_the_ipv6_masquerade_cut_out(ns):
    load(ns, DUAL)
    delete_rule(ns, "ip6", "nat-postrouting-out__br-dummy", "MASQUERADE")
    finding = the_one(judged(DUAL, ns), "docker-network-rules-missing",
                      "fd49:efd7:54aa::/64")
    assert finding.subject == "nft ip6 docker-bridges"


def test_the_ipv6_dnat_cut_out(ns):
    load(ns, DUAL)
    delete_rule(ns, "ip6", "nat-prerouting-and-output", "DNAT")
    finding = the_one(judged(DUAL, ns), "docker-port-unpublished",
                      "[fd49:efd7:54aa::1]:80")
    assert "[::]:8080" in finding.message and "ip6 docker-bridges" in finding.message


def test_a_network_with_a_host_address_is_snatted_instead(ns):
    """`com.docker.network.host_ipv4`: moby writes `snat to` that address in the masquerade's
    place (nftabler testdata ...,masq=true,snat=true,gwm=nat,bindlh=false__ip.golden)."""
    nft(ns, "-f", "-", stdin=DUAL_STACK_IP)
    delete_rule(ns, "ip", "nat-postrouting-out__br-dummy", "MASQUERADE")
    nft(ns, "add", "rule", "ip", "docker-bridges", "nat-postrouting-out__br-dummy", "oifname",
        "!=", '"br-dummy"', "ip", "saddr", "192.168.0.0/24", "counter", "snat", "to",
        "192.168.123.0", "comment", '"SNAT"')
    snatted = replace(DUAL_NET, subnet6="", options=DUAL_NET.options + (
        ("com.docker.network.host_ipv4", "192.168.123.0"),))
    case = ((snatted,), (Ctr("br-dummy", "192.168.0.2", ("0.0.0.0",)),))
    assert not findings(case, listed(ns))
    delete_rule(ns, "ip", "nat-postrouting-out__br-dummy", "SNAT")
    the_one(findings(case, listed(ns)), "docker-network-rules-missing", "192.168.0.0/24")


def test_without_the_ip6_table_ipv6_is_not_judged(ns):
    """A daemon with ip6tables off writes no ip6 table: its IPv6 network has neither NAT66
    nor DNAT from Docker, and nothing is said of them."""
    nft(ns, "-f", "-", stdin=DUAL_STACK_IP)
    assert not judged(DUAL, ns)
