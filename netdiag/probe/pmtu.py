"""DF ping sweep: the path MTU from the current thread's namespace to one IPv4 address.

Echo requests with Don't Fragment set are sent through a raw socket (scapy builds and parses
them) in a search between a size that got an answer and one that did not. A router whose next
link is too small answers "fragmentation needed" with that link's MTU, which is tried next; a
silent drop (an ICMP black hole) is handled by halving the gap. The socket uses
IP_PMTUDISC_PROBE so the kernel's cached path MTU never hides the real path: each sweep measures
it afresh. Call `sweep` inside `netns.entered`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

from netdiag import capabilities
from netdiag.model import PathMtuProbe

IP_MTU_DISCOVER = 10
IP_PMTUDISC_PROBE = 3  # set DF, but ignore the cached path MTU
SIOCGIFMTU = 0x8921
MIN_SIZE = 68  # the smallest MTU IPv4 allows
MAX_SIZE = 65535  # the largest IPv4 packet (loopback's MTU is 65536)
ICMP_ECHO_OVERHEAD = 28  # IPv4 header + ICMP echo header

# scapy keeps its routing table in one process-wide object, which must match the namespace a
# sweep runs in; sweeps in two threads at once would read each other's routes.
_SCAPY_ROUTES = threading.Lock()


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: str  # answered, frag-needed, too-long (local), timeout, unreachable
    mtu: int = 0  # the next-hop MTU a router reported
    router: str = ""

    def text(self) -> str:
        if self.kind == "frag-needed":
            return f"frag-needed mtu {self.mtu} from {self.router}"
        if self.kind == "unreachable" and self.router:
            return f"unreachable from {self.router}"
        return self.kind


def sweep(namespace: int, destination: str, timeout: float = 1.0,
          max_size: int = 0) -> PathMtuProbe:
    """Find the largest DF packet that reaches `destination` and is answered."""
    with _SCAPY_ROUTES:
        import scapy.route  # noqa: F401 - importing it is what fills conf.route
        from scapy.config import conf

        conf.route.resync()  # scapy read the routes of the namespace it was imported in
        iface, source, _gateway = conf.route.route(destination)
        with _RawIcmp() as raw:
            return _search(raw, namespace, source, destination, timeout,
                           min(max_size or _link_mtu(iface), MAX_SIZE))


def _search(raw: _RawIcmp, namespace: int, source: str, destination: str, timeout: float,
            first_hop: int) -> PathMtuProbe:
    attempts: list[tuple[int, str]] = []
    limited_by = ""
    failed_min = first_hop + 1  # the smallest size known not to get through

    def send(size: int) -> _Outcome:
        outcome = raw.ping(source, destination, size, timeout, sequence=len(attempts) + 1)
        attempts.append((size, outcome.text()))
        return outcome

    # A small ping first: a destination that never answers needs one timeout, not a sweep.
    if send(MIN_SIZE).kind != "answered":
        return PathMtuProbe(namespace=namespace, destination=destination,
                            attempts=tuple(attempts))
    answered_max = MIN_SIZE
    hint = 0  # the MTU a router last reported
    size = first_hop
    while answered_max + 1 < failed_min:
        outcome = send(size)
        if outcome.kind == "answered":
            answered_max = size
            if size == hint:  # the router's own figure got through: that is the path MTU
                break
        else:
            failed_min = min(failed_min, size)
            if outcome.kind == "frag-needed" and answered_max < outcome.mtu < size:
                limited_by, hint, size = outcome.router, outcome.mtu, outcome.mtu
                continue
        size = (answered_max + failed_min) // 2
    return PathMtuProbe(namespace=namespace, destination=destination, mtu=answered_max,
                        answered=True, limited_by=limited_by, attempts=tuple(attempts))


def _link_mtu(iface: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16si12x", iface.encode()[:15], 0)
        return struct.unpack("16si12x", fcntl.ioctl(sock.fileno(), SIOCGIFMTU, request))[1]


class _RawIcmp:
    """A raw socket pair: IP_HDRINCL for sending, AF_PACKET for reading answers."""

    def __enter__(self) -> _RawIcmp:
        from scapy.supersocket import L3RawSocket

        try:
            self.sock = L3RawSocket()
        except PermissionError:
            raise capabilities.refused("cannot open a raw socket for the DF ping",
                                       "NET_RAW") from None
        self.sock.outs.setsockopt(socket.SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        self.ident = os.getpid() & 0xFFFF
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def ping(self, source: str, destination: str, size: int, timeout: float,
             sequence: int) -> _Outcome:
        from scapy.layers.inet import ICMP, IP

        payload = b"\x00" * max(0, size - ICMP_ECHO_OVERHEAD)
        request = IP(src=source, dst=destination, flags="DF") / ICMP(
            id=self.ident, seq=sequence) / payload
        try:
            self.sock.outs.sendto(bytes(request), (destination, 0))
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                return _Outcome("too-long")
            if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                return _Outcome("unreachable")
            raise
        return self._answer(request, timeout)

    def _answer(self, request, timeout: float) -> _Outcome:
        from scapy.layers.inet import ICMP, IP

        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.sock.ins], [], [], left)
            if not ready:
                break
            reply = self.sock.recv()
            if reply is None or IP not in reply or not reply.answers(request):
                continue
            icmp = reply[ICMP]
            if icmp.type == 0:
                return _Outcome("answered")
            if icmp.type == 3 and icmp.code == 4:
                return _Outcome("frag-needed", mtu=icmp.nexthopmtu, router=reply[IP].src)
            if icmp.type == 3:
                return _Outcome("unreachable", router=reply[IP].src)
        return _Outcome("timeout")
