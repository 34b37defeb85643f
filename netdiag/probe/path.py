"""`netdiag path --probe`: the same flow sent once for real, to hold the model against the kernel.

A TCP connect (the kernel's own connect, so its NAT applies as for any client), one UDP
datagram, or one ping (with DF at `--size`) from the source namespace, 1 s timeout. Only to
targets inside what netdiag read (netdiag/probe/scope.py) unless the user passes
`--probe-external`.

When nothing listens where the flow ends (the model says no-listener, or its destination's
namespace has no socket on the port), a temporary listener is started there for the probe
and ended afterwards: the probe then shows whether the way up to the socket is open — the
question asked before a service is even started — and UDP, which answers nothing by itself,
is judged by whether the datagram arrived. Without one, a UDP probe is not sent.
"""

from __future__ import annotations

import select
import socket
import subprocess
import sys
from dataclasses import dataclass

from netdiag import netns
from netdiag.flows.packet import DELIVERED, NO_LISTENER, PathResult
from netdiag.model import NamespaceRef, Snapshot
from netdiag.model.index import index
from netdiag.probe import ports
from netdiag.probe.scope import outside_reason

TIMEOUT = 1.0
READY_SECONDS = 5.0

# Binds the port on every address of the family, says "ready", then reports the first
# connection or datagram ("got ADDRESS") — or nothing, when none came within its time.
_LISTENER = r"""
import select, socket, sys
proto, port, wait, family = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET,
                  socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("::" if family == "6" else "0.0.0.0", port))
except OSError as exc:
    print("error", exc.strerror, flush=True)
    sys.exit(1)
if proto == "tcp":
    s.listen(8)
print("ready", flush=True)
if select.select([s], [], [], wait)[0]:
    peer = s.accept()[1] if proto == "tcp" else s.recvfrom(65535)[1]
    print("got", peer[0], flush=True)
"""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    sent: bool
    outcome: str = ""  # ok, refused, timeout, unreachable, fail (ping, udp)
    reason: str = ""  # why it was not sent
    agrees: bool | None = None  # with the model's verdict; None when not sent
    listener: str = ""  # the temporary listener put up for it: "tcp :6379 in db"

    @property
    def delivered(self) -> bool:
        return self.outcome == "ok"


def refusal(snapshot: Snapshot, result: PathResult, external: bool = False) -> str:
    """Why the flow is not to be sent for real; "" when it may be."""
    packet = result.flow.packet
    if packet.proto == "udp" and listening_place(snapshot, result) is None:
        return "udp answers nothing by itself, and something already listens at its end " \
               "(or its end is not known)"
    topo = index(snapshot)
    why = outside_reason(topo, result.flow.source.id, packet.dst)
    dnat = [after.dst for kind, _, after in result.forward.translations if kind == "dnat"]
    if why and dnat and not outside_reason(topo, result.flow.source.id, dnat[-1]):
        why = ""  # a virtual address (a service VIP) that NAT sends inside what was read
    return f"{why} (--probe-external sends it anyway)" if why and not external else ""


def listening_place(snapshot: Snapshot, result: PathResult) -> tuple[NamespaceRef, int] | None:
    """Where the flow ends with nothing listening — (namespace, port after NAT) — for a
    temporary listener; None when something listens or the end is not known."""
    packet = result.flow.packet
    if packet.proto not in ("tcp", "udp"):
        return None
    forward = result.forward
    dnat = [after for kind, _, after in forward.translations if kind == "dnat"]
    dst, port = (dnat[-1].dst, dnat[-1].dport) if dnat else (packet.dst, packet.dport)
    if forward.disposition == NO_LISTENER and forward.drop is not None:
        return forward.drop.namespace, port
    if forward.disposition == DELIVERED:
        return None
    holders = {ns for ns, _ in index(snapshot).owners_of(dst)}
    if len(holders) != 1:
        return None
    state = snapshot.namespace(holders.pop())
    if any(s.protocol == packet.proto and s.port == port for s in state.sockets):
        return None
    return state.ref, port


def probe(snapshot: Snapshot, result: PathResult, external: bool = False) -> ProbeResult:
    packet = result.flow.packet
    source = result.flow.source
    why = refusal(snapshot, result, external)
    if why:
        return ProbeResult(False, reason=why)
    place = listening_place(snapshot, result)
    listener = _listen(place[0], packet.proto, place[1], packet.family) if place else None
    if packet.proto == "udp" and listener is None:
        return ProbeResult(False, reason=f"no listener could be put up on udp {place[1]} in "
                                         f"{place[0].display} to tell whether it arrives")
    try:
        outcome = _send(source, result)
    finally:
        heard = _heard(listener)
    if listener is None:
        return ProbeResult(True, outcome, agrees=(outcome == "ok") == result.delivered)
    if packet.proto == "udp":
        outcome = "ok" if heard else "timeout"
    # With a listener, the model's question is whether the way up to the socket is open:
    # its no-listener there means yes.
    opened = result.delivered or result.disposition == NO_LISTENER
    where = f"{packet.proto} :{place[1]} in {place[0].display}"
    return ProbeResult(True, outcome, agrees=(outcome == "ok") == opened, listener=where)


def _send(source: NamespaceRef, result: PathResult) -> str:
    packet = result.flow.packet
    # a link-local destination with its interface, as the sockets API and ping take it
    dst = f"{packet.dst}%{packet.scope}" if packet.scope else packet.dst
    if packet.proto == "tcp" and not packet.scope:
        with netns.entered(source.path):
            found = ports.connect(source.id, dst, packet.dport, TIMEOUT)
        return "ok" if found.open else found.error
    if packet.proto in ("tcp", "udp"):
        family = socket.AF_INET6 if packet.family == 6 else socket.AF_INET
        kind = socket.SOCK_STREAM if packet.proto == "tcp" else socket.SOCK_DGRAM
        with netns.entered(source.path), socket.socket(family, kind) as sock:
            sock.settimeout(TIMEOUT)
            try:  # getaddrinfo, in the namespace, gives fe80::1%eth0 its scope id
                where = socket.getaddrinfo(dst, packet.dport, family, kind)[0][4]
                if packet.proto == "tcp":
                    sock.connect(where)
                    return "ok"
                sock.sendto(b"netdiag probe", where)
            except OSError as exc:
                return ports.error_text(exc)
        return "sent"
    headers = 48 if packet.family == 6 else 28  # the IP header and ICMP's 8 bytes
    size = ["-M", "do", "-s", str(packet.size - headers)] if packet.size else []
    done = subprocess.run(["nsenter", f"--net={source.path}", "ping", "-n", "-c", "1",
                           "-W", str(int(TIMEOUT)), *size, dst],
                          capture_output=True, check=False)
    return "ok" if done.returncode == 0 else "fail"


def _listen(ref: NamespaceRef, proto: str, port: int, family: int = 4
            ) -> subprocess.Popen | None:
    """A listener of our own in `ref` for a flow of `family`, ready; None when it could not
    bind."""
    try:
        process = subprocess.Popen(
            ["nsenter", f"--net={ref.path}", sys.executable, "-c", _LISTENER, proto, str(port),
             str(TIMEOUT + 1), str(family)], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None
    ready = select.select([process.stdout], [], [], READY_SECONDS)[0]
    if not ready or process.stdout.readline().strip() != "ready":
        _end(process)
        return None
    return process


def _heard(process: subprocess.Popen | None) -> bool:
    """Did the listener get the probe? It is ended, by its pid, either way."""
    if process is None:
        return False
    try:
        out, _ = process.communicate(timeout=TIMEOUT + 2)
    except subprocess.TimeoutExpired:
        _end(process)
        return False
    return out.startswith("got")


def _end(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
