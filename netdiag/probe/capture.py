"""`netdiag capture`: watch the flow on every interface of its hops at once, and say where the
packet was last seen beside the model's verdict.

The flow engine (netdiag/flows/) gives the hops; each hop's interfaces (the one the packet
comes in on, the one it leaves by, and those of the reply) become capture points. On each, an
AF_PACKET socket of our own is opened inside the hop's namespace and bound to the interface —
in this process, so there is no capture program to start, and nothing outlives the command:
the sockets close with it, also on Ctrl-C. One reader thread collects, with the kernel's
timestamps, only the frames of the flow: its addresses and ports before and after every NAT
translation the model applies, the forward packet and its reply; a VXLAN frame is looked
into, so the overlay's underlay hops show the flow they carry.

The flow is then sent once as `path --probe` sends it (netdiag/probe/path.py: its refusals,
its temporary listener), or, with `wait`, the user's own traffic is awaited. Bounded by a
time and a number of packets.

Where the model expects the packet to be last seen: on the last point of the forward hops
when it is delivered; when it is dropped, at the last point before the drop — a hop's way
out counts only when the drop is in another namespace (the frame left, and the other end
refused it: an MTU too small at the veth's peer), since a drop in the hop itself (firewall,
route, an unanswered ARP) happens before its frame reaches the interface's tap.

`write_pcapng` writes what was seen as pcapng, one interface per capture point named
`namespace:ifname`, each packet marked in or out.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from netdiag import netns, terminal
from netdiag.collect import conntrack
from netdiag.collect.conntrack import Tracked
from netdiag.errors import NetdiagError
from netdiag.flows.packet import PathResult
from netdiag.model import NamespaceRef
from netdiag.terminal import PLAIN, Look

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
SO_TIMESTAMPNS = 35  # include/uapi/asm-generic/socket.h; also its control message type
PACKET_OUTGOING = 4
# Devices with an Ethernet header (Ethernet, veth, bridges, VXLAN, macvlan; loopback); the
# others (tun, wireguard, ipip, gre) hand AF_PACKET the IP packet itself.
ETHERNET_HARDWARE = frozenset({1, 772})  # ARPHRD_ETHER, ARPHRD_LOOPBACK
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
VXLAN_PORTS = frozenset({4789, 8472})  # IANA's and the Linux default
RECEIVE_BUFFER = 4 << 20  # so that a busy interface does not crowd out the flow's frames
LINGER_SECONDS = 0.5  # after the probe, for its last frames (the reply) to be read
CANCEL_POLL_SECONDS = 0.1
SNAPLEN = 65535


@dataclass(frozen=True, slots=True)
class Point:
    """An interface of a hop, where frames are captured."""

    namespace: NamespaceRef
    ifname: str
    hop: int  # its place in the forward hops (1-based); 0 for an interface only the reply uses
    direction: str  # "in", "out" (the forward packet's), "reply"

    @property
    def name(self) -> str:
        return f"{self.namespace.display}:{self.ifname}"

    @property
    def key(self) -> tuple[int, str]:
        return self.namespace.id, self.ifname


@dataclass(frozen=True, slots=True)
class Frame:
    point: int  # index into the capture's points
    timestamp_ns: int
    outgoing: bool
    direction: str  # "forward" or "reply"
    data: bytes


@dataclass(frozen=True, slots=True)
class Seen:
    """The innermost IP packet of a frame: what it is matched on."""

    src: str
    dst: str
    proto: str
    sport: int
    dport: int
    icmp_type: int = -1
    ident: int = 0  # an ICMP echo's identifier: what conntrack tells pings apart by


@dataclass(frozen=True, slots=True)
class CaptureResult:
    points: tuple[Point, ...]
    frames: tuple[Frame, ...]
    linktypes: tuple[int, ...]  # per point
    unopened: tuple[tuple[str, str], ...]  # (point name, why it could not be watched)
    expected: int | None  # the point the model expects the packet last at; None: not sent
    last_seen: int | None  # the forward point where it was last seen; None: nowhere
    sent: object = None  # the probe's ProbeResult, when it was sent
    waited: float = 0.0
    truncated: bool = False  # the packet bound was reached
    counts: tuple[tuple[int, int], ...] = field(default=())  # per point: (forward, reply)

    @property
    def agrees(self) -> bool:
        return self.last_seen == self.expected


# --- where to look -------------------------------------------------------------------------


def points(result: PathResult) -> tuple[Point, ...]:
    """The forward hops' interfaces in the packet's order, then those only the reply uses."""
    found: list[Point] = []
    keys: set[tuple[int, str]] = set()
    for number, hop in enumerate(result.forward.hops, 1):
        for ifname, direction in ((hop.into, "in"), (hop.out, "out")):
            point = Point(hop.namespace, ifname, number, direction)
            if ifname and point.key not in keys:
                keys.add(point.key)
                found.append(point)
    for hop in result.reply.hops if result.reply else ():
        for ifname in (hop.into, hop.out):
            point = Point(hop.namespace, ifname, 0, "reply")
            if ifname and point.key not in keys:
                keys.add(point.key)
                found.append(point)
    return tuple(found)


def expected_last(result: PathResult, found: tuple[Point, ...]) -> int | None:
    """The index of the point the model expects the forward packet to be seen at last; None
    when it expects it on none (dropped in the namespace it starts in)."""
    forward = [i for i, point in enumerate(found) if point.hop]
    if result.forward.drop is None:
        return forward[-1] if forward else None
    drop = result.forward.drop.namespace.id
    hops = result.forward.hops
    last_hop = len(hops)
    reached = [i for i in forward
               if found[i].hop < last_hop or found[i].direction == "in"
               or hops[-1].namespace.id != drop]
    return reached[-1] if reached else None


# --- what belongs to the flow --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Matcher:
    """The flow's packets as the model knows them, through every NAT translation; the
    source port is left out (the kernel's connect picks its own)."""

    proto: str
    forward: frozenset[tuple[str, str, int]]  # (src, dst, dport)
    reply: frozenset[tuple[str, int, str]]  # (src, sport, dst)

    @classmethod
    def of(cls, result: PathResult) -> Matcher:
        packet = result.flow.packet
        seen = [packet, *(p for _, before, after in result.forward.translations
                          for p in (before, after))]
        forward = frozenset((_norm(p.src), _norm(p.dst), p.dport) for p in seen)
        reply = frozenset((d, port, s) for s, d, port in forward)
        if result.reply is not None:
            replies = [p for _, before, after in result.reply.translations
                       for p in (before, after)]
            reply |= {(_norm(p.src), p.sport, _norm(p.dst)) for p in replies}
        return cls(packet.proto, forward, reply)

    def direction(self, seen: Seen) -> str:
        if seen.proto != self.proto:
            return ""
        if self.proto == "icmp" and seen.icmp_type not in (8, 128, 0, 129):
            return ""
        if (seen.src, seen.dst, seen.dport) in self.forward and seen.icmp_type not in (0, 129):
            return "forward"
        if (seen.src, seen.sport, seen.dst) in self.reply and seen.icmp_type not in (8, 128):
            return "reply"
        return ""


def _norm(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.split("%")[0]))
    except ValueError:
        return address


_PROTOS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}


def parse(frame: bytes, linktype: int, depth: int = 0) -> Seen | None:
    """The innermost IPv4/IPv6 packet of a frame (VXLAN looked into); None for the rest."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        ethertype, offset = struct.unpack_from("!H", frame, 12)[0], 14
        while ethertype in (ETH_P_8021Q, ETH_P_8021AD) and len(frame) >= offset + 4:
            ethertype, offset = struct.unpack_from("!H", frame, offset + 2)[0], offset + 4
        if ethertype not in (ETH_P_IP, ETH_P_IPV6):
            return None
        frame = frame[offset:]
    if not frame:
        return None
    version = frame[0] >> 4
    if version == 4 and len(frame) >= 20:
        header = (frame[0] & 0x0F) * 4
        number = frame[9]
        src, dst = socket.inet_ntop(socket.AF_INET, frame[12:16]), \
            socket.inet_ntop(socket.AF_INET, frame[16:20])
    elif version == 6 and len(frame) >= 40:
        header, number = 40, frame[6]  # extension headers: not followed
        src, dst = socket.inet_ntop(socket.AF_INET6, frame[8:24]), \
            socket.inet_ntop(socket.AF_INET6, frame[24:40])
    else:
        return None
    proto = _PROTOS.get(number)
    body = frame[header:]
    if proto is None or len(body) < 4:
        return None
    if proto == "icmp":
        echo = body[0] in (0, 8, 128, 129) and len(body) >= 6
        return Seen(src, dst, proto, 0, 0, body[0],
                    struct.unpack_from("!H", body, 4)[0] if echo else 0)
    sport, dport = struct.unpack_from("!HH", body)
    if proto == "udp" and dport in VXLAN_PORTS and depth == 0 and len(body) > 16:
        inner = parse(body[16:], LINKTYPE_ETHERNET, depth + 1)
        if inner is not None:
            return inner
    return Seen(src, dst, proto, sport, dport)


# --- watching -------------------------------------------------------------------------------


def _open(point: Point) -> socket.socket:
    with netns.entered(point.namespace.path):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.bind((point.ifname, ETH_P_ALL))
        except OSError:
            sock.close()
            raise
    sock.setblocking(False)
    return sock


class _Reader(threading.Thread):
    """Reads every socket until told to stop or `limit` frames of the flow were kept."""

    def __init__(self, sockets: dict[socket.socket, int], matcher: Matcher, limit: int):
        super().__init__(name="netdiag-capture", daemon=True)
        self.sockets, self.matcher, self.limit = sockets, matcher, limit
        self.frames: list[Frame] = []
        self.linktypes: dict[int, int] = {}
        self.gone: set[socket.socket] = set()  # their interface went away while watched
        self.stop = threading.Event()
        self.full = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and not self.full.is_set():
            watched = [sock for sock in self.sockets if sock not in self.gone]
            if not watched:
                return
            for sock in select.select(watched, [], [], 0.1)[0]:
                self._drain(sock, self.limit)
        if self.full.is_set():
            # The bound was reached while draining one interface: the same packets, already
            # queued on the others, are read too (up to as many again), or the hops read
            # later would look as if the packet never got there.
            for sock in self.sockets:
                if sock not in self.gone:
                    self._drain(sock, 2 * self.limit)

    def _drain(self, sock: socket.socket, limit: int) -> None:
        point = self.sockets[sock]
        while len(self.frames) < limit:
            try:
                data, ancillary, _flags, address = sock.recvmsg(SNAPLEN, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.gone.add(sock)
                return
            linktype = LINKTYPE_ETHERNET if address[3] in ETHERNET_HARDWARE else LINKTYPE_RAW
            seen = parse(data, linktype)
            direction = self.matcher.direction(seen) if seen else ""
            if not direction:
                continue
            self.linktypes.setdefault(point, linktype)
            self.frames.append(Frame(point, _stamp(ancillary), address[2] == PACKET_OUTGOING,
                                     direction, data))
        self.full.set()


def _discard(sock: socket.socket) -> None:
    """Drop what a socket queued while the later points' sockets were being opened: a
    packet it saw then could not be seen further on, and would count against the bound
    (traffic already flowing, as with --wait, filled it at the first point alone)."""
    while True:
        try:
            sock.recv(SNAPLEN)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # gone: the reader finds out


def _stamp(ancillary) -> int:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack_from("=qq", data)
            return seconds * 1_000_000_000 + nanoseconds
    return time.time_ns()


def _wait(reader: _Reader, seconds: float, cancelled: Callable[[], bool]) -> None:
    """Until the packet bound is reached, `seconds` have passed, or the caller gives up (the
    TUI's user left the view): checked every CANCEL_POLL_SECONDS."""
    deadline = time.monotonic() + seconds
    while not cancelled():
        left = deadline - time.monotonic()
        if left <= 0 or reader.full.wait(min(left, CANCEL_POLL_SECONDS)):
            return


def capture(result: PathResult, send: Callable[[], object] | None, wait: float,
            limit: int, on_ready: Callable[[int], None] | None = None,
            cancelled: Callable[[], bool] = lambda: False) -> CaptureResult:
    """Watch every point of the flow while `send()` sends it (then LINGER_SECONDS more), or
    for `wait` seconds when `send` is None; at most `limit` frames of the flow are kept.
    `cancelled()` true ends the watch early (the sockets close as at the end)."""
    found = points(result)
    sockets: dict[socket.socket, int] = {}
    unopened: list[tuple[str, str]] = []
    reader = _Reader(sockets, Matcher.of(result), limit)
    started = time.monotonic()
    sent = None
    try:
        for number, point in enumerate(found):
            try:
                sockets[_open(point)] = number
            except OSError as exc:
                unopened.append((point.name, exc.strerror or str(exc)))
            except NetdiagError as exc:  # its namespace is gone
                unopened.append((point.name, str(exc)))
        if not sockets:
            return CaptureResult(found, (), (LINKTYPE_ETHERNET,) * len(found), tuple(unopened),
                                 None, None)
        for sock in sockets:
            _discard(sock)
        reader.start()
        if on_ready:
            on_ready(len(sockets))
        if send is not None:
            sent = send()
            _wait(reader, LINGER_SECONDS, cancelled)
        else:
            _wait(reader, wait, cancelled)
    finally:
        reader.stop.set()
        if reader.is_alive():
            reader.join()
        for sock in sockets:
            sock.close()
    frames = tuple(sorted(reader.frames, key=lambda f: f.timestamp_ns))
    counts = tuple((sum(1 for f in frames if f.point == i and f.direction == "forward"),
                    sum(1 for f in frames if f.point == i and f.direction == "reply"))
                   for i in range(len(found)))
    forward_seen = [i for i, point in enumerate(found) if point.hop and counts[i][0]]
    not_sent = send is not None and sent is not None and not getattr(sent, "sent", True)
    return CaptureResult(
        found, frames, tuple(reader.linktypes.get(i, LINKTYPE_ETHERNET)
                             for i in range(len(found))),
        tuple(unopened), None if not_sent else expected_last(result, found),
        forward_seen[-1] if forward_seen else None, sent, time.monotonic() - started,
        reader.full.is_set(), counts)


# --- for a person ---------------------------------------------------------------------------

# A point's mark (with `marks`): (last seen there, the model expects it last there) → text.
MARKS = {(True, True): "◀ last seen, as the model expects", (True, False): "◀ last seen",
         (False, True): "◀ the model expects it last"}


def point_name(found: CaptureResult, index: int | None) -> str | None:
    return None if index is None else found.points[index].name


def judged(found: CaptureResult) -> bool:
    """Whether the capture can be held against the model: the flow went out (or was awaited)
    and every interface was watched."""
    return bool(found.points) and (found.sent is None or found.sent.sent) and \
        not found.unopened


def summary(result: PathResult, found: CaptureResult, look: Look = PLAIN,
            marks: bool = False) -> list[str]:
    """What `netdiag capture` and the TUI show: each point with the flow's frames seen there
    (with `marks`, beside it whether the packet was last seen there and whether the model
    expects it last there), how the flow was sent, where it was last seen and the model's
    verdict, and whether the two agree."""
    packet = result.flow.packet
    lines = [f"capture from {result.flow.source.display}: {packet.text}"
             + (f", {packet.size} bytes DF" if packet.size else "")]
    counts = found.counts or [(0, 0)] * len(found.points)
    seen = [(p.hop or "", p.name, p.direction, f, r,
             *([MARKS.get((i == found.last_seen, i == found.expected), "")] if marks else []))
            for i, (p, (f, r)) in enumerate(zip(found.points, counts, strict=True))]
    lines.append(terminal.table(("HOP", "INTERFACE", "DIR", "FORWARD", "REPLY",
                                 *([""] if marks else [])), seen, look).rstrip("\n"))
    for name, why in found.unopened:
        lines.append(f"not watched: {name}: {why}")
    if not found.points:
        lines.append("nothing to watch: the flow crosses no interface")
    sent = found.sent
    if sent is not None and not sent.sent:
        lines.append(f"probe: not sent: {sent.reason}")
    elif sent is not None:
        lines.append(f"probe: {sent.outcome}" + (f" (a temporary listener: {sent.listener})"
                                                 if sent.listener else ""))
    else:
        lines.append(f"waited {found.waited:.1f} s for the flow's own traffic")
    lines.append(f"last seen: {point_name(found, found.last_seen) or 'nowhere'}")
    drop = result.forward.drop
    model = "delivered" if drop is None else \
        f"{result.forward.disposition.upper()} in {drop.namespace.display} at {drop.where}"
    expected = point_name(found, found.expected)
    lines.append(f"model: {model} — expects it last at {expected or 'no interface'}")
    if judged(found):
        lines.append(look.paint("=> the capture agrees with the model", "ok") if found.agrees
                     else look.paint("=> the capture DISAGREES with the model", "error"))
    return lines


# --- pcapng ---------------------------------------------------------------------------------
# The format: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html — a section
# header block, an interface description block per capture point (its name and link type,
# nanosecond timestamps), an enhanced packet block per frame (with its direction).


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("=II", kind, length) + body + struct.pack("=I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("=HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def pcapng(result: CaptureResult) -> bytes:
    section = _block(0x0A0D0D0A, struct.pack("=IHHq", 0x1A2B3C4D, 1, 0, -1)
                     + _option(4, b"netdiag capture") + _option(0, b""))
    interfaces = b"".join(
        _block(1, struct.pack("=HHI", linktype, 0, SNAPLEN)
               + _option(2, point.name.encode()) + _option(9, bytes([9])) + _option(0, b""))
        for point, linktype in zip(result.points, result.linktypes, strict=True))
    packets = b"".join(
        _block(6, struct.pack("=IIIII", f.point, f.timestamp_ns >> 32,
                              f.timestamp_ns & 0xFFFFFFFF, len(f.data), len(f.data))
               + f.data + b"\0" * (-len(f.data) % 4)
               + _option(2, struct.pack("=I", 2 if f.outgoing else 1)) + _option(0, b""))
        for f in result.frames)
    return section + interfaces + packets


def write_pcapng(path: str, result: CaptureResult) -> None:
    data = pcapng(result)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(data)


# --- conntrack ------------------------------------------------------------------------------


def first_packet(entry: Tracked) -> Seen:
    """A tracked connection's first packet (its original direction), to match as a frame."""
    first = entry.original
    proto = "icmp" if entry.proto == "icmpv6" else entry.proto
    return Seen(_norm(first.src), _norm(first.dst), proto, first.sport, first.dport,
                8 if proto == "icmp" else -1, entry.icmp_id)


def flow_entries(result: PathResult, captured: CaptureResult
                 ) -> list[tuple[NamespaceRef, Tracked]]:
    """The connections each namespace on the flow's way tracks for the packets captured (by
    their sources as seen, so an earlier connection of the same flow is left out), read now;
    a namespace whose table cannot be read is left out."""
    matcher = Matcher.of(result)
    sources = set()
    for frame in captured.frames:
        seen = parse(frame.data, captured.linktypes[frame.point])
        if frame.direction == "forward" and seen is not None:
            sources.add((seen.src, seen.sport, seen.ident))
    found = []
    seen: set[int] = set()
    for hop in result.forward.hops:
        if hop.namespace.id in seen:
            continue
        seen.add(hop.namespace.id)
        try:
            with netns.entered(hop.namespace.path):
                entries = conntrack.read_entries()
        except NetdiagError:
            continue
        for entry in entries:
            as_seen = first_packet(entry)
            if (as_seen.src, as_seen.sport, as_seen.ident) in sources and \
                    matcher.direction(as_seen) == "forward":
                found.append((hop.namespace, entry))
    return found
