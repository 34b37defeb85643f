"""TCP connect probe: does anything accept a connection on an address and port?

A plain kernel connect (not a crafted SYN) is used, so the kernel's own NAT (the published
port's DNAT rule) applies exactly as it does for any client in the namespace. Call `connect`
inside `netns.entered`.
"""

from __future__ import annotations

import errno
import socket

from netdiag.model import PortProbe

_ERRORS = {errno.ECONNREFUSED: "refused", errno.ENETUNREACH: "unreachable",
           errno.EHOSTUNREACH: "unreachable", errno.ETIMEDOUT: "timeout"}


def error_text(exc: OSError) -> str:
    """A socket error as a probe outcome word: refused, unreachable, timeout..."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    return _ERRORS.get(exc.errno, exc.strerror or str(exc))


def connect(namespace: int, address: str, port: int, timeout: float = 1.0,
            purpose: str = "") -> PortProbe:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    error = ""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except OSError as exc:
            error = error_text(exc)
    return PortProbe(namespace=namespace, address=address, port=port, open=not error,
                     error=error, purpose=purpose)
