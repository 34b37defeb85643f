"""podman-forward-dropped and podman-port-unpublished on a Podman 5 host, where "beyond the
host" is not a default gateway, and in IPv6: a host without a default route is judged by
another route's gateway or a neighbour on its LAN; a dual-stack network (the table a real
Podman 5.8 wrote for it: tests/fixtures/podman5/netavark-dualstack.*) is followed in each
family, each fault named once, with the family named when only one is broken. The fixture
host is test_podman5_forward.py's; tests/integration/test_podman.py proves these on a real
Podman 5.8."""

from dataclasses import replace

from netdiag.collect.nftables import parse_ruleset
from netdiag.model.docker import DockerIpam
from tests.fixtures.rules import run_rule
from tests.unit.rules.test_podman5_forward import (
    HOST_FILTER_JSON,
    HOST_FILTER_NFT,
    with_host_filter,
)
from tests.unit.rules.test_podman5_rules import (
    PODMAN5,
    RECORDED,
    nftables_host,
    with_netavark_table,
)
from tests.unit.rules.test_podman_rules import intent, loud

# The host's own forward chain (netavark#977's) accepting IPv4 alone: IPv6 is dropped.
ACCEPT_IPV4 = """
{"rule": {"family": "inet", "table": "filter", "chain": "forward", "handle": 3, "expr": [
 {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}},
 {"accept": null}]}}"""


def forward_findings(snapshot) -> list[tuple[str, str]]:
    return [(f.subject, f.message) for f in run_rule("podman-forward-dropped", snapshot)]


def test_a_host_without_a_default_route_is_judged_by_a_neighbour_on_its_lan():
    p = nftables_host()
    p.forward_policy = "DROP"  # Docker's
    p.b.remove_route(p.host, "default")
    snapshot = with_netavark_table(p.build(version=PODMAN5), p.host)
    found = run_rule("podman-forward-dropped", snapshot)
    assert [f.subject for f in found] == ["podman1"]
    assert "to 192.168.1.1 (IPv4, beyond the host)" in found[0].evidence[1].text


def test_a_host_without_a_default_route_is_judged_by_another_routes_gateway():
    p = nftables_host()
    p.forward_policy = "DROP"
    p.b.remove_route(p.host, "default")
    p.b.route(p.host, "172.16.0.0/12", gateway="192.168.1.254", dev="eth0")
    found = run_rule("podman-forward-dropped",
                     with_netavark_table(p.build(version=PODMAN5), p.host))
    assert [f.subject for f in found] == ["podman1"]
    assert "to 192.168.1.254 (IPv4" in found[0].evidence[1].text
    p = nftables_host()  # and healthy, quiet
    p.b.remove_route(p.host, "default")
    assert loud(with_netavark_table(p.build(version=PODMAN5), p.host)) == []


def dual_stack():
    """The fixture host with network n1 dual-stack (fd00:89::/64) and an IPv6 uplink."""
    p = nftables_host()
    b = p.b
    b.address(p.host, "eth0", "2001:db8:1::10/64")
    b.route(p.host, "default", gateway="2001:db8:1::1", dev="eth0", family=6)
    b.sysctl(p.host, "net.ipv6.conf.all.forwarding", 1)
    b.address(p.host, "podman1", "fd00:89::1/64")
    b.address(p.web, "eth0", "fd00:89::2/64")
    b.route(p.web, "default", gateway="fd00:89::1", dev="eth0", family=6)
    engine = intent(p.host, p.web, p.vault)
    networks = tuple(replace(n, ipv6=True, ipam=(*n.ipam, DockerIpam("fd00:89::/64",
                                                                     "fd00:89::1")))
                     if n.name == "n1" else n for n in engine.networks)
    containers = tuple(replace(c, endpoints=tuple(replace(e, ipv6="fd00:89::2")
                                                  for e in c.endpoints))
                       if c.name == "web" else c for c in engine.containers)
    return p, {"version": PODMAN5, "networks": networks, "containers": containers}


def with_dualstack_table(snapshot, host: int, without: tuple[str, ...] = ()):
    """The snapshot with netavark's recorded dual-stack table in the host's firewall (less
    the rules whose text holds one of `without`)."""
    tables, chains, rules, sets = parse_ruleset(
        (RECORDED / "netavark-dualstack.json").read_text(),
        (RECORDED / "netavark-dualstack.nft").read_text())
    state = snapshot.namespace(host)
    firewall = replace(state.firewall, nft_tables=tables, nft_chains=chains, nft_sets=sets,
                       nft_rules=tuple(r for r in rules if not any(w in r.text
                                                                   for w in without)))
    return replace(snapshot, namespaces=tuple(
        replace(s, firewall=firewall) if s.ref.id == host else s for s in snapshot.namespaces))


def test_a_healthy_dual_stack_network_is_quiet():
    p, fields = dual_stack()
    assert loud(with_dualstack_table(p.build(**fields), p.host)) == []


def test_an_ipv6_published_port_without_its_dnat_is_named_for_ipv6():
    p, fields = dual_stack()
    snapshot = with_dualstack_table(p.build(**fields), p.host,
                                    without=("dnat ip6 to [fd00:89::2]:80",))
    found = loud(snapshot)
    assert [(f.rule, f.subject) for f in found] == [("podman-port-unpublished", "tcp/8080")]
    assert "takes no IPv6 connection to tcp/8080 to [fd00:89::2]:80" in found[0].message
    # The fixture's conmon holds 0.0.0.0:8080 alone, as Podman 5.8's does: refused.
    assert "the host refuses it" in found[0].message, found[0].message


def test_a_port_without_either_dnat_is_one_finding():
    p, fields = dual_stack()
    snapshot = with_dualstack_table(p.build(**fields), p.host, without=(
        "dnat ip6 to [fd00:89::2]:80", "dnat ip to 10.89.0.2:80"))
    found = loud(snapshot)
    assert [(f.rule, f.subject) for f in found] == [("podman-port-unpublished", "tcp/8080")]
    assert "takes no connection to tcp/8080 to 10.89.0.2:80 nor [fd00:89::2]:80" in \
        found[0].message, found[0].message
    assert len(found[0].evidence) == 3  # the intent, and each family's connection


def test_dockers_ipv4_policy_drop_names_ipv4_alone():
    p, fields = dual_stack()
    p.forward_policy = "DROP"  # iptables' (IPv4) FORWARD only: IPv6 gets through
    found = forward_findings(with_dualstack_table(p.build(**fields), p.host))
    assert len(found) == 1 and found[0][0] == "podman1"
    assert "IPv4 traffic out of podman1 is dropped" in found[0][1], found


def test_a_drop_of_both_families_is_one_finding_with_both_followed():
    p, fields = dual_stack()
    snapshot = with_host_filter(with_dualstack_table(p.build(**fields), p.host), p.host)
    found = run_rule("podman-forward-dropped", snapshot)
    assert [f.subject for f in found] == ["podman1"]
    assert ": traffic out of podman1 is dropped" in found[0].message
    flows = [e.text for e in found[0].evidence if e.text.startswith("flow engine")]
    assert [("(IPv4" in t, "(IPv6" in t) for t in flows] == [(True, False), (False, True)]
    assert "to 2001:db8:1::1 (IPv6" in flows[1]


def test_a_forward_chain_that_accepts_ipv4_alone_names_ipv6_alone():
    p, fields = dual_stack()
    snapshot = with_ipv4_accepted(with_dualstack_table(p.build(**fields), p.host), p.host)
    found = forward_findings(snapshot)
    assert len(found) == 1 and "IPv6 traffic out of podman1 is dropped" in found[0][1], found


def with_ipv4_accepted(snapshot, host: int):
    """The snapshot with the host's own `table inet filter`, whose forward chain accepts IPv4
    alone, beside netavark's table."""
    tables, chains, rules, _ = parse_ruleset(HOST_FILTER_JSON[:-2] + "," + ACCEPT_IPV4 + "]}",
                                             HOST_FILTER_NFT)
    state = snapshot.namespace(host)
    firewall = replace(state.firewall, nft_tables=state.firewall.nft_tables + tables,
                       nft_chains=state.firewall.nft_chains + chains,
                       nft_rules=state.firewall.nft_rules + rules)
    return replace(snapshot, namespaces=tuple(
        replace(s, firewall=firewall) if s.ref.id == host else s for s in snapshot.namespaces))
