"""Which probes to send: targets picked from a Snapshot, from the namespaces in focus.

Pure: reads the snapshot only. Path MTU sweeps go between pairs of namespaces (once per pair,
only to a namespace the routes of the namespaces on the way lead to — scope.reach — nearest
first, at most MAX_PATHS); port probes to each published TCP port (a DNAT
rule with one --dport) and to its target; DNS queries to the first three nameservers of each
namespace that has its own resolv.conf, asking the namespace's own container or lab name
(Docker's embedded resolver answers that itself, where any other name would be forwarded to
the host's upstream servers) or else `invalid.`, which RFC 6761 has resolvers answer without
asking anyone. Every target must be inside the snapshot (scope.py) unless `external` is set; what
was left out, and why, is part of the plan, so that the run can say so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from netdiag.model import IptablesRule, NamespaceState, Snapshot
from netdiag.model.facts import MAX_NAMESERVERS, has_own_resolv_conf, primary_address
from netdiag.model.index import SnapshotIndex, index
from netdiag.probe.scope import outside_reason, reach

MAX_PATHS = 16  # path MTU sweeps per run: pairs grow with the square of the namespaces
MAX_PORTS = 32  # published ports per run (each costs two connects)
EMBEDDED_DNS = "127.0.0.11"
SPECIAL_USE_NAME = "invalid."  # RFC 6761: never delegated, answered NXDOMAIN locally


@dataclass(frozen=True, slots=True)
class Task:
    """One probe to run from one namespace."""

    kind: str  # path_mtu, port or dns
    namespace: int
    address: str
    port: int = 0
    purpose: str = ""
    query: str = ""  # the name a DNS probe asks

    @property
    def target(self) -> str:
        return f"{self.address}:{self.port}" if self.port else self.address


@dataclass(frozen=True, slots=True)
class Plan:
    tasks: tuple[Task, ...]
    left_out: tuple[tuple[Task, str], ...] = ()  # (task, why it is not sent)


def plan(snapshot: Snapshot, focus: Iterable[int] = (), max_paths: int = MAX_PATHS,
         max_ports: int = MAX_PORTS, external: bool = False) -> Plan:
    """The probes worth sending: from the focus namespaces (all, when there is no focus), to
    targets inside the snapshot (anywhere, with `external`)."""
    topology = index(snapshot)
    focus = frozenset(focus)
    sources = [s for s in snapshot.namespaces if not focus or s.ref.id in focus]
    wanted = list(_path_tasks(topology, sources, max_paths))
    ports = [task for state in sources for task in _port_tasks(state)]
    wanted += ports[:2 * max_ports]
    for state in sources:
        if not has_own_resolv_conf(state):  # the host's servers, which it never asks
            continue
        name = _own_name(state)
        wanted += [Task("dns", state.ref.id, server, query=name)
                   for server in state.dns.nameservers[:MAX_NAMESERVERS]]
    tasks, left_out = [], []
    for task in wanted:
        why = "" if external else outside_reason(topology, task.namespace, task.address)
        if not why and task.kind == "dns" and not task.query:
            if task.address == EMBEDDED_DNS and not external:
                why = "Docker's resolver forwards every name but its containers' upstream"
            task = replace(task, query=SPECIAL_USE_NAME)
        if why:
            left_out.append((task, why))
        else:
            tasks.append(task)
    return Plan(tuple(tasks), tuple(left_out))


def _own_name(state: NamespaceState) -> str:
    """The name a resolver serving this namespace knows without asking upstream."""
    ref = state.ref
    return f"{ref.container or ref.node}." if ref.container or ref.node else ""




def _path_tasks(topology: SnapshotIndex, sources: list[NamespaceState], max_paths: int):
    """A sweep from each source to each namespace it plausibly reaches (that namespace's
    primary address), once per pair, those fewest routers away first."""
    addresses = {state.ref.id: primary_address(state) for state in topology.snapshot.namespaces}
    found: dict[frozenset[int], tuple[int, int, Task]] = {}
    for order, source in enumerate(sources):
        for target, address in addresses.items():
            pair = frozenset((source.ref.id, target))
            if len(pair) < 2 or pair in found or not address:
                continue
            reached = reach(topology, source.ref.id, address)
            if reached is None or reached[0] != target:
                continue  # no route onward, or the address repeats in another namespace
            found[pair] = (reached[1], order, Task("path_mtu", source.ref.id, address))
    nearest = sorted(found.values(), key=lambda item: item[:2])
    return [task for _, _, task in nearest[:max_paths]]


def _port_tasks(state: NamespaceState) -> list[Task]:
    """Each published TCP port (a DNAT rule with a single --dport) and its target."""
    tasks: list[Task] = []
    own = primary_address(state)
    for rule in state.firewall.iptables_rules:
        published = _published_port(rule)
        if published is None:
            continue
        target, target_port, host_port = published
        tasks.append(Task("port", state.ref.id, target, target_port, "target"))
        address = _published_address(rule, own)
        if address:
            tasks.append(Task("port", state.ref.id, address, host_port, "published"))
    return list(dict.fromkeys(tasks))


def _published_port(rule: IptablesRule) -> tuple[str, int, int] | None:
    """(target address, target port, host port) of an IPv4 TCP DNAT rule, else None."""
    if rule.table != "nat" or rule.family != 4 or rule.target != "DNAT":
        return None
    protocol, dport = rule.match("protocol"), rule.match("dport")
    target = rule.target_option("to-destination")
    if not target or protocol is None or protocol.value != "tcp" or dport is None \
            or not dport.value.isdigit():
        return None
    address, _, port = target.partition(":")
    port = port or dport.value
    if not port.isdigit():
        return None  # a port range: one connect would not say much
    return address, int(port), int(dport.value)


def _published_address(rule: IptablesRule, own: str) -> str:
    """Where the host port listens: the rule's single destination address, else our own."""
    destination = rule.match("destination")
    if destination is None or destination.negated:
        return own
    address, _, length = destination.value.partition("/")
    return address if length in ("", "32") else own
