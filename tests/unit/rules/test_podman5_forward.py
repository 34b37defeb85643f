"""podman-forward-dropped on a Podman 5 host (netavark on nftables), on the fixture host of
test_podman_rules.py with the `table inet netavark` a real Podman 5.8 wrote (tests/fixtures/
podman5): netavark's forward chain accepts its networks' traffic, and another base chain of the
forward hook drops it all the same — Docker's FORWARD policy DROP (containers/podman#24486) or
the host's own `table inet filter` (containers/netavark#977, whose ruleset is the one below, as
nft 1.0.6 prints it). tests/integration/test_podman.py proves Docker's case with packets on a
real Podman 5.8."""

from dataclasses import replace

from netdiag.collect.nftables import parse_ruleset
from tests.fixtures.rules import run_rule
from tests.unit.rules.test_podman5_rules import PODMAN5, nftables_host, with_netavark_table
from tests.unit.rules.test_podman_rules import loud, podman_host

# netavark#977's forward chain: policy drop, and only the router's own LAN-to-WAN accepted.
HOST_FILTER_JSON = """{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "filter", "handle": 1}},
{"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 1, "type": "filter",
 "hook": "forward", "prio": 0, "policy": "drop"}},
{"rule": {"family": "inet", "table": "filter", "chain": "forward", "handle": 2, "expr": [
 {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lan0"}},
 {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "wan0"}},
 {"accept": null}]}}]}"""
HOST_FILTER_NFT = """table inet filter { # handle 1
\tchain forward { # handle 1
\t\ttype filter hook forward priority filter; policy drop;
\t\tiifname "lan0" oifname "wan0" accept # handle 2
\t}
}"""
# What netavark#977's reporter needed: podman1's traffic out, and its replies in.
ACCEPT_PODMAN1 = """
{"rule": {"family": "inet", "table": "filter", "chain": "forward", "handle": 3, "expr": [
 {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "podman1"}},
 {"accept": null}]}}"""


def with_host_filter(snapshot, host: int, accept_podman1: bool = False):
    """The snapshot with the host's own `table inet filter` beside netavark's table."""
    text = HOST_FILTER_JSON
    if accept_podman1:
        text = text[:-2] + "," + ACCEPT_PODMAN1 + "]}"
    tables, chains, rules, sets = parse_ruleset(text, HOST_FILTER_NFT)
    state = snapshot.namespace(host)
    firewall = replace(state.firewall, nft_tables=state.firewall.nft_tables + tables,
                       nft_chains=state.firewall.nft_chains + chains,
                       nft_rules=state.firewall.nft_rules + rules,
                       nft_sets=state.firewall.nft_sets + sets)
    return replace(snapshot, namespaces=tuple(
        replace(s, firewall=firewall) if s.ref.id == host else s for s in snapshot.namespaces))


def test_dockers_forward_policy_drop_is_named_once():
    p = nftables_host()
    p.forward_policy = "DROP"  # Docker's, in iptables-nft's table ip filter
    snapshot = with_netavark_table(p.build(version=PODMAN5), p.host)
    found = loud(snapshot)
    # One finding, for the network that reaches beyond the host (not the internal one), and
    # forward-policy-drop leaves netavark's bridge to its twin.
    assert [(f.rule, f.subject) for f in found] == [("podman-forward-dropped", "podman1")]
    assert "the filter FORWARD chain's policy is DROP" in found[0].message
    assert "table inet netavark's accept does not override" in found[0].message
    assert run_rule("forward-policy-drop", snapshot) == []


def test_the_hosts_own_forward_policy_drop_is_named():
    p = nftables_host()
    snapshot = with_host_filter(with_netavark_table(p.build(version=PODMAN5), p.host), p.host)
    found = loud(snapshot)
    assert [(f.rule, f.subject) for f in found] == [("podman-forward-dropped", "podman1")]
    assert "nft inet filter forward has policy drop" in found[0].message, found[0].message


def test_a_forward_policy_drop_that_accepts_the_bridge_is_quiet():
    p = nftables_host()
    snapshot = with_host_filter(with_netavark_table(p.build(version=PODMAN5), p.host), p.host,
                                accept_podman1=True)
    assert loud(snapshot) == []


def test_without_netavarks_table_the_drop_is_not_named_twice():
    """The table gone is podman-network-rules-missing's one finding."""
    p = nftables_host()
    p.forward_policy = "DROP"
    assert run_rule("podman-forward-dropped", p.build(version=PODMAN5)) == []


def test_podman_4s_forward_policy_drop_without_netavarks_jump_is_named_once():
    """Podman 4 alike: the forward accept gone and the policy DROP is the drop's one finding
    per network (podman-network-rules-missing warns of a missing accept only while the policy
    still lets the traffic through)."""
    for policy, named in (("DROP", ("podman-forward-dropped", "podman1")),
                          ("ACCEPT", ("podman-network-rules-missing", "filter/FORWARD"))):
        p = podman_host()
        p.forward_policy = policy
        p.filter = [line for line in p.filter if not line.startswith("-A FORWARD")]
        assert [(f.rule, f.subject) for f in loud(p.build())] == [named]
