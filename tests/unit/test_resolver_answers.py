"""Unit tests of the embedded resolver's name table and local answers (no sockets, no root)."""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename

from netdiag.drivers.dns.answer import LOCAL_TTL, fast_a_answer, local_answer, servfail, to_udp_wire
from netdiag.drivers.dns.forward import MAX_UPSTREAMS, UPSTREAM_TIMEOUT, Upstream
from netdiag.drivers.dns.records import NamedEndpoint, NamedService, build_table

TABLE = build_table(
    [NamedEndpoint("front", "web", "10.0.1.2", aliases=("www",)),
     NamedEndpoint("front", "db", "10.0.1.3")],
    [NamedService("front", "api", vip="10.0.1.100", tasks=("10.0.1.4", "10.0.1.5")),
     NamedService("front", "rr", tasks=("10.0.1.6", "10.0.1.7", "10.0.1.8"))],
)


def ask(name: str, rdtype: str = "A", rng=None):
    return local_answer(dns.message.make_query(name, rdtype), TABLE, rng)


def a_records(response) -> list[str]:
    return [r.address for rrset in response.answer for r in rrset]


def test_container_names_aliases_and_network_qualified_names():
    for name in ("web", "WWW.", "web.front"):
        response = ask(name)
        assert a_records(response) == ["10.0.1.2"]
        assert response.answer[0].ttl == LOCAL_TTL
        assert response.flags & dns.flags.AA


def test_service_vip_and_tasks():
    assert a_records(ask("api")) == ["10.0.1.100"]
    assert sorted(a_records(ask("tasks.api"))) == ["10.0.1.4", "10.0.1.5"]


def test_round_robin_service_answers_every_task_shuffled():
    orders = {tuple(a_records(ask("rr", rng=random.Random(seed)))) for seed in range(20)}
    assert all(sorted(order) == ["10.0.1.6", "10.0.1.7", "10.0.1.8"] for order in orders)
    assert len(orders) > 1  # shuffled, not fixed


def test_ptr_answers_name_dot_network():
    response = ask(dns.reversename.from_address("10.0.1.3").to_text(), "PTR")
    assert [r.target.to_text() for r in response.answer[0]] == ["db.front."]
    assert ask(dns.reversename.from_address("10.0.1.100").to_text(), "PTR").answer[0][0] \
        .target.to_text() == "api.front."


def test_unknown_names_and_addresses_are_forwarded():
    assert ask("example.com") is None
    assert ask(dns.reversename.from_address("192.0.2.1").to_text(), "PTR") is None


def test_known_name_other_type_is_empty_noerror():
    response = ask("web", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR and response.answer == []


def test_big_udp_answer_is_truncated():
    many = build_table([], [NamedService("n", "big",
                                         tasks=tuple(f"10.1.0.{i}" for i in range(1, 101)))])
    query = dns.message.make_query("big", "A")
    wire = to_udp_wire(local_answer(query, many), query)
    assert dns.message.from_wire(wire).flags & dns.flags.TC
    assert len(wire) <= 512


def test_servfail_and_upstream_limits():
    query = dns.message.make_query("example.com", "A")
    assert servfail(query).rcode() == dns.rcode.SERVFAIL
    assert (MAX_UPSTREAMS, UPSTREAM_TIMEOUT) == (3, 4.0)
    assert Upstream.parse("10.0.0.1:5353") == Upstream("10.0.0.1", 5353)
    assert Upstream.parse("10.0.0.1") == Upstream("10.0.0.1", 53)


def test_fast_path_gives_the_general_answer_for_plain_a_queries():
    for name in ("web", "WWW", "rr", "tasks.api"):
        query = dns.message.make_query(name, "A", use_edns=False)
        fast = dns.message.from_wire(fast_a_answer(query.to_wire(), TABLE, random.Random(1)))
        slow = local_answer(query, TABLE, random.Random(1))
        assert fast == slow  # id, flags, question and records (dnspython compares them all)
        assert fast.answer[0].ttl == LOCAL_TTL


def test_fast_path_leaves_everything_else_to_the_general_path():
    for query in (dns.message.make_query("web", "A", use_edns=0),
                  dns.message.make_query("web", "AAAA", use_edns=False),
                  dns.message.make_query("example.com", "A", use_edns=False)):
        assert fast_a_answer(query.to_wire(), TABLE) is None
    assert fast_a_answer(b"\x00" * 5, TABLE) is None
