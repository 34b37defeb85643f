"""Local answers: a DNS query and a sandbox's NameTable → a response, or None to forward.

Behaves like Docker's embedded resolver: A records for known names with TTL 600, shuffled when
there are several; PTR for known addresses; an empty NOERROR answer for other record types of a
known name; anything unknown goes upstream. Responses too big for the client's UDP size are
sent truncated (TC) so the client retries over TCP.
"""

from __future__ import annotations

import ipaddress
import random

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.reversename
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from netdiag.drivers.dns.records import NameTable

LOCAL_TTL = 600
UDP_DEFAULT_SIZE = 512


def _reply(query: dns.message.Message) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    return response


def servfail(query: dns.message.Message) -> dns.message.Message:
    response = _reply(query)
    response.set_rcode(dns.rcode.SERVFAIL)
    return response


def _reverse_address(qname: dns.name.Name) -> str:
    try:
        return str(ipaddress.ip_address(dns.reversename.to_address(qname)))
    except (dns.exception.SyntaxError, ValueError):
        return ""


def local_answer(query: dns.message.Message, table: NameTable,
                 rng: random.Random | None = None) -> dns.message.Message | None:
    """The answer from `table`, or None when the name is not local and must be forwarded."""
    if len(query.question) != 1:
        return None
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN:
        return None
    qname = question.name.to_text(omit_final_dot=True)
    if question.rdtype == dns.rdatatype.PTR:
        name = table.name_of(_reverse_address(question.name))
        if not name:
            return None
        return _with_answer(query, question.name, dns.rdatatype.PTR, [name + "."])
    addresses = list(table.addresses(qname))
    if not addresses:
        return None
    if question.rdtype != dns.rdatatype.A:
        return _with_answer(query, question.name, question.rdtype, [])  # known name, no data
    (rng or random).shuffle(addresses)
    return _with_answer(query, question.name, dns.rdatatype.A, addresses)


def _with_answer(query: dns.message.Message, qname: dns.name.Name, rdtype: int,
                 values: list[str]) -> dns.message.Message:
    response = _reply(query)
    response.flags |= dns.flags.AA
    if values:
        response.answer.append(dns.rrset.from_text_list(qname, LOCAL_TTL, dns.rdataclass.IN,
                                                        rdtype, values))
    return response


def to_udp_wire(response: dns.message.Message, query: dns.message.Message) -> bytes:
    """Wire form for UDP: truncated (TC set, no records) when larger than the client allows."""
    limit = max(query.payload, UDP_DEFAULT_SIZE) if query.edns >= 0 else UDP_DEFAULT_SIZE
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        short = _reply(query)
        short.set_rcode(response.rcode())
        short.flags |= dns.flags.TC
        return short.to_wire()
