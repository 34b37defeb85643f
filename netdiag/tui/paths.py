"""The TUI's path view: a line typed by the user → the flow engine's trace from the attached
namespace, the evidence that marks what stopped it in the state tabs, and the capture of the
flow along its hops (`netdiag capture`'s).

The line is what follows `netdiag path SRC` on the command line — one flow syntax everywhere:

    db:6379                  tcp to a Docker name (as this namespace resolves it) and port
    10.0.0.2                 icmp
    10.0.0.2:53 --proto udp  another protocol, as `--proto`
"""

from __future__ import annotations

from collections.abc import Callable

from netdiag.checks.exposure_model import firewall_key
from netdiag.errors import UsageError
from netdiag.findings.finding import Evidence
from netdiag.flows import names
from netdiag.flows.packet import FIREWALL, Packet, PathResult
from netdiag.flows.walk import Engine
from netdiag.model import Snapshot
from netdiag.probe import CAPTURE_COUNT, CAPTURE_WAIT_SECONDS

USAGE = "DST[:PORT] [--proto tcp|udp|icmp], e.g. db:6379"
PROTOCOLS = ("tcp", "udp", "icmp")


def parse(line: str) -> tuple[str, int, str]:
    """(destination, port, protocol) of a flow written as `netdiag path` takes it after SRC;
    the protocol defaults as there: tcp with a port, icmp without."""
    words = line.split()
    proto = ""
    if len(words) == 3 and words[1] == "--proto":
        proto = words.pop(2)
        words.pop(1)
    elif len(words) == 2 and words[1].startswith("--proto="):
        proto = words.pop(1).removeprefix("--proto=")
    if len(words) == 2 and words[1] in PROTOCOLS:
        raise UsageError(f"write the protocol as `netdiag path` takes it: {words[0]} "
                         f"--proto {words[1]}")
    if len(words) != 1 or (proto and proto not in PROTOCOLS):
        raise UsageError(f"expected {USAGE}")
    target, port = names.split_port(words[0])
    proto = proto or ("tcp" if port else "icmp")
    if proto != "icmp" and not port:
        raise UsageError(f"--proto {proto} needs a port: DST:PORT")
    if proto == "icmp" and port:
        raise UsageError("icmp has no port: drop :PORT, or give --proto tcp|udp")
    return target, port, proto


def trace(snapshot: Snapshot, source: int, line: str) -> PathResult:
    target, port, proto = parse(line)
    address, _ = names.resolve(snapshot, source, target)
    return Engine(snapshot).path(source, Packet("", address, proto, 43210 if port else 0,
                                                port))


def capture(snapshot: Snapshot, result: PathResult, wait: bool, external: bool,
            cancelled: Callable[[], bool]) -> list[str]:
    """`netdiag capture` of a flow traced here: the same watch on every interface of its hops
    (netdiag/probe/capture.py), the flow sent once as `path --probe` sends it — or, `wait`,
    its own traffic awaited CAPTURE_WAIT_SECONDS —, at most CAPTURE_COUNT frames; its report
    with each interface marked where the packet was last seen and where the model expects it
    last. `cancelled()` true (the user left) ends it early."""
    from netdiag.probe import capture as watch
    from netdiag.probe.path import probe

    send = None if wait else (lambda: probe(snapshot, result, external))
    found = watch.capture(result, send, CAPTURE_WAIT_SECONDS, CAPTURE_COUNT,
                          cancelled=cancelled)
    return "\n".join(watch.summary(result, found, marks=True)).splitlines()


def evidence(result: PathResult) -> tuple[Evidence, ...]:
    """What stopped the flow (or its reply), as Evidence the state tabs can mark."""
    drop = result.forward.drop or (result.reply.drop if result.reply else None)
    if drop is None:
        return ()
    if drop.cause == FIREWALL:  # a rule or a policy, iptables or nftables: its row's key
        return (Evidence(drop.reason, drop.namespace.id, "firewall", firewall_key(drop.where)),)
    return (Evidence(drop.reason, drop.namespace.id, "link", drop.where),)
