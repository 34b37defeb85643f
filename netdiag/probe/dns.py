"""DNS probe: one query to one nameserver over UDP, from the current thread's namespace.

scapy builds and parses the message; a plain UDP socket carries it, so no routing table is
needed beyond the kernel's. Any answer, even NXDOMAIN or SERVFAIL, proves that the server is
reachable and serving; only silence or an ICMP error counts as unreachable. Call `query`
inside `netns.entered`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import replace

from netdiag.model import DnsProbe
from netdiag.probe.ports import error_text

RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")


def query(namespace: int, server: str, name: str = ".", timeout: float = 2.0,
          port: int = 53) -> DnsProbe:
    from scapy.layers.dns import DNS, DNSQR

    ident = int.from_bytes(os.urandom(2), "big")
    message = bytes(DNS(id=ident, rd=1, qd=DNSQR(qname=name, qtype="NS")))
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    probe = DnsProbe(namespace=namespace, server=server, query=name)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((server, port))  # connected, so ICMP port-unreachable is an error
            sock.send(message)
            answer = DNS(sock.recv(4096))
            while answer.id != ident or not answer.qr:
                answer = DNS(sock.recv(4096))
        except OSError as exc:
            return replace(probe, error=error_text(exc))
    rcode = RCODES[answer.rcode] if answer.rcode < len(RCODES) else str(answer.rcode)
    return replace(probe, answered=True, rcode=rcode)
