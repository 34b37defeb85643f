"""expected-flow-blocked: a flow that should work does not, and the hop and rule that stop it.

What it finds
    The flows Docker's intent promises (netdiag/flows/expected.py: a container to its
    gateway, two containers of a network with icc on to each other, a container on a user
    network to the embedded DNS at 127.0.0.11:53, a container of each network that is not
    internal out beyond the host and its reply back in, a client beyond the host to each
    published TCP or UDP port, the publishing container to its own published port at the host's
    address, a Swarm node's peers to its VXLAN port and its VXLAN packets to them — and on a
    network with IPv6, the gateway, peer, outside and published-port flows again over IPv6,
    the outside ones where IPv6 is meant to leave: NAT66 by Docker's ip6tables, or a routed
    prefix), those a netdiag lab promises (each program to its backend, each program from a
    neighbour on its network, and that neighbour's ICMPv6 on a dual-stack network), those a
    fleet snapshot promises (each node of a VXLAN overlay to the others'
    VXLAN port, and on a Docker overlay a container of each node to one of the next node,
    across the network between the nodes) and those the check configuration's `expect:`
    lists (`reach: false` for a flow that must be blocked, reported when it is delivered),
    each simulated by the flow engine through routing, bridges, macvlans, VXLAN, netfilter,
    NAT and conntrack — with its reply (VXLAN's datagrams, which nobody answers, without).
    A flow that is denied, null-routed, is reverse-path filtered or loops is reported with
    the namespace, the place (the firewall rule, the route, the device) and the reason that
    stop it; one that the engine cannot judge (an unmodelled firewall match) is an info
    finding saying why. Stops that a specialised rule reports with its own repair
    (forwarding off, a device down, no route, no neighbour, too big, hairpin off, nothing
    listening) are left to that rule, by the stop's cause: one finding per fault (the user's
    own expectations are always answered in full) — except what no rule reads in a lab: a
    lab's published port whose DNAT is gone, and a lab's overlay flow stopped at a VXLAN
    device in proxy mode that has no neighbour entry for its far end (the device answers
    ARP and neighbour solicitations from its entries alone).

    Docker versions: the flows are judged by the flow engine over whatever the kernel holds,
    so any layout of Docker's rules is walked as written; the promises follow 20.10's and
    27+'s intent (28's gateway modes: a `routed` network's published ports answer at the
    container's own address and nothing is masqueraded, a NAT network's direct routing is
    meant to fail — Docker's raw-table protection — and is not promised; `nat-unprotected`;
    ip6tables on by default), and 29's nftables backend through its `docker-bridges` tables.
    Quiet on the healthy matrix of 20.10 and 28.5 and on moby's Docker 29 documents.

Why it matters
    This is the question asked first in an incident — "why can't web reach its gateway", "why
    does the published port time out" — and the rules that each know one shape of breakage
    miss the ones nobody wrote a rule for: a DROP someone put in DOCKER-USER, a policy route
    into a blackhole table, a FORWARD chain a firewall manager rewrote. The trace names the
    one rule that decides.

Example
    ND921 expected-flow-blocked  host: tcp 198.51.100.7:43210 → 192.0.2.10:8080
      a client beyond the host reaches web's published port 192.0.2.10:8080: denied in host
      at filter/DOCKER-USER/1: DROP by filter/DOCKER-USER/1
        · rule: -A DOCKER-USER -i eth0 -j DROP
        · path: host (in eth0 out br-5e1c9a2f3b4d)

Repair
    Manual: the rule or route named is the one to change (remove it, narrow it, or add an
    ACCEPT before it for the flow); `netdiag path` shows the whole trace, hop by hop.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.flows import expected
from netdiag.flows.packet import (
    FORWARDING,
    HAIRPIN,
    LINK_DOWN,
    LOOP,
    MTU,
    NEIGHBOUR,
    NO_ROUTE,
    SOCKET,
    UNKNOWN,
    PathResult,
    Trace,
)
from netdiag.flows.walk import proxy_answers
from netdiag.model import Snapshot

RULE = Rule(code="ND921", name="expected-flow-blocked", severity=Severity.ERROR,
            summary="a flow that Docker's, a lab's or a fleet's intent promises (gateway, "
                    "peers, DNS, published ports, VTEPs, backends) is stopped on its way; the "
                    "hop and the rule are named")
WALKS_FLOWS = True  # on a big snapshot, run beside the other rules (checks/engine.py)


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for outcome in expected.judge(snapshot, config.expect):
        expectation, result = outcome.expectation, outcome.result
        if result is None:
            yield _unplaced(snapshot, expectation, outcome.problem)
        elif not expectation.reach:
            yield _not_blocked(snapshot, expectation, result)
        elif _ours(expectation, result) or _lab_overlay_entry(snapshot, expectation, result):
            yield _finding(snapshot, expectation, result)


def _unplaced(snapshot: Snapshot, expectation: expected.Expectation, problem: str) -> Finding:
    host = snapshot.namespaces[0].ref
    return RULE.finding(host, expectation.what, f"expected flow {expectation.what}: cannot be "
                        f"checked: {problem}", severity=Severity.WARNING,
                        evidence=[Evidence(expectation.said)])


def _not_blocked(snapshot: Snapshot, expectation: expected.Expectation, result: PathResult
                 ) -> Finding:
    source = snapshot.namespace(expectation.source).ref
    where = result.forward.namespace
    last = snapshot.namespace(where).ref.display if snapshot.namespace(where) else "?"
    return RULE.finding(
        source, result.flow.packet.text,
        f"{expectation.what}: but it is delivered (to {last}) and its reply comes back",
        evidence=[Evidence(expectation.said, expectation.source),
                  *_path_evidence(result.forward)],
        related=tuple(dict.fromkeys(h.namespace.id for h in result.forward.hops
                                    if h.namespace.id != source.id)),
        repair=Repair("Block the flow", Safety.MANUAL, (ManualStep(
            f"add a DROP for {result.flow.packet.text} where it should stop (see: netdiag "
            "path)", source.id),)))


def _path_evidence(trace: Trace) -> list[Evidence]:
    return [Evidence(f"path: {hop.namespace.display} ("
                     + " ".join(p for p in (f"in {hop.into}" if hop.into else "",
                                            f"out {hop.out}" if hop.out else "") if p)
                     + ")", hop.namespace.id) for hop in trace.hops]


def _ours(expectation: expected.Expectation, result: PathResult) -> bool:
    """Is this stop for this rule to report? Faults a specialised rule names with its own
    repair are left to it — one finding per fault: forwarding off (ip-forward-disabled), a
    device down (link-down), no route (missing-default-route), no neighbour
    (docker-endpoint-broken, docker-bridge-broken, docker-overlay-peers), too big
    (mtu-mismatch), hairpin off (docker-prerequisite-missing), nothing listening
    (docker-port-unpublished, dns-unreachable) — except a lab's published port that ends
    unanswered on its host, short of the node meant to answer (its DNAT is gone: no rule of
    `check` reads a lab's drivers' firewall)."""
    _, trace = _failed(result)
    if expectation.user:
        return True  # the user asked about this very flow: every stop is the answer
    if trace.disposition == NO_ROUTE or trace.drop is None:
        return trace.disposition in (LOOP, UNKNOWN)
    if _unpublished(expectation, trace):
        return True
    return trace.drop.cause not in _OWNED_ELSEWHERE


def _unpublished(expectation: expected.Expectation, trace: Trace) -> bool:
    return bool(expectation.listener) and trace.drop is not None and \
        trace.drop.cause == SOCKET and trace.drop.namespace.id != expectation.listener


_OWNED_ELSEWHERE = frozenset({FORWARDING, LINK_DOWN, NEIGHBOUR, MTU, HAIRPIN, SOCKET})


def _lab_overlay_entry(snapshot: Snapshot, expectation: expected.Expectation,
                       result: PathResult) -> bool:
    """Is this a lab's flow stopped at a VXLAN device in proxy mode that has no neighbour
    entry for the address asked (the flow's far end: a lab's overlay flows stay on the
    overlay's subnet)? The device answers ARP and neighbour solicitations from its entries
    only; no rule of `check` reads a lab's overlay entries (docker-overlay-peers reads
    Docker's; vxlan-fdb-stale those that are there), so the stop is this rule's."""
    _, trace = _failed(result)
    drop = trace.drop
    if not expectation.lab or drop is None or drop.cause != NEIGHBOUR:
        return False
    state = snapshot.namespace(drop.namespace.id)
    link = next((k for k in state.links if k.name == drop.where), None) if state else None
    if link is None or link.vxlan is None or not link.vxlan.proxy:
        return False
    asked = result.flow.packet.dst if trace is result.forward else \
        result.forward.delivered_as.src if result.forward.delivered_as else ""
    return bool(asked) and not proxy_answers(state, link.name, asked)


def _failed(result: PathResult) -> tuple[str, Trace]:
    if result.reply is not None and (result.forward.disposition == "delivered"
                                     or result.forward.exited is not None):
        return "its reply", result.reply
    return "it", result.forward


def _finding(snapshot: Snapshot, expectation: expected.Expectation, result: PathResult
             ) -> Finding:
    which, trace = _failed(result)
    drop = trace.drop
    source = snapshot.namespace(expectation.source).ref
    where = f" in {drop.namespace.display} at {drop.where}" if drop else ""
    reason = drop.reason if drop else "the walk ended without a verdict"
    message = f"{expectation.what}: {which} is {trace.disposition}{where}: {reason}"
    evidence = [Evidence(expectation.said, expectation.source,
                         "" if expectation.user else "docker"),
                Evidence(f"expected: {expectation.why}", expectation.source)]
    if drop is not None and drop.rule:
        evidence.append(Evidence(f"rule: {drop.rule}", drop.namespace.id, "firewall",
                                 drop.where))
    evidence += _path_evidence(trace)
    related = tuple(dict.fromkeys(h.namespace.id for h in result.forward.hops
                                  if h.namespace.id != source.id))
    unknown = trace.disposition == UNKNOWN
    if _unpublished(expectation, trace):
        reason = (f"no DNAT takes it on to the node that serves it: the published port's rule "
                  f"is gone (`netdiag lab status` names it, with its repair); {reason}")
    elif expectation.lab and drop is not None and drop.cause == NEIGHBOUR:
        reason = f"{reason} (`netdiag lab status` names the entry, with its repair)"
    return RULE.finding(
        source, result.flow.packet.text,
        message if not unknown else f"{expectation.what}: cannot be judged{where}: {reason}",
        severity=Severity.INFO if unknown else None, evidence=evidence, related=related,
        repair=None if unknown else Repair(
            "Change what stops the flow", Safety.MANUAL,
            (ManualStep(f"{'remove or narrow ' + drop.rule if drop and drop.rule else reason}"
                        f" (see: netdiag path)", drop.namespace.id if drop else source.id),)))
