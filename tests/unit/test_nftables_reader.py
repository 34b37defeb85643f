"""The nftables reader on output recorded on this machine (nft 1.0.6; no root needed).

Recorded in a namespace with iptables-nft rules (Docker-style chains, which nft shows with
opaque xt matches), and a native `inet` table holding a set and rules with comments — one of
them a comment that looks like a handle.
"""

import json
import sys

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
    assert tables == (NftTable("ip", "nat", 1, "nft"), NftTable("ip", "filter", 2, "nft"),
                      NftTable("inet", "ndtest", 3, "nft"))
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


def test_a_table_is_iptables_nfts_when_it_holds_nothing_native():
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
    # ip6 filter holds only what iptables-nft writes (`-p tcp --dport 22 -j ACCEPT` needs no
    # xt match): iptables-nft-save reads it whole, as it does a candidate without rules
    assert nftables.managed_by_iptables_nft(messages, candidates) == {("ip", "filter"),
                                                                       ("ip6", "filter")}


def test_tables_are_marked_by_origin_and_maps_are_kept():
    """A native `table ip nat` (Debian's example) is nft's; a skipped table iptables-nft's;
    maps (verdict maps too) are kept beside sets with their data type."""
    as_json = json.dumps({"nftables": [
        {"table": {"family": "ip", "name": "nat", "handle": 1}},
        {"table": {"family": "ip", "name": "filter", "handle": 2}},
        {"map": {"family": "ip", "name": "jumps", "table": "nat", "type": "ifname",
                 "handle": 3, "map": "verdict",
                 "elem": [["br0", {"jump": {"target": "c1"}}], ["eth1", {"drop": None}]]}},
        {"map": {"family": "ip", "name": "ports", "table": "nat", "type": "inet_service",
                 "handle": 4, "map": ["ipv4_addr", "inet_service"],
                 "elem": [[8080, {"concat": ["10.0.0.2", 80]}]]}}]})
    tables, _, _, sets = nftables.parse_ruleset(as_json, "", skip={("ip", "filter")})
    assert [t.origin for t in tables] == ["nft", "iptables-nft"]
    assert [(s.name, s.type, s.map) for s in sets] == [
        ("jumps", "ifname", "verdict"), ("ports", "inet_service", "ipv4_addr . inet_service")]
    assert json.loads(sets[0].elements)[1] == ["eth1", {"drop": None}]


def test_iptables_nft_saves_reading_of_a_native_table_is_dropped():
    from netdiag.model import Firewall, IptablesChain, IptablesRule

    firewall = Firewall(
        iptables_chains=(IptablesChain("nft", 4, "filter", "INPUT", "ACCEPT"),
                         IptablesChain("nft", 4, "nat", "PREROUTING", "ACCEPT"),
                         IptablesChain("legacy", 4, "nat", "PREROUTING", "ACCEPT")),
        iptables_rules=(IptablesRule("nft", 4, "filter", "INPUT", 1, (), "DROP"),))
    kept = nftables.without_native(firewall, {("ip", "filter")})
    assert [(c.table, c.backend) for c in kept.iptables_chains] == [("nat", "nft"),
                                                                     ("nat", "legacy")]
    assert kept.iptables_rules == ()


def test_what_the_listing_writes_to_fds_1_and_2_never_reaches_the_terminal(capfd):
    """libxtables writes "XT target MASQUERADE not found" straight to fd 2 from C, and
    printf()s to fd 1: the listing's own thread has fds of its own for both."""
    libc = nftables._libc

    def listing() -> str:
        libc.write(2, b"XT target MASQUERADE not found\n", 31)
        libc.printf(b"#")  # buffered by C stdio, flushed before the thread ends
        return "listed"

    assert nftables.without_terminal(listing) == "listed"
    libc.fflush(None)
    print("after", file=sys.stderr)  # the calling thread's fd 2 is still the terminal
    out, err = capfd.readouterr()
    assert (out, err) == ("", "after\n")


def test_an_error_of_the_listing_reaches_the_caller():
    def listing():
        raise CollectError("nft list ruleset: failed")

    with pytest.raises(CollectError, match="failed"):
        nftables.without_terminal(listing)


def test_where_the_thread_cannot_have_its_own_file_table_the_program_lists(monkeypatch):
    """Docker's default seccomp profile refuses unshare without CAP_SYS_ADMIN: then the nft
    program lists the ruleset (its standard error is caught by the helper runner)."""
    class Refusing:
        def unshare(self, flags):
            return -1

        def __getattr__(self, name):
            return getattr(nftables.ctypes.CDLL(None), name)

    monkeypatch.setattr(nftables, "_libc", Refusing())
    with pytest.raises(nftables.FileTableRefused):
        nftables.without_terminal(lambda: pytest.fail("called without a file table"))

    class Context:
        def __init__(self):
            self.ran = []

        def helper(self, argv):
            self.ran.append(argv)
            return "{}"

    monkeypatch.setattr(nftables, "_libnftables", lambda: object())
    ctx = Context()
    assert nftables._list_ruleset(ctx) == ("{}", "{}")
    assert ctx.ran == [["nft", "-j", "list", "ruleset"], ["nft", "-a", "list", "ruleset"]]
