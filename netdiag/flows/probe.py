"""`netdiag path --probe`: the same flow sent once for real, to hold the model against the kernel.

A TCP connect (the kernel's own connect, so its NAT applies as for any client) or one ping
(with DF at `--size`) from the source namespace, 1 s timeout; UDP has no answer to judge by
and is not sent. Only to targets inside what netdiag read (netdiag/probe/scope.py) unless the
user passes `--probe-external`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from netdiag import netns
from netdiag.checks.topology import index
from netdiag.flows.packet import PathResult
from netdiag.model import Snapshot
from netdiag.probe import ports
from netdiag.probe.scope import outside_reason

TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    sent: bool
    outcome: str = ""  # ok, refused, timeout, unreachable, fail (ping)
    reason: str = ""  # why it was not sent
    agrees: bool | None = None  # with the model's verdict; None when not sent

    @property
    def delivered(self) -> bool:
        return self.outcome == "ok"


def refusal(snapshot: Snapshot, result: PathResult, external: bool = False) -> str:
    """Why the flow is not to be sent for real; "" when it may be."""
    packet = result.flow.packet
    if packet.proto == "udp":
        return "udp has no answer to judge by"
    why = outside_reason(index(snapshot), result.flow.source.id, packet.dst)
    return f"{why} (--probe-external sends it anyway)" if why and not external else ""


def probe(snapshot: Snapshot, result: PathResult, external: bool = False) -> ProbeResult:
    packet = result.flow.packet
    source = result.flow.source
    why = refusal(snapshot, result, external)
    if why:
        return ProbeResult(False, reason=why)
    if packet.proto == "tcp":
        with netns.entered(source.path):
            found = ports.connect(source.id, packet.dst, packet.dport, TIMEOUT)
        outcome = "ok" if found.open else found.error
    else:
        size = ["-M", "do", "-s", str(packet.size - 28)] if packet.size else []
        done = subprocess.run(["nsenter", f"--net={source.path}", "ping", "-n", "-c", "1",
                               "-W", str(int(TIMEOUT)), *size, packet.dst],
                              capture_output=True, check=False)
        outcome = "ok" if done.returncode == 0 else "fail"
    return ProbeResult(True, outcome, agrees=(outcome == "ok") == result.delivered)
