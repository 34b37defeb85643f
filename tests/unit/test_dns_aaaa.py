"""The embedded resolver's IPv6 answers (no sockets, no root): an endpoint of a dual-stack
network answers AAAA with its IPv6 address, reverse-resolves from it, and A stays IPv4."""

from __future__ import annotations

import dns.message
import dns.reversename

from netdiag.drivers.dns.answer import fast_a_answer, local_answer
from netdiag.drivers.dns.records import NamedEndpoint, build_table

TABLE = build_table([NamedEndpoint("petnet", "db", "172.28.0.2", ("kv",), "fd00:28::2"),
                     NamedEndpoint("petnet", "old", "172.28.0.9")])


def records(name: str, rdtype: str) -> list[str]:
    response = local_answer(dns.message.make_query(name, rdtype), TABLE)
    assert response is not None
    return [r.to_text() for rrset in response.answer for r in rrset]


def test_aaaa_answers_the_ipv6_address_and_a_the_ipv4_one():
    for name in ("db", "kv", "db.petnet"):
        assert records(name, "AAAA") == ["fd00:28::2"]
        assert records(name, "A") == ["172.28.0.2"]


def test_an_ipv4_only_endpoint_answers_aaaa_with_no_data_and_unknown_names_go_upstream():
    assert records("old", "AAAA") == []
    assert local_answer(dns.message.make_query("nowhere", "AAAA"), TABLE) is None


def test_the_ipv6_address_reverse_resolves_and_the_a_fast_path_stays_ipv4():
    assert records(dns.reversename.from_address("fd00:28::2").to_text(), "PTR") == \
        ["db.petnet."]
    wire = fast_a_answer(dns.message.make_query("db", "A").to_wire(), TABLE)
    assert wire is not None and dns.message.from_wire(wire).answer[0][0].to_text() == \
        "172.28.0.2"
