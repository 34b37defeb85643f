"""Opt-in active probes (`check --probe`): measure what the Snapshot can only suggest.

Three probes, each sent from inside a namespace of the snapshot to an address the snapshot
names, so nothing ever leaves for an address netdiag did not read on this host — except DNS
queries, which go to the namespace's own configured nameservers, exactly where its
applications send theirs:

* a DF ping sweep for the path MTU between pairs of namespaces (pmtu.py);
* a TCP connect to each published port (DNAT rule) and to its target (ports.py);
* one DNS query to each configured nameserver (dns.py).

`plan` picks the targets from the snapshot (pure); `measure` runs them in one worker thread
that enters each namespace in turn (scapy's routing table is process-wide, so sweeps cannot
run in parallel), and `with_probes` returns the snapshot with the results in
`Snapshot.probes`, where rules read them as evidence. Nothing is sent unless this is called.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from netdiag import netns
from netdiag.checks.dns.dns_unreachable import has_own_resolv_conf
from netdiag.checks.topology import Topology, index
from netdiag.errors import NetdiagError
from netdiag.model import (DnsProbe, IptablesRule, NamespaceState, PathMtuProbe, PortProbe,
                           Probes, Snapshot)
from netdiag.probe import dns, pmtu, ports

MAX_PATHS = 16  # path MTU sweeps per run: pairs grow with the square of the namespaces
MAX_NAMESERVERS = 3  # the resolver never asks more
SKIPPED = "skipped: the time limit was reached"


@dataclass(frozen=True, slots=True)
class Task:
    """One probe to run from one namespace."""

    kind: str  # path_mtu, port or dns
    namespace: int
    address: str
    port: int = 0
    purpose: str = ""


def with_probes(snapshot: Snapshot, focus: Iterable[int] = (), deadline: float | None = None,
                timeout: float = 1.0) -> Snapshot:
    """`snapshot` with `probes` filled in by probing the live namespaces it describes."""
    return replace(snapshot, probes=measure(snapshot, plan(snapshot, focus), deadline, timeout))


def plan(snapshot: Snapshot, focus: Iterable[int] = (), max_paths: int = MAX_PATHS
         ) -> tuple[Task, ...]:
    """The probes worth sending: from the focus namespaces (all, when there is no focus)."""
    topology = index(snapshot)
    focus = frozenset(focus)
    sources = [s for s in snapshot.namespaces if not focus or s.ref.id in focus]
    tasks = list(_path_tasks(topology, sources, max_paths))
    for state in sources:
        tasks += _port_tasks(state)
        if has_own_resolv_conf(state):  # else: the host's servers, which it never asks
            tasks += [Task("dns", state.ref.id, server)
                      for server in state.dns.nameservers[:MAX_NAMESERVERS]]
    return tuple(tasks)


def primary_address(state: NamespaceState) -> str:
    """The namespace's first global IPv4 address on an interface that is up, or ""."""
    up = {link.name for link in state.links if link.up and link.kind != "loopback"}
    return next((a.address for a in state.addresses
                 if a.family == 4 and a.scope == "global" and a.ifname in up
                 and not a.address.startswith("127.")), "")


def _path_tasks(topology: Topology, sources: list[NamespaceState], max_paths: int):
    done: set[frozenset[int]] = set()
    for source in sources:
        for target in topology.snapshot.namespaces:
            pair = frozenset((source.ref.id, target.ref.id))
            address = primary_address(target)
            if len(pair) < 2 or pair in done or not address:
                continue
            route = topology.lookup_route(source.ref.id, address)
            if route is None or route.type not in ("unicast", "local"):
                continue
            if any(ns == source.ref.id for ns, _ in topology.owners_of(address)):
                continue
            done.add(pair)
            yield Task("path_mtu", source.ref.id, address)
            if len(done) >= max_paths:
                return


def _port_tasks(state: NamespaceState) -> list[Task]:
    """Each published TCP port (a DNAT rule with a single --dport) and its target."""
    tasks: list[Task] = []
    own = primary_address(state)
    for rule in state.firewall.iptables_rules:
        protocol, dport = rule.match("protocol"), rule.match("dport")
        target = rule.target_option("to-destination")
        if rule.table != "nat" or rule.target != "DNAT" or not target or dport is None \
                or protocol is None or protocol.value != "tcp" or not dport.value.isdigit():
            continue
        host, _, port = target.rpartition(":") if ":" in target else (target, "", dport.value)
        if "-" in port or not port.isdigit():
            continue  # a port range: one connect would not say much
        tasks.append(Task("port", state.ref.id, host, int(port), "target"))
        published = _published_address(rule, own)
        if published:
            tasks.append(Task("port", state.ref.id, published, int(dport.value), "published"))
    return list(dict.fromkeys(tasks))


def _published_address(rule: IptablesRule, own: str) -> str:
    """Where the host port listens: the rule's single destination address, else our own."""
    destination = rule.match("destination")
    if destination is None or destination.negated:
        return own
    address, _, length = destination.value.partition("/")
    return address if length in ("", "32") else own


# --- running the plan ---------------------------------------------------------------------------


def measure(snapshot: Snapshot, tasks: Iterable[Task], deadline: float | None = None,
            timeout: float = 1.0) -> Probes:
    """Run `tasks` in one worker thread (the caller's thread never changes namespace)."""
    by_namespace: dict[int, list[Task]] = defaultdict(list)
    for task in tasks:
        by_namespace[task.namespace].append(task)
    paths = {state.ref.id: state.ref.path for state in snapshot.namespaces}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="netdiag-probe") as pool:
        results = pool.submit(_run_all, by_namespace, paths, deadline, timeout).result()
    return Probes(path_mtu=tuple(r for r in results if isinstance(r, PathMtuProbe)),
                  ports=tuple(r for r in results if isinstance(r, PortProbe)),
                  dns=tuple(r for r in results if isinstance(r, DnsProbe)))


def _run_all(by_namespace: dict[int, list[Task]], paths: dict[int, str],
             deadline: float | None, timeout: float) -> list:
    results = []
    for ns_id, tasks in by_namespace.items():
        try:
            with netns.entered(paths[ns_id]):
                results += [_run(task, deadline, timeout) for task in tasks]
        except NetdiagError as exc:  # the namespace went away or cannot be entered
            results += [_failed(task, str(exc)) for task in tasks]
    return results


def _run(task: Task, deadline: float | None, timeout: float):
    if deadline is not None and time.monotonic() + timeout > deadline:
        return _failed(task, SKIPPED)
    if task.kind == "path_mtu":
        return pmtu.sweep(task.namespace, task.address, timeout)
    if task.kind == "port":
        return ports.connect(task.namespace, task.address, task.port, timeout, task.purpose)
    return dns.query(task.namespace, task.address, timeout=2 * timeout)


def _failed(task: Task, why: str):
    if task.kind == "path_mtu":
        return PathMtuProbe(task.namespace, task.address, attempts=((0, why),))
    if task.kind == "port":
        return PortProbe(task.namespace, task.address, task.port, error=why,
                         purpose=task.purpose)
    return DnsProbe(task.namespace, task.address, error=why)
