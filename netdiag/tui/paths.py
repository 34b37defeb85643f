"""The TUI's path view: a line typed by the user → the flow engine's trace from the attached
namespace, and the evidence that marks what stopped it in the state tabs.

    db:6379            tcp to a Docker name (as this namespace resolves it) and port
    10.0.0.2           icmp
    10.0.0.2:53 udp    a protocol after the destination
"""

from __future__ import annotations

from netdiag.errors import UsageError
from netdiag.findings.finding import Evidence
from netdiag.flows import names
from netdiag.flows.packet import Packet, PathResult
from netdiag.flows.walk import Engine
from netdiag.model import Snapshot

USAGE = "DST[:PORT] [tcp|udp|icmp], e.g. db:6379"


def trace(snapshot: Snapshot, source: int, line: str) -> PathResult:
    words = line.split()
    if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("tcp", "udp",
                                                                            "icmp")):
        raise UsageError(f"expected {USAGE}")
    target, port = names.split_port(words[0])
    proto = words[1] if len(words) == 2 else ("tcp" if port else "icmp")
    if (proto == "icmp") == bool(port):
        raise UsageError("tcp and udp need :PORT, icmp has none")
    address, _ = names.resolve(snapshot, source, target)
    return Engine(snapshot).path(source, Packet("", address, proto, 43210 if port else 0,
                                                port))


def evidence(result: PathResult) -> tuple[Evidence, ...]:
    """What stopped the flow (or its reply), as Evidence the state tabs can mark."""
    drop = result.forward.drop or (result.reply.drop if result.reply else None)
    if drop is None:
        return ()
    where = drop.where.replace(" (legacy)", "")
    kind = "firewall" if drop.rule or where.count("/") == 2 else "link"
    return (Evidence(drop.reason, drop.namespace.id, kind, where),)
