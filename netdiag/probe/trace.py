"""`netdiag path --trace`: the kernel's own account of where the probe went.

Two witnesses, both armed only while the probe (`--probe`) is sent and removed afterwards —
also on failure or Ctrl-C:

* nftables trace: for every namespace on the simulated path (forward and reply), a table of
  its own — `inet netdiag_trace_<pid>`, chains at prerouting and output with priority -350,
  before everything else — sets `meta nftrace` on the flow's packets (any of the addresses it
  takes under NAT, its protocol), and `nft monitor trace` listens in that namespace. It
  traces iptables-nft rules too (they are nftables rules), so each rule that decided is seen
  with its verdict.
* the `skb:kfree_skb` tracepoint: the kernel's reason for every packet of the flow's
  family (IPv4 or IPv6) it frees as dropped (NETFILTER_DROP, IP_INNOROUTES, NO_SOCKET,
  NEIGH_FAILED, PKT_TOO_BIG, IP_RPFILTER…), which covers what the nftables trace cannot
  see: iptables-legacy rules and the drops outside netfilter (routing, the neighbour, the
  socket). It is read in a tracefs instance of our own (`instances/netdiag-<pid>`),
  mounted in a private mount namespace; the event names no namespace, so a drop is held
  against the model only by its reason (another namespace's drop in the same second can
  appear too — the output says so).
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from netdiag.flows.packet import (
    FIREWALL,
    FORWARDING,
    LINK_DOWN,
    MTU,
    NEIGHBOUR,
    ROUTE,
    RP_FILTER,
    SOCKET,
    PathResult,
)
from netdiag.model import NamespaceRef
from netdiag.probe.path import ProbeResult

SETTLE_SECONDS = 0.3  # for the monitors to subscribe before the probe goes out
LINGER_SECONDS = 0.5  # for the last trace events to arrive
READY_SECONDS = 5.0  # for the drop watch to mount tracefs and enable its event


# The kernel's drop reasons that stand for each cause of the model's (netdiag/flows/packet.py).
REASONS = {
    FIREWALL: {"NETFILTER_DROP"},
    # host unreachable (INADDRERRORS) is what the kernel says for no route when the
    # interface does not forward
    ROUTE: {"IP_INNOROUTES", "IP_OUTNOROUTES", "IP_INADDRERRORS"},
    FORWARDING: {"IP_INNOROUTES", "IP_INADDRERRORS"},
    NEIGHBOUR: {"NEIGH_FAILED", "NEIGH_QUEUEFULL", "NEIGH_CREATEFAIL", "NEIGH_DEAD"},
    MTU: {"PKT_TOO_BIG"},
    RP_FILTER: {"IP_RPFILTER"},
    SOCKET: {"NO_SOCKET"},
    LINK_DOWN: {"DEV_READY"},
}
# Frees that are no drop of a flow (NOT_SPECIFIED: every plain kfree_skb; the rest: a TCP
# connection's ordinary life and end).
_ORDINARY = {"NOT_SPECIFIED", "TCP_CLOSE", "TCP_OLD_DATA", "TCP_RESET", "SOCKET_CLOSE"}
ETH_P_IP = 2048
ETH_P_IPV6 = 0x86DD


@dataclass(frozen=True, slots=True)
class KernelTrace:
    events: tuple[tuple[str, str], ...]  # (namespace, "ip filter INPUT rule ... (verdict drop)")
    drop: tuple[str, str] | None  # (namespace label, the event) of the first drop, if any
    agrees: bool | None  # with the model; None when nothing was traced
    note: str = ""
    # skb:kfree_skb while the probe was out: (reason, where in the kernel), in order seen
    drops: tuple[tuple[str, str], ...] = ()
    drops_note: str = ""  # why there are none to show, when the tracepoint could not be read


# Runs in a private mount namespace (unshare -m): tracefs mounted there only, an instance of
# our own, kfree_skb enabled in it while stdin stays open, its events printed at the end, and
# the instance removed on any way out.
_WATCH = r"""
t=/sys/kernel/tracing
i="$t/instances/$1"
cleanup() {
  if [ -d "$i" ]; then echo 0 > "$i/events/skb/kfree_skb/enable"; rmdir "$i"; fi
}
trap cleanup EXIT
trap 'exit 1' TERM INT HUP
mount -t tracefs nodev "$t" || exit 2
mkdir "$i" || exit 3
echo "protocol == $2" > "$i/events/skb/kfree_skb/filter" || exit 4
echo 1 > "$i/events/skb/kfree_skb/enable" || exit 4
echo ready
read -r _
echo 0 > "$i/events/skb/kfree_skb/enable"
cat "$i/trace"
"""
_UNWATCH = r"""
t=/sys/kernel/tracing
mount -t tracefs nodev "$t" || exit 0
if [ -d "$t/instances/$1" ]; then
  echo 0 > "$t/instances/$1/events/skb/kfree_skb/enable"; rmdir "$t/instances/$1"
fi
"""


class DropWatch:
    """skb:kfree_skb in a tracefs instance of our own, while the `with` block runs."""

    def __init__(self, ethertype: int = ETH_P_IP) -> None:
        self.ethertype = ethertype  # of the packets whose drops are read
        self.instance = f"netdiag-{os.getpid()}"
        self.process: subprocess.Popen | None = None
        self.drops: tuple[tuple[str, str], ...] = ()
        self.problem = ""

    def __enter__(self) -> DropWatch:
        try:
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", _WATCH, "sh",
                 self.instance, str(self.ethertype)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
        except OSError as exc:
            self.problem = f"the kernel's drop reasons could not be read: {exc.strerror}"
            return self
        ready, _, _ = select.select([self.process.stdout], [], [], READY_SECONDS)
        if not ready or self.process.stdout.readline().strip() != "ready":
            self._end()
            self.problem = "the kernel's drop reasons could not be read (skb:kfree_skb " \
                           "in a tracefs instance)"
        return self

    def __exit__(self, *_) -> None:
        if self.process is None or self.problem:
            return
        try:
            out, _ = self.process.communicate("\n", timeout=5)
        except subprocess.TimeoutExpired:
            self._end()
            return
        finally:
            self._unwatch()
        self.drops = tuple(_kfree_drops(out))

    def _end(self) -> None:
        self.process.terminate()
        try:
            self.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
        self._unwatch()

    def _unwatch(self) -> None:
        """Remove the instance if the watcher could not (killed): it outlives its mount."""
        if self.process is not None and self.process.returncode == 0:
            return
        subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        _UNWATCH, "sh", self.instance], capture_output=True, check=False)


def _kfree_drops(text: str) -> list[tuple[str, str]]:
    """(reason, kernel function) of each kfree_skb event that is a drop, from
    "... kfree_skb: skbaddr=… protocol=2048 location=ip_rcv_finish_core+0x1a/0x3c0 reason:
    IP_INNOROUTES"."""
    found = []
    for line in text.splitlines():
        if "kfree_skb:" not in line or "reason:" not in line:
            continue
        reason = line.rsplit("reason:", 1)[1].strip()
        location = next((w.split("=", 1)[1] for w in line.split() if w.startswith("location=")),
                        "")
        if reason and reason not in _ORDINARY:
            found.append((reason, location.split("+", 1)[0]))
    return found


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
    """Our trace table: the flow's packets by their addresses (`ip`, or `ip6` for IPv6
    addresses) and protocol (ICMPv6 for an IPv6 "icmp")."""
    family = "ip6" if any(":" in address for address in addresses) else "ip"
    if family == "ip6" and proto == "icmp":
        proto = "ipv6-icmp"
    match = (f"{family} saddr {{ {', '.join(addresses)} }} "
             f"{family} daddr {{ {', '.join(addresses)} }} "
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
    """Send the probe (`send`) with the kernel tracing it in every namespace on the path and
    its drop reasons watched."""
    name = f"netdiag_trace_{os.getpid()}"
    addresses = _addresses(result)
    table = _table(name, addresses, result.flow.packet.proto)
    armed: list[NamespaceRef] = []
    monitors: list[tuple[NamespaceRef, subprocess.Popen]] = []
    watch = DropWatch(ETH_P_IPV6 if result.flow.packet.family == 6 else ETH_P_IP)
    try:
        for ref in _namespaces(result):
            if _nft(ref, table):
                armed.append(ref)
                monitors.append((ref, subprocess.Popen(
                    ["nsenter", f"--net={ref.path}", "nft", "monitor", "trace"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)))
        with watch:
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
    return sent, _judge(result, _events(outputs, name), bool(armed), watch)


def _events(outputs: list[tuple[NamespaceRef, str]], ours: str) -> list[tuple[str, str]]:
    """(namespace, event) of each rule or policy that saw the packet, our own table's left out."""
    events = []
    for ref, text in outputs:
        for line in text.splitlines():
            words = line.split()
            if len(words) < 6 or words[0] != "trace" or ours in words[4] or \
                    words[5] == "packet:":
                continue
            events.append((ref.display, " ".join(words[3:])))
    return events


def _is_drop(event: str) -> bool:
    return "(verdict drop)" in event or event.endswith("policy drop") or \
        "reject" in event and "verdict" not in event


def _judge(result: PathResult, events: list[tuple[str, str]], armed: bool, watch: DropWatch
           ) -> KernelTrace:
    drop = next((e for e in events if _is_drop(e[1])), None)
    drops = watch.drops
    if not armed and not drops:
        return KernelTrace((), None, None, "no namespace on the path could be traced",
                           drops_note=watch.problem)
    agrees, note = _agreement(result, drop, {reason for reason, _ in drops})
    return KernelTrace(tuple(events), drop, agrees, note, drops, watch.problem)


def _agreement(result: PathResult, drop: tuple[str, str] | None, reasons: set[str]
               ) -> tuple[bool, str]:
    """Does the kernel's account (the nftables trace's drop, the drop reasons seen) agree
    with where the model stops the flow? And if not, what to say."""
    model_drop = result.forward.drop or (result.reply.drop if result.reply else None)
    if drop is not None:
        if model_drop is None:
            return False, "the kernel dropped what the model delivers"
        table_chain = model_drop.where.replace("/", " ").split()
        same_place = model_drop.namespace.display == drop[0] and \
            all(part in drop[1].split() for part in table_chain[:2] if not part.isdigit())
        return same_place, "" if same_place else \
            f"the model stops it at {model_drop.where} in {model_drop.namespace.display}"
    if result.delivered or model_drop is None:
        return True, ""
    if model_drop.cause == FIREWALL:
        if "(legacy)" in model_drop.where and "NETFILTER_DROP" in reasons:
            return True, ("iptables-legacy rules do not show in the nftables trace; the "
                          "kernel's drop reason is NETFILTER_DROP")
        return False, "the kernel's trace shows no netfilter drop"
    if "NETFILTER_DROP" in reasons and not REASONS.get(model_drop.cause, set()) & reasons:
        return False, (f"the kernel dropped it in netfilter (NETFILTER_DROP; not in the "
                       f"nftables trace, so an iptables-legacy rule?) where the model says: "
                       f"{model_drop.reason}")
    return True, ""
