"""The nftables reader on output recorded on this machine (nft 1.0.6; no root needed).

Recorded in a namespace with iptables-nft rules (Docker-style chains, which nft shows with
opaque xt matches), and a native `inet` table holding a set and rules with comments — one of
them a comment that looks like a handle.
"""

import json

import pytest

from netdiag.collect import nftables
from netdiag.errors import CollectError
from netdiag.model import NftChain, NftSet, NftTable

RECORDED_TEXT = """\
table ip nat { # handle 1
\tchain DOCKER { # handle 1
\t}

\tchain PREROUTING { # handle 2
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tfib daddr type local counter packets 0 bytes 0 jump DOCKER # handle 3
\t}
}
table ip filter { # handle 2
\tchain INPUT { # handle 1
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 22  counter packets 0 bytes 0 accept # handle 2
\t}

\tchain DOCKER-ISOLATION-STAGE-1 { # handle 3
\t\tcounter packets 0 bytes 0 return # handle 6
\t}

\tchain we:ird$name { # handle 4
\t\tcounter packets 0 bytes 0 return # handle 5
\t}
}
table inet ndtest { # handle 3
\tset blocked { # handle 3
\t\ttype ipv4_addr
\t\telements = { 10.0.0.1, 10.0.0.2 }
\t}

\tchain input { # handle 1
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 80 counter packets 0 bytes 0 accept comment "web" # handle 2
\t\ttcp dport { 22, 80 } accept comment "# handle 99 is not a handle" # handle 5
\t}
}
"""

RECORDED_JSON = """{"nftables": [
 {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
 {"table": {"family": "ip", "name": "nat", "handle": 1}},
 {"chain": {"family": "ip", "table": "nat", "name": "DOCKER", "handle": 1}},
 {"chain": {"family": "ip", "table": "nat", "name": "PREROUTING", "handle": 2, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
 {"rule": {"family": "ip", "table": "nat", "chain": "PREROUTING", "handle": 3, "expr": [{"xt": {"type": "match", "name": "addrtype"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "DOCKER"}}]}},
 {"table": {"family": "ip", "name": "filter", "handle": 2}},
 {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
 {"chain": {"family": "ip", "table": "filter", "name": "DOCKER-ISOLATION-STAGE-1", "handle": 3}},
 {"chain": {"family": "ip", "table": "filter", "name": "we:ird$name", "handle": 4}},
 {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"xt": {"type": "match", "name": "comment"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
 {"rule": {"family": "ip", "table": "filter", "chain": "DOCKER-ISOLATION-STAGE-1", "handle": 6, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"return": null}]}},
 {"rule": {"family": "ip", "table": "filter", "chain": "we:ird$name", "handle": 5, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"return": null}]}},
 {"table": {"family": "inet", "name": "ndtest", "handle": 3}},
 {"set": {"family": "inet", "name": "blocked", "table": "ndtest", "type": "ipv4_addr", "handle": 3, "elem": ["10.0.0.1", "10.0.0.2"]}},
 {"chain": {"family": "inet", "table": "ndtest", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
 {"rule": {"family": "inet", "table": "ndtest", "chain": "input", "handle": 2, "comment": "web", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
 {"rule": {"family": "inet", "table": "ndtest", "chain": "input", "handle": 5, "comment": "# handle 99 is not a handle", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, 80]}}}, {"accept": null}]}}
]}"""


def parsed():
    return nftables.parse_ruleset(RECORDED_JSON, RECORDED_TEXT)


def test_tables_and_chains():
    tables, chains, _, _ = parsed()
    assert tables == (NftTable("ip", "nat", 1), NftTable("ip", "filter", 2),
                      NftTable("inet", "ndtest", 3))
    assert chains[1] == NftChain(family="ip", table="nat", name="PREROUTING", handle=2,
                                 type="nat", hook="prerouting", priority=-100, policy="accept")
    assert chains[0].type == "" and chains[0].hook == ""  # a regular chain
    assert [c.name for c in chains if c.table == "filter"] == [
        "INPUT", "DOCKER-ISOLATION-STAGE-1", "we:ird$name"]


def test_every_rule_is_joined_with_its_text_by_handle():
    _, _, rules, _ = parsed()
    texts = {(r.table, r.chain, r.handle): r.text for r in rules}
    assert texts[("nat", "PREROUTING", 3)] == \
        "fib daddr type local counter packets 0 bytes 0 jump DOCKER"
    assert texts[("filter", "we:ird$name", 5)] == "counter packets 0 bytes 0 return"
    assert texts[("ndtest", "input", 5)] == \
        'tcp dport { 22, 80 } accept comment "# handle 99 is not a handle"'
    assert all(r.text for r in rules)


def test_rule_expressions_and_comments():
    _, _, rules, _ = parsed()
    assert json.loads(rules[0].expr)[0] == {"xt": {"type": "match", "name": "addrtype"}}
    (web,) = [r for r in rules if r.comment == "web"]
    assert json.loads(web.expr)[-1] == {"accept": None}


def test_named_sets_are_kept_with_their_elements():
    *_, sets = parsed()
    assert sets == (NftSet(family="inet", table="ndtest", name="blocked", type="ipv4_addr",
                           elements='["10.0.0.1","10.0.0.2"]'),)


def test_set_lines_are_not_rules():
    # the set's header carries "# handle 3" too, but it is not inside a chain
    texts = nftables.rule_texts(RECORDED_TEXT)
    assert len(texts) == len(parsed()[2])
    assert not any(key.chain == "" for key in texts)


def test_an_empty_listing_gives_nothing():
    assert nftables.parse_ruleset("", "") == ((), (), (), ())


def test_broken_json_is_one_clear_error():
    with pytest.raises(CollectError, match="cannot read nft's JSON ruleset"):
        nftables.parse_ruleset('{"nftables": [', "")


# --- which tables iptables-nft manages (from NFT_MSG_NEWRULE bodies) ---------------------------


def _attr(kind: int, payload: bytes) -> bytes:
    import struct

    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def rule_message(family: int, table: str, *expressions: str) -> bytes:
    """An NFT_MSG_NEWRULE body as the kernel sends it (nfgenmsg, then attributes)."""
    nested = 0x8000
    listed = b"".join(_attr(1 | nested, _attr(1, name.encode() + b"\0"))
                      for name in expressions)
    return (bytes((family, 0, 0, 0)) + _attr(1, table.encode() + b"\0")
            + _attr(2, b"INPUT\0") + _attr(4 | nested, listed))


def test_expression_names_of_a_rule():
    body = rule_message(2, "filter", "payload", "cmp", "match", "counter", "immediate")
    attrs = nftables.netlink.attributes(body, 4)
    assert nftables.expression_names(attrs[4]) == {"payload", "cmp", "match", "counter",
                                                   "immediate"}


def test_a_table_is_iptables_nfts_with_xt_and_nothing_native():
    candidates = {("ip", "filter"), ("ip", "nat"), ("ip6", "filter"), ("ip", "mangle")}
    messages = [
        rule_message(2, "filter", "match", "counter", "immediate"),  # -m conntrack ...
        rule_message(2, "filter", "payload", "cmp", "counter", "immediate"),
        rule_message(2, "nat", "meta", "cmp", "counter", "target"),  # -j MASQUERADE
        rule_message(2, "nat", "payload", "lookup", "immediate"),  # native: ip saddr @set
        rule_message(10, "filter", "payload", "cmp", "counter", "immediate"),  # no xt at all
        rule_message(1, "fw", "match", "counter"),  # not a candidate (inet)
        rule_message(2, "mangle", "ct", "cmp", "target"),  # ct state: nft's, not iptables'
    ]
    assert nftables.managed_by_iptables_nft(messages, candidates) == {("ip", "filter")}
