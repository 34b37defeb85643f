"""Many machines: agents publish their snapshots into etcd (agent.py, store.py), and the fleet
commands read them back merged into one snapshot (merge.py) for every rule to judge.

`gather` is the one way to read the fleet: each node's latest record and snapshot, read a few
at a time; a snapshot replaced while it was being read is read again once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from netdiag.errors import CorruptSnapshot
from netdiag.fleet.merge import Published, merge
from netdiag.fleet.store import FleetStore, Meta
from netdiag.model import Gap, Snapshot

READERS = 8


def gather(url: str, timeout: float = 5.0, nodes: tuple[str, ...] = ()) -> Snapshot:
    """The fleet at `url` as one snapshot (only `nodes`, when given)."""
    store = FleetStore(url, timeout)
    metas, unreadable = store.nodes()
    metas = [m for m in metas if not nodes or m.node in nodes]
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="netdiag-fleet") as pool:
        published = list(pool.map(lambda meta: _read(store, meta), metas))
    merged = merge(published)
    gaps = tuple(Gap(collector="fleet", kind="unreadable", message=text) for text in unreadable)
    return replace(merged, gaps=merged.gaps + gaps) if gaps else merged


def _read(store: FleetStore, meta: Meta) -> Published:
    try:
        return Published(meta, store.snapshot_bytes(meta))
    except CorruptSnapshot:
        newer = store.node(meta.node)  # replaced while we read it: take the newer one
    if newer is None:
        return Published(meta, None, "the node left the fleet while it was being read")
    try:
        return Published(newer, store.snapshot_bytes(newer))
    except CorruptSnapshot as exc:
        return Published(newer, None, str(exc))
