"""Many nodes' snapshots → one fleet snapshot, which every rule, `path` and the lab read.

Each node's namespaces keep their state and get their node: `NamespaceRef.machine`, and a
label that starts with it (`m1/host`, `m1/web`), so findings and paths name the node. Their
ids are renumbered, because namespace inodes repeat across machines (every host's own
namespace is 4026531840): node number k (in name order, from 1) takes k·2³² + inode, and every
field that refers to a namespace (veth peers, gaps, probes, Docker's engines and containers)
is renumbered with it. A node whose snapshot this netdiag cannot read (a newer schema, a
damaged record) is left out with a gap that says why, and listed in `machines` with that
problem (so no rule takes its absence for a node that left); the others still merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from netdiag import __version__
from netdiag.errors import CorruptSnapshot
from netdiag.fleet.store import Meta
from netdiag.model import (
    READABLE_VERSIONS,
    Gap,
    HostInfo,
    NamespaceState,
    NsKind,
    Probes,
    Snapshot,
)
from netdiag.model.docker import DockerEngine
from netdiag.model.fleet import Machine
from netdiag.model.serialize import loads

ID_STRIDE = 1 << 32  # namespace inodes are 32-bit


@dataclass(frozen=True, slots=True)
class Published:
    """One node's latest record and its snapshot's JSON (None when it could not be read)."""

    meta: Meta
    data: bytes | None
    problem: str = ""


def merge(published: Sequence[Published], now: datetime | None = None) -> Snapshot:
    now = now or datetime.now(UTC)
    namespaces: list[NamespaceState] = []
    gaps: list[Gap] = []
    engines: list[DockerEngine] = []
    labs = []
    machines: list[Machine] = []
    probes: list[Probes] = []
    for number, item in enumerate(sorted(published, key=lambda p: p.meta.node), start=1):
        meta = item.meta
        snapshot, problem = _load(item)
        if snapshot is None:
            gaps.append(Gap(collector="fleet", kind="unreadable",
                            message=f"node {meta.node}: {problem}"))
            machines.append(Machine(name=meta.node, hostname=meta.hostname,
                                    agent_version=meta.agent_version,
                                    schema_version=meta.schema_version,
                                    published_at=meta.published_at, interval=meta.interval,
                                    sequence=meta.sequence, problem=problem))
            continue
        offset = number * ID_STRIDE
        renumber = lambda ns_id, offset=offset: None if ns_id is None else ns_id + offset
        node_states = [_state(state, meta.node, renumber) for state in snapshot.namespaces]
        namespaces += node_states
        gaps += [replace(gap, namespace=renumber(gap.namespace),
                         message=f"{meta.node}: {gap.message}") for gap in snapshot.gaps]
        engines += [_engine(engine, renumber) for engine in snapshot.docker]
        labs += snapshot.labs
        if snapshot.probes is not None:
            probes.append(_probes(snapshot.probes, renumber))
        host = next((s.ref.id for s in node_states if s.ref.kind is NsKind.HOST), 0)
        machines.append(Machine(
            name=meta.node, hostname=snapshot.host.hostname, kernel=snapshot.host.kernel,
            agent_version=meta.agent_version or snapshot.host.netdiag_version,
            schema_version=meta.schema_version, published_at=meta.published_at,
            created_at=meta.created_at or snapshot.created_at, interval=meta.interval,
            sequence=meta.sequence, host_namespace=host))
    merged_probes = None
    if probes:
        merged_probes = Probes(path_mtu=tuple(p for ps in probes for p in ps.path_mtu),
                               ports=tuple(p for ps in probes for p in ps.ports),
                               dns=tuple(p for ps in probes for p in ps.dns))
    return Snapshot(created_at=now.isoformat(timespec="milliseconds"),
                    host=HostInfo(hostname=f"fleet of {len(machines)} nodes",
                                  netdiag_version=__version__),
                    namespaces=tuple(namespaces), gaps=tuple(gaps), probes=merged_probes,
                    docker=tuple(engines), labs=tuple(labs), machines=tuple(machines))


def _load(item: Published) -> tuple[Snapshot | None, str]:
    meta = item.meta
    if item.data is None:
        return None, item.problem or "no snapshot stored"
    if meta.schema_version and meta.schema_version not in READABLE_VERSIONS:
        return None, (f"its agent (netdiag {meta.agent_version or '?'}) publishes snapshot "
                      f"schema {meta.schema_version}, and this netdiag ({__version__}) reads "
                      f"{', '.join(map(str, READABLE_VERSIONS))}: run a netdiag at least as "
                      "new as the agents'")
    try:
        snapshot = loads(item.data)
    except CorruptSnapshot as exc:
        return None, str(exc)
    if snapshot.machines:
        return None, "it published a fleet snapshot, not its own"
    return snapshot, ""


def _state(state: NamespaceState, node: str, renumber) -> NamespaceState:
    ref = state.ref
    ref = replace(ref, id=renumber(ref.id), machine=node, label=f"{node}/{ref.display}")
    links = tuple(replace(link, peer_namespace=renumber(link.peer_namespace))
                  if link.peer_namespace is not None else link for link in state.links)
    return replace(state, ref=ref, links=links)


def _engine(engine: DockerEngine, renumber) -> DockerEngine:
    containers = tuple(replace(c, netns=renumber(c.netns) if c.netns else 0)
                       for c in engine.containers)
    return replace(engine, namespace=renumber(engine.namespace) if engine.namespace else 0,
                   containers=containers)


def _probes(probes: Probes, renumber) -> Probes:
    return Probes(path_mtu=tuple(replace(p, namespace=renumber(p.namespace))
                                 for p in probes.path_mtu),
                  ports=tuple(replace(p, namespace=renumber(p.namespace)) for p in probes.ports),
                  dns=tuple(replace(p, namespace=renumber(p.namespace)) for p in probes.dns))
