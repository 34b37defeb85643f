"""Forwarding names the sandbox does not know to its upstream servers, from inside the sandbox.

Like Docker: at most three upstreams, each asked once with its own timeout (4 s), over UDP and
again over TCP when the UDP answer is truncated; an upstream that fails, refuses or answers
SERVFAIL is skipped; when none answers the client gets SERVFAIL. The sockets are opened inside
the sandbox's namespace, so upstreams are reached through the sandbox's own routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from netdiag import netns
from netdiag.drivers.dns.answer import servfail

MAX_UPSTREAMS = 3
UPSTREAM_TIMEOUT = 4.0
_GIVE_UP = (dns.rcode.SERVFAIL, dns.rcode.REFUSED)


@dataclass(frozen=True, slots=True)
class Upstream:
    address: str
    port: int = 53

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """`1.2.3.4` or `1.2.3.4:5353`."""
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
        return cls(host, int(port)) if port else cls(text)


def forward(query: dns.message.Message, upstreams: Sequence[Upstream], namespace: str = "",
            timeout: float = UPSTREAM_TIMEOUT, tcp: bool = False) -> dns.message.Message:
    """The first good upstream answer, or SERVFAIL. Blocking: run it in a worker thread."""
    with netns.entered(namespace) if namespace else nullcontext():
        for upstream in upstreams[:MAX_UPSTREAMS]:
            response = _ask(query, upstream, timeout, tcp)
            if response is not None and response.rcode() not in _GIVE_UP:
                return response
    return servfail(query)


def _ask(query: dns.message.Message, upstream: Upstream, timeout: float,
         tcp: bool) -> dns.message.Message | None:
    try:
        if not tcp:
            response = dns.query.udp(query, upstream.address, timeout=timeout,
                                     port=upstream.port)
            if not response.flags & dns.flags.TC:
                return response
        return dns.query.tcp(query, upstream.address, timeout=timeout, port=upstream.port)
    except (dns.exception.DNSException, OSError, EOFError):
        return None
