"""Apply the typed steps of a Repair plan to the kernel.

Each step names its namespace by id; the caller gives the paths of the namespaces the executor
may enter (`paths`), and a step naming any other namespace is refused — `repair` only changes
what the user pointed it at. The lab builder injects its faults through the same steps. Links, routes, neighbours and FDB entries go through
netlink (pyroute2) inside the namespace; iptables rules through the iptables program, which is
the interface iptables has; sysctls through /proc/sys as seen from inside the namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyroute2.netlink.exceptions import NetlinkError

from netdiag import netns
from netdiag.checks.api import (AddFdbEntry, AddIptablesRule, AddRoute, DeleteFdbEntry,
                                DeleteIptablesRule, DeleteNeighbour, DeleteRoute, ManualStep,
                                ReplaceNeighbour, SetChainPolicy, SetLinkUp, SetMtu, SetSysctl,
                                Step)
from netdiag.errors import DriverError, NetdiagError, NotFound, UsageError
from netdiag.model import NamespaceRef, Snapshot

NUD_PERMANENT = 0x80
NTF_SELF = 0x02


@dataclass(frozen=True, slots=True)
class StepResult:
    step: Step
    applied: bool
    message: str = ""  # why it was not applied, or what went wrong


def namespace_name(ref: NamespaceRef) -> str:
    """The name to use in the `ip netns exec NAME` form of a command, if there is one."""
    return ref.name if ref.kind.value in ("named", "lab") else ""


def describe(step: Step, snapshot: Snapshot) -> str:
    """The equivalent shell command, for dry runs and logs."""
    ns = snapshot.namespace(step.namespace) if step.namespace is not None else None
    if ns is not None and not namespace_name(ns.ref):
        return f"nsenter --net={ns.ref.path} {step.command()}"
    return step.command(namespace_name(ns.ref) if ns else "")


def allowed_paths(snapshot: Snapshot, namespaces: Iterable[int]) -> dict[int, str]:
    """{id: path} of the snapshot's namespaces among `namespaces`: what `apply_steps` takes."""
    wanted = set(namespaces)
    return {ns.ref.id: ns.ref.path for ns in snapshot.namespaces if ns.ref.id in wanted}


def apply_steps(steps: Iterable[Step], paths: Mapping[int, str]) -> list[StepResult]:
    """Apply `steps` in order; stop at the first failure (later steps may depend on it).

    `paths` maps the ids of the namespaces that may be changed to the paths to enter them by.
    """
    results = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="netdiag-repair") as worker:
        for step in steps:
            result = worker.submit(_apply_one, step, paths).result()
            results.append(result)
            if not result.applied and not isinstance(step, ManualStep):
                break
    return results


def _apply_one(step: Step, paths: Mapping[int, str]) -> StepResult:
    if isinstance(step, ManualStep):
        return StepResult(step, False, "manual step: not applied")
    path = paths.get(step.namespace)
    if path is None:
        return StepResult(step, False, "namespace outside the ones repair was pointed at")
    try:
        with netns.entered(path):
            _APPLY[type(step)](step)
    except NetdiagError as exc:
        return StepResult(step, False, str(exc))
    except NetlinkError as exc:
        return StepResult(step, False, f"kernel refused: {exc.args[-1] if exc.args else exc}")
    return StepResult(step, True)


def _ifindex(ipr, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise NotFound(f"no interface {name}")
    return found[0]


def _with_ipr(action: Callable[..., None]) -> Callable[[Step], None]:
    def run(step: Step) -> None:
        from pyroute2 import IPRoute  # the pyroute2 package costs 0.1 s to import

        with IPRoute() as ipr:  # opened inside the namespace: bound to it
            action(ipr, step)
    return run


def _set_mtu(ipr, step: SetMtu) -> None:
    ipr.link("set", index=_ifindex(ipr, step.link), mtu=step.mtu)


def _set_up(ipr, step: SetLinkUp) -> None:
    ipr.link("set", index=_ifindex(ipr, step.link), state="up")


def _route_args(ipr, step: AddRoute | DeleteRoute) -> dict:
    args: dict = {"dst": "0.0.0.0/0" if step.dst == "default" else step.dst, "table": step.table}
    if step.gateway:
        args["gateway"] = step.gateway
    if step.dev:
        args["oif"] = _ifindex(ipr, step.dev)
    if step.metric:
        args["priority"] = step.metric
    return args


def _add_route(ipr, step: AddRoute) -> None:
    ipr.route("add", **_route_args(ipr, step))


def _delete_route(ipr, step: DeleteRoute) -> None:
    # Like `ip route del`: scope "nowhere" and protocol 0 match a route of any scope/protocol.
    ipr.route("del", scope=255, proto=0, **_route_args(ipr, step))


def _fdb_args(ipr, step: AddFdbEntry | DeleteFdbEntry) -> dict:
    args: dict = {"ifindex": _ifindex(ipr, step.dev), "lladdr": step.mac, "flags": NTF_SELF}
    if step.dst:
        args["dst"] = step.dst
    return args


def _add_fdb(ipr, step: AddFdbEntry) -> None:
    ipr.fdb("append", state=NUD_PERMANENT, **_fdb_args(ipr, step))


def _delete_fdb(ipr, step: DeleteFdbEntry) -> None:
    ipr.fdb("del", **_fdb_args(ipr, step))


def _delete_neighbour(ipr, step: DeleteNeighbour) -> None:
    ipr.neigh("del", dst=step.address, ifindex=_ifindex(ipr, step.dev))


def _replace_neighbour(ipr, step: ReplaceNeighbour) -> None:
    ipr.neigh("replace", dst=step.address, lladdr=step.mac, ifindex=_ifindex(ipr, step.dev),
              state=NUD_PERMANENT)


def _set_sysctl(step: SetSysctl) -> None:
    if not step.name.startswith("net.") or ".." in step.name:
        raise UsageError(f"refusing to set {step.name}: only net.* sysctls are repaired")
    # Interface names may hold dots (eth0.10); they are the fourth component of conf keys.
    parts = step.name.split(".")
    if len(parts) > 5 and parts[2] == "conf":
        parts = parts[:3] + [".".join(parts[3:-1]), parts[-1]]
    path = "/proc/sys/" + "/".join(parts)
    try:
        with open(path, "w") as handle:  # /proc/sys/net is per namespace for the writing thread
            handle.write(step.value)
    except FileNotFoundError:
        raise NotFound(f"no sysctl {step.name} in this namespace") from None
    except OSError as exc:
        raise DriverError(f"cannot set {step.name}: {exc.strerror}") from None


def _iptables(step: AddIptablesRule | DeleteIptablesRule | SetChainPolicy) -> None:
    tool = "iptables" if step.family == 4 else "ip6tables"
    if isinstance(step, AddIptablesRule):
        where = ["-I", step.chain, str(step.position)] if step.position else ["-A", step.chain]
        argv = [tool, "-w", "-t", step.table, *where, *step.args]
    elif isinstance(step, DeleteIptablesRule):
        argv = [tool, "-w", "-t", step.table, "-D", step.chain, *step.args]
    else:
        argv = [tool, "-w", "-t", step.table, "-P", step.chain, step.policy]
    netns.run_helper(argv)


_APPLY: dict[type, Callable[[Step], None]] = {
    SetMtu: _with_ipr(_set_mtu),
    SetLinkUp: _with_ipr(_set_up),
    AddRoute: _with_ipr(_add_route),
    DeleteRoute: _with_ipr(_delete_route),
    AddFdbEntry: _with_ipr(_add_fdb),
    DeleteFdbEntry: _with_ipr(_delete_fdb),
    DeleteNeighbour: _with_ipr(_delete_neighbour),
    ReplaceNeighbour: _with_ipr(_replace_neighbour),
    SetSysctl: _set_sysctl,
    AddIptablesRule: _iptables,
    DeleteIptablesRule: _iptables,
    SetChainPolicy: _iptables,
}
