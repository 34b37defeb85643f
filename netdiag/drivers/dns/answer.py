"""Local answers: a DNS query and a sandbox's NameTable → a response, or None to forward.

Behaves like Docker's embedded resolver: A records for known names with TTL 600, shuffled when
there are several, and AAAA records the same way for names with IPv6 addresses (endpoints of
dual-stack networks); PTR for known addresses of both families; an empty NOERROR answer for
other record types of a known name; anything unknown goes upstream. Responses too big for the
client's UDP size are sent truncated (TC) so the client retries over TCP.
"""

from __future__ import annotations

import ipaddress
import random
import socket

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
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
    if not table.knows(qname):
        return None
    if question.rdtype == dns.rdatatype.A:
        addresses = list(table.addresses(qname))
    elif question.rdtype == dns.rdatatype.AAAA:
        addresses = list(table.addresses6(qname))
    else:
        addresses = []  # known name, no data of that type
    (rng or random).shuffle(addresses)
    return _with_answer(query, question.name, question.rdtype, addresses)


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


# --- the fast path -------------------------------------------------------------------------------
# Almost every query a container sends is a plain A question for a local name: one question, no
# EDNS, no compression. Those are answered straight from the wire bytes — the same answer
# local_answer gives, without building dnspython objects (which costs most of a query's time).
# Anything else returns None and takes the general path.

_HEADER = 12
_A_IN = b"\x00\x01\x00\x01"
_ANSWER_HEAD = b"\xc0\x0c" + _A_IN + LOCAL_TTL.to_bytes(4, "big") + b"\x00\x04"


def _plain_a_question(data: bytes) -> tuple[str, int] | None:
    """(lowercased name, end of the question) of a plain A/IN query, else None."""
    if len(data) < _HEADER + 5 or data[2] & 0xF8 or data[4:12] != b"\x00\x01" + b"\x00" * 6:
        return None  # a response, another opcode, or not exactly one question and nothing else
    labels, at = [], _HEADER
    while True:
        size = data[at] if at < len(data) else 0xFF
        if size == 0:
            break
        if size > 63 or at + 1 + size > len(data):
            return None
        labels.append(data[at + 1:at + 1 + size])
        at += 1 + size
    end = at + 5
    if end != len(data) or data[at + 1:end] != _A_IN:
        return None
    try:
        return b".".join(labels).decode("ascii").lower(), end
    except UnicodeDecodeError:
        return None


def fast_a_answer(data: bytes, table: NameTable, rng: random.Random | None = None) -> bytes | None:
    """The wire answer to a plain A query for a local name, or None for the general path."""
    question = _plain_a_question(data)
    if question is None:
        return None
    name, end = question
    addresses = table.forward.get(name, ())  # the name is already a table key
    if not addresses or end + 16 * len(addresses) > UDP_DEFAULT_SIZE:
        return None
    if len(addresses) > 1:
        addresses = list(addresses)
        (rng or random).shuffle(addresses)
    flags = bytes((0x84 | (data[2] & 0x01), 0x80))  # QR, AA, RD as asked; RA
    counts = b"\x00\x01\x00" + bytes((len(addresses),)) + b"\x00\x00\x00\x00"
    records = b"".join(_ANSWER_HEAD + socket.inet_aton(a) for a in addresses)
    return data[:2] + flags + counts + data[_HEADER:end] + records
