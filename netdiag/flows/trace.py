"""`netdiag path --trace`: the kernel's own account of where the probe went.

For every namespace on the simulated path (forward and reply), a table of its own —
`inet netdiag_trace_<pid>`, chains at prerouting and output with priority -350, before
everything else — sets `meta nftrace` on the flow's packets (any of the addresses it takes
under NAT, its protocol), and `nft monitor trace` listens in that namespace while the probe
(`--probe`) is sent. nftables traces iptables-nft rules too (they are nftables rules), so each
rule that decided is seen with its verdict. The tables and monitors are removed afterwards —
also on failure or Ctrl-C. iptables-legacy rules and drops outside netfilter (routing, the
neighbour, a bridge port) do not show in nftables traces: a disagreement there says so
rather than guessing.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from netdiag.flows.packet import PathResult
from netdiag.flows.probe import ProbeResult
from netdiag.model import NamespaceRef

SETTLE_SECONDS = 0.3  # for the monitors to subscribe before the probe goes out
LINGER_SECONDS = 0.5  # for the last trace events to arrive


@dataclass(frozen=True, slots=True)
class KernelTrace:
    events: tuple[tuple[str, str], ...]  # (namespace, "ip filter INPUT rule ... (verdict drop)")
    drop: tuple[str, str] | None  # (namespace label, the event) of the first drop, if any
    agrees: bool | None  # with the model; None when nothing was traced
    note: str = ""


def _namespaces(result: PathResult) -> list[NamespaceRef]:
    hops = list(result.forward.hops) + list(result.reply.hops if result.reply else ())
    seen: dict[int, NamespaceRef] = {}
    for hop in hops:
        seen.setdefault(hop.namespace.id, hop.namespace)
    return list(seen.values())


def _addresses(result: PathResult) -> list[str]:
    """Every address the flow takes, NAT included: the forward packet before and after each
    translation."""
    found = {result.flow.packet.src, result.flow.packet.dst}
    for _, before, after in result.forward.translations:
        found |= {before.src, before.dst, after.src, after.dst}
    return sorted(a for a in found if a)


def _table(name: str, addresses: list[str], proto: str) -> str:
    match = (f"ip saddr {{ {', '.join(addresses)} }} ip daddr {{ {', '.join(addresses)} }} "
             f"meta l4proto {proto} meta nftrace set 1")
    chains = "".join(f" chain {chain} {{\n  type filter hook {hook} priority -350;\n"
                     f"  {match}\n }}\n" for chain, hook in (("pre", "prerouting"),
                                                             ("out", "output")))
    return f"table inet {name} {{\n{chains}}}\n"


def _nft(ref: NamespaceRef, script: str) -> bool:
    done = subprocess.run(["nsenter", f"--net={ref.path}", "nft", "-f", "-"], input=script,
                          capture_output=True, text=True, check=False)
    return done.returncode == 0


def trace(result: PathResult, send: Callable[[], ProbeResult]) -> tuple[ProbeResult,
                                                                         KernelTrace]:
    """Send the probe (`send`) with the kernel tracing it in every namespace on the path."""
    name = f"netdiag_trace_{os.getpid()}"
    addresses = _addresses(result)
    table = _table(name, addresses, result.flow.packet.proto)
    armed: list[NamespaceRef] = []
    monitors: list[tuple[NamespaceRef, subprocess.Popen]] = []
    try:
        for ref in _namespaces(result):
            if _nft(ref, table):
                armed.append(ref)
                monitors.append((ref, subprocess.Popen(
                    ["nsenter", f"--net={ref.path}", "nft", "monitor", "trace"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)))
        time.sleep(SETTLE_SECONDS)
        sent = send()
        time.sleep(LINGER_SECONDS)
    finally:
        outputs = []
        for ref, monitor in monitors:
            monitor.terminate()
            try:
                out, _ = monitor.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                monitor.kill()
                out, _ = monitor.communicate()
            outputs.append((ref, out or ""))
        for ref in armed:
            _nft(ref, f"delete table inet {name}\n")
    return sent, _judge(result, outputs, name, bool(armed))


def _judge(result: PathResult, outputs: list[tuple[NamespaceRef, str]], ours: str,
           armed: bool) -> KernelTrace:
    events: list[tuple[str, str]] = []
    drop = None
    for ref, text in outputs:
        for line in text.splitlines():
            words = line.split()
            if len(words) < 6 or words[0] != "trace" or ours in words[4] or \
                    words[5] == "packet:":
                continue
            event = " ".join(words[3:])
            events.append((ref.display, event))
            if drop is None and ("(verdict drop)" in event or event.endswith("policy drop")
                                 or "reject" in event and "verdict" not in event):
                drop = (ref.display, event)
    if not armed:
        return KernelTrace((), None, None, "no namespace on the path could be traced")
    model_drop = result.forward.drop or (result.reply.drop if result.reply else None)
    if drop is None:
        agrees = result.delivered or (model_drop is not None and not _netfilter(model_drop.where))
        note = "" if agrees else "the kernel's trace shows no netfilter drop"
        return KernelTrace(tuple(events), None, agrees, note)
    if model_drop is None:
        return KernelTrace(tuple(events), drop, False, "the kernel dropped what the model "
                                                       "delivers")
    table_chain = model_drop.where.replace("/", " ").split()
    same_place = model_drop.namespace.display == drop[0] and \
        all(part in drop[1].split() for part in table_chain[:2] if not part.isdigit())
    return KernelTrace(tuple(events), drop, same_place,
                       "" if same_place else f"the model stops it at {model_drop.where} in "
                                             f"{model_drop.namespace.display}")


def _netfilter(where: str) -> bool:
    return where.startswith("nft ") or where.count("/") >= 1 and where.split("/")[0] in (
        "filter", "nat", "mangle", "raw", "security")
