"""What the flow engine moves and what it answers: a packet, and the trace of its path.

A Packet is one IPv4 or IPv6 packet at one point of its way (addresses and ports change under NAT,
the mark under MARK, the conntrack state is the flow's: NEW going out, ESTABLISHED coming
back). A Trace is the path of one direction of a flow: hops (one per namespace it passes, each
a list of typed steps), and how it ended — its disposition, and for a packet that did not
arrive, the Drop that says where, by which rule and why. A PathResult holds the forward trace
and its reply's; the flow is delivered only when both are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from netdiag.model import NamespaceRef


class Disposition(StrEnum):
    """How a trace ended (batfish's vocabulary, made to fit a Linux host). A StrEnum: equal to
    its value, printed and written to JSON as it."""

    DELIVERED = "delivered"
    DENIED = "denied"
    NO_ROUTE = "no-route"
    NULL_ROUTED = "null-routed"
    NEIGHBOUR_UNREACHABLE = "neighbour-unreachable"
    NO_LISTENER = "no-listener"
    TOO_BIG = "too-big"
    LOOP = "loop"
    UNKNOWN = "unknown"


DELIVERED = Disposition.DELIVERED
DENIED = Disposition.DENIED
NO_ROUTE = Disposition.NO_ROUTE
NULL_ROUTED = Disposition.NULL_ROUTED
NEIGHBOUR_UNREACHABLE = Disposition.NEIGHBOUR_UNREACHABLE
NO_LISTENER = Disposition.NO_LISTENER
TOO_BIG = Disposition.TOO_BIG
LOOP = Disposition.LOOP
UNKNOWN = Disposition.UNKNOWN
DISPOSITIONS = tuple(Disposition)

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1}
ICMPV6 = 58  # an IPv6 packet's "icmp" is ICMPv6: its own protocol number and type numbers


@dataclass(frozen=True, slots=True)
class Packet:
    src: str
    dst: str
    proto: str  # tcp, udp, icmp
    sport: int = 0
    dport: int = 0
    size: int = 0  # bytes of the IP packet; 0: small (no MTU question)
    df: bool = True
    ctstate: str = "NEW"  # NEW for the flow's first packet, ESTABLISHED for its reply
    mark: int = 0
    icmp_type: str = "echo-request"
    # The flow's connection in each namespace it passed (conntrack is per namespace, and the
    # reply meets the same entries): (namespace id, ct mark), (namespace id, "dnat" | "snat"),
    # and the namespaces where it is not tracked (notrack).
    ct_marks: tuple[tuple[int, int], ...] = ()
    ct_nat: tuple[tuple[int, str], ...] = ()
    untracked: frozenset[int] = frozenset()
    # The interface a link-local IPv6 destination is on (fe80::1%eth0: "eth0"), "" otherwise.
    scope: str = ""

    @property
    def family(self) -> int:
        return 6 if ":" in self.dst else 4

    def swapped(self) -> Packet:
        """The reply: addresses and ports exchanged, part of the connection."""
        # The kernel's echo reply is as big as the request but may be fragmented on its way
        # out (its ICMP socket discovers the path MTU without forbidding fragments).
        return replace(self, src=self.dst, dst=self.src, sport=self.dport, dport=self.sport,
                       ctstate="ESTABLISHED", mark=0, df=self.df and self.proto != "icmp",
                       scope="",
                       icmp_type="echo-reply" if self.proto == "icmp" else self.icmp_type)

    @property
    def text(self) -> str:
        dst = f"{self.dst}%{self.scope}" if self.scope else self.dst
        if self.proto == "icmp":
            return f"icmp{'v6' if self.family == 6 else ''} {self.src} → {dst}"
        if self.family == 6:
            return f"{self.proto} [{self.src}]:{self.sport} → [{dst}]:{self.dport}"
        return f"{self.proto} {self.src}:{self.sport} → {dst}:{self.dport}"


class StepKind(StrEnum):
    """What one step of a hop did (batfish's typed steps, for a Linux namespace)."""

    SEND = "send"  # the packet leaves its sender
    ROUTE = "route"  # a routing decision (policy rules, the table, the route taken)
    NETFILTER = "netfilter"  # a chain's verdict (iptables, nftables)
    NAT = "nat"  # an address or port rewritten (DNAT, SNAT, MASQUERADE, a reply's un-NAT)
    CONNTRACK = "conntrack"  # the connection's state decided
    BRIDGE = "bridge"  # forwarded by a bridge from one port to another
    VXLAN = "vxlan"  # encapsulated or decapsulated
    NEIGHBOUR = "neighbour"  # the next hop resolved (ARP, IPv6 neighbour discovery)
    MTU = "mtu"  # a size question: fragmented, or too big
    WIRE = "wire"  # crossed a link to its other end
    DELIVER = "deliver"  # handed to a socket
    DROP = "drop"  # stopped here
    EXIT = "exit"  # left what the snapshot holds


@dataclass(frozen=True, slots=True)
class TraceStep:
    kind: StepKind
    detail: str
    rule: str = ""  # the firewall rule or route that decided, as the user knows it


@dataclass(slots=True)
class Hop:
    """One namespace on the path: where the packet came in and went out, and what happened."""

    namespace: NamespaceRef
    into: str = ""  # the interface it arrived on ("" when sent from here)
    out: str = ""
    steps: list[TraceStep] = field(default_factory=list)


class DropCause(StrEnum):
    """What stopped a packet, for programs (rules leave a stop to the rule that owns its cause,
    --trace compares it with the kernel's drop reason); a Drop's `where` and `reason` are for
    people."""

    FIREWALL = "firewall"  # a netfilter rule or policy (iptables, nftables)
    ROUTE = "route"  # no route, a blackhole/unreachable/prohibit route, a loop
    FORWARDING = "forwarding"  # ip_forward or the interface's forwarding is off
    LINK_DOWN = "link-down"  # a device (or its other end, or a bridge port) is down
    NEIGHBOUR = "neighbour"  # nobody on the segment holds the next hop; VXLAN has no entry
    MTU = "mtu"  # too big for a device on the way
    RP_FILTER = "rp-filter"  # reverse-path filtering
    BRIDGE = "bridge"  # a bridge port's state, isolated ports
    HAIRPIN = "hairpin"  # a bridge would send the frame back out of its port; hairpin is off
    CONNTRACK = "conntrack"  # a reply that is not the flow's
    SOCKET = "socket"  # nothing listens (or echo ignored)
    UNMODELLED = "unmodelled"  # the model cannot say (unknown)


FIREWALL = DropCause.FIREWALL
ROUTE = DropCause.ROUTE
FORWARDING = DropCause.FORWARDING
LINK_DOWN = DropCause.LINK_DOWN
NEIGHBOUR = DropCause.NEIGHBOUR
MTU = DropCause.MTU
RP_FILTER = DropCause.RP_FILTER
BRIDGE = DropCause.BRIDGE
HAIRPIN = DropCause.HAIRPIN
CONNTRACK = DropCause.CONNTRACK
SOCKET = DropCause.SOCKET
UNMODELLED = DropCause.UNMODELLED
CAUSES = tuple(DropCause)


@dataclass(frozen=True, slots=True)
class Drop:
    namespace: NamespaceRef
    where: str  # the hook, device or table: "filter/FORWARD", "route", "eth0"
    reason: str
    rule: str = ""
    cause: DropCause = DropCause.UNMODELLED


@dataclass(frozen=True, slots=True)
class Trace:
    disposition: Disposition
    hops: tuple[Hop, ...]
    drop: Drop | None = None
    delivered_as: Packet | None = None  # the packet as it arrived (after NAT)
    namespace: int = 0  # where it was delivered
    # Where it left what the snapshot holds — (namespace, device, the packet as it left) —
    # when it went on beyond (disposition unknown: what happens there is not known).
    exited: tuple[int, str, Packet] | None = None
    # The NAT it met: ("dnat" | "snat", the packet before, after), in the order met.
    translations: tuple[tuple[str, Packet, Packet], ...] = ()


@dataclass(frozen=True, slots=True)
class Flow:
    source: NamespaceRef
    packet: Packet  # as the source sends it (its src chosen by the source's routing)


@dataclass(frozen=True, slots=True)
class PathResult:
    flow: Flow
    forward: Trace
    reply: Trace | None  # None when the forward packet never arrived

    @property
    def disposition(self) -> str:
        if self.forward.disposition != DELIVERED or self.reply is None:
            return self.forward.disposition
        return self.reply.disposition

    @property
    def delivered(self) -> bool:
        return self.disposition == DELIVERED

    @property
    def leaves_and_returns(self) -> bool:
        """It left by the edge of what the snapshot holds, and a reply to it would be let
        back in and delivered."""
        return self.forward.exited is not None and self.reply is not None and \
            self.reply.disposition == DELIVERED
