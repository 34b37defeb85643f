"""Carry out repairs — the one place where netdiag's repair policy is enforced.

Callers (`netdiag repair`, the TUI) say only what the user asked: which namespaces they
pointed at, and whether unsafe repairs are allowed. `Policy.for_namespaces` turns that into
what may change: the namespaces pointed at and those on their paths (Topology.on_paths_of),
because a shared property — an overlay's MTU, both ends of a veth — has to be repaired on
every side at once or not at all. Before any step runs, `refusal` decides for the whole
repair:

* a *manual* repair is never applied;
* an *unsafe* one only when the policy allows unsafe repairs;
* a repair with a step in a namespace outside the policy's is refused whole (half a repair
  of a shared property is worse than none);
* a *safe* step that removes something the snapshot shows in use (a forwarding entry for a
  MAC that a live endpoint of the overlay holds behind that VTEP, a DNAT rule whose target
  answers) is refused: "safe" must never cut live traffic.

A repair updates the intent it repairs: `with_intent` adds to a plan that changes the MTU of
an interface netdiag's drivers made (an endpoint in their store) the step that records the new
MTU there (RecordNetworkMtu), so the drivers' own checks (`lab status`, `net check`) agree
with `check` and the network's next endpoint gets the repaired MTU. It runs last, once every
kernel step is applied.

`changes` names every namespace a repair changes, for printing before it is applied. Steps
are carried out (netdiag/repair/apply.py) in a worker thread that enters each namespace; the
caller's thread never changes namespace. The lab builder injects its faults with `inject`,
through the same steps, in namespaces it made itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from netdiag import netns
from netdiag.errors import DriverError, NetdiagError
from netdiag.findings.repair import (
    DeleteFdbEntry,
    DeleteIptablesRule,
    ManualStep,
    RecordNetworkMtu,
    Repair,
    RepairStep,
    Safety,
    SetMtu,
)
from netdiag.model import NamespaceRef, Snapshot
from netdiag.repair.apply import apply


@dataclass(frozen=True, slots=True)
class StepResult:
    step: RepairStep
    applied: bool
    message: str = ""  # why it was not applied, or what went wrong
    error: NetdiagError | None = None  # what went wrong when it was tried and failed


@dataclass(frozen=True, slots=True)
class Policy:
    may_change: frozenset[int]  # ids of the namespaces repairs may change
    unsafe: bool = False  # whether unsafe repairs may be applied

    @staticmethod
    def for_namespaces(snapshot: Snapshot, chosen: Iterable[int], unsafe: bool = False
                       ) -> Policy:
        """The namespaces the user pointed at, and those on their paths."""
        from netdiag.model.index import index

        return Policy(index(snapshot).on_paths_of(frozenset(chosen)), unsafe)


def namespace_name(ref: NamespaceRef) -> str:
    """The name to use in the `ip netns exec NAME` form of a command, if there is one."""
    return ref.name if ref.kind.value in ("named", "lab") else ""


def describe(step: RepairStep, snapshot: Snapshot) -> str:
    """The equivalent shell command, for dry runs and logs."""
    ns = snapshot.namespace(step.namespace) if step.namespace is not None else None
    if ns is not None and not namespace_name(ns.ref):
        return f"nsenter --net={ns.ref.path} {step.command()}"
    return step.command(namespace_name(ns.ref) if ns else "")


def changes(repair: Repair) -> frozenset[int]:
    """Every namespace the repair's steps change."""
    return frozenset(step.namespace for step in repair.steps
                     if not isinstance(step, ManualStep) and step.namespace is not None)


def refusal(repair: Repair, snapshot: Snapshot, policy: Policy) -> str:
    """Why the policy does not let `repair` be applied ("" when it does)."""
    if repair.safety is Safety.MANUAL:
        return "a manual repair: carry out its steps by hand"
    if repair.safety is Safety.UNSAFE and not policy.unsafe:
        return "an unsafe repair: needs --unsafe"
    outside = changes(repair) - policy.may_change
    if outside:
        names = ", ".join(sorted(_label(snapshot, ns_id) for ns_id in outside))
        return f"it would change {names}, outside the namespaces this repair may change"
    if repair.safety is Safety.SAFE:
        for step in repair.steps:
            why = in_use(step, snapshot)
            if why:
                return f"not safe after all: {why}"
    return ""


def execute(repair: Repair, snapshot: Snapshot, policy: Policy,
            done: Iterable[RepairStep] = ()) -> list[StepResult]:
    """Apply `repair` if the policy allows it; steps in `done` (applied for another finding)
    are not applied twice. Stops at the first failure (later steps may depend on it)."""
    why = refusal(repair, snapshot, policy)
    if why:
        return [StepResult(step, False, why) for step in repair.steps]
    repair = with_intent(repair, snapshot)
    done = set(done)
    paths = {state.ref.id: state.ref.path for state in snapshot.namespaces}
    todo = [step for step in repair.steps if not isinstance(step, ManualStep)]
    results = [StepResult(step, True, "applied for another finding")
               for step in todo if step in done]
    results += _apply([step for step in todo if step not in done], paths)
    return results


def inject(steps: Iterable[RepairStep], paths: Mapping[int, str]) -> list[StepResult]:
    """Apply steps in namespaces the caller made itself (the lab's faults): no policy."""
    return _apply(list(steps), paths)


def _apply(steps: list[RepairStep], paths: Mapping[int, str]) -> list[StepResult]:
    results: list[StepResult] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="netdiag-repair") as worker:
        worker.submit(int).result()  # its thread first: as in lab/build.py's `up`
        for step in steps:
            result = worker.submit(_apply_one, step, paths).result()
            results.append(result)
            if not result.applied:
                break
    return results


def _apply_one(step: RepairStep, paths: Mapping[int, str]) -> StepResult:
    path = paths.get(step.namespace)
    if path is None and not isinstance(step, RecordNetworkMtu):
        return StepResult(step, False, "its namespace is not in the snapshot")
    try:
        if path is None:  # a store: a file, or an etcd reached from where netdiag runs
            apply(step)
        else:
            with netns.entered(path):
                apply(step)
    except NetdiagError as exc:
        return StepResult(step, False, str(exc), exc)
    except OSError as exc:  # the netlink socket itself, or /proc/sys
        error = DriverError(f"failed: {exc.strerror or exc}")
        return StepResult(step, False, str(error), error)
    return StepResult(step, True)


# --- the intent a repair updates ----------------------------------------------------------------


def with_intent(repair: Repair, snapshot: Snapshot) -> Repair:
    """`repair` with a RecordNetworkMtu step for each network of netdiag's drivers whose
    endpoint interface one of its SetMtu steps changes (as it is, when there is none or it
    has them already)."""
    if any(isinstance(step, RecordNetworkMtu) for step in repair.steps):
        return repair
    records: dict[tuple[str, str], RecordNetworkMtu] = {}
    for step in repair.steps:
        if not isinstance(step, SetMtu):
            continue
        state = snapshot.namespace(step.namespace)
        if state is None or not state.ref.lab:
            continue
        for store, network, name in _networks_of(state.ref.lab, state.ref.path, step.link):
            records.setdefault((store, network), RecordNetworkMtu(store, network, name,
                                                                  step.mtu))
    if not records:
        return repair
    return replace(repair, steps=repair.steps + tuple(records.values()))


def _networks_of(lab: str, sandbox: str, ifname: str) -> list[tuple[str, str, str]]:
    """(store, network id, network name) of the lab's endpoints that are `ifname` in the
    namespace at `sandbox`; none when the lab or its store cannot be read (the kernel's
    repair still stands, and the drivers' check then says what disagrees)."""
    from netdiag.store import open_store
    from netdiag.topology import journal

    try:
        # The lab's journal, or the one of its parts (LAB@HOST) that made this namespace.
        where = next((part.store for part in (journal.load(name) for name in journal.names()
                                              if name == lab or name.startswith(f"{lab}@"))
                      if os.path.basename(sandbox) in part.nodes.values()), "")
        if not where or "://" not in where and not os.path.exists(where):
            return []  # opening a SQLite path that is gone would make an empty store
        with open_store(where) as store:
            return [(where, endpoint.network_id, store.network(endpoint.network_id).name)
                    for endpoint in store.endpoints(sandbox=sandbox)
                    if endpoint.ifname == ifname]
    except NetdiagError:
        return []


# --- what the snapshot shows in use -------------------------------------------------------------


def in_use(step: RepairStep, snapshot: Snapshot) -> str:
    """What live state `step` would cut, when it removes something in use; else ""."""
    if isinstance(step, DeleteFdbEntry) and step.dst:
        return _fdb_in_use(step, snapshot)
    if isinstance(step, DeleteIptablesRule) and "DNAT" in step.args:
        return _dnat_in_use(step, snapshot)
    return ""


def _fdb_in_use(step: DeleteFdbEntry, snapshot: Snapshot) -> str:
    """An endpoint of the same overlay holds the entry's MAC behind the entry's VTEP."""
    from netdiag.model.index import index

    topology = index(snapshot)
    vxlan = topology.link(step.namespace, step.dev)
    if vxlan is None or vxlan.vxlan is None:
        return ""
    mac = step.mac.lower()
    for member in topology.segment(step.namespace, step.dev):
        if member.namespace == step.namespace:
            continue
        link = topology.link(member.namespace, member.link)
        if link is None or link.mac.lower() != mac:
            continue
        # The holder is behind the entry's VTEP when a VXLAN device of its side of the
        # overlay has its underlay in the namespace holding that address.
        for other in topology.segment(member.namespace, member.link):
            device = topology.link(other.namespace, other.link)
            if device is None or device.vxlan is None or \
                    (other.namespace, other.link) == (step.namespace, step.dev):
                continue
            underlay = topology.underlay(other.namespace, device)
            if any(owner == underlay for owner, _ in topology.owners_of(step.dst)):
                return (f"{step.mac} is {member.link} in {_label(snapshot, member.namespace)}, "
                        f"a live endpoint behind VTEP {step.dst}")
    return ""


def _dnat_in_use(step: DeleteIptablesRule, snapshot: Snapshot) -> str:
    """The rule's target address is held, and something listens there on the target port."""
    args = list(step.args)
    if "--to-destination" not in args:
        return ""
    target = args[args.index("--to-destination") + 1]
    address, _, port = target.partition(":")
    if not port.isdigit():
        return ""
    from netdiag.model.index import index

    topology = index(snapshot)
    holder = topology.owner_seen_from(step.namespace, address)
    if holder is None:
        return ""
    state = topology.namespace(holder[0])
    protocol = args[args.index("-p") + 1] if "-p" in args else "tcp"
    for sock in state.sockets if state else ():
        if sock.protocol == protocol and sock.port == int(port) \
                and sock.address in (address, "0.0.0.0", "::"):
            return (f"{target} is served by {sock.process or 'a listener'} in "
                    f"{_label(snapshot, holder[0])}")
    return ""


def _label(snapshot: Snapshot, ns_id: int) -> str:
    state = snapshot.namespace(ns_id)
    return state.ref.display if state else f"inode:{ns_id}"
