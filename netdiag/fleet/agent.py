"""`netdiag agent`: this machine's snapshot, kept fresh in etcd for the fleet view.

The agent reads the machine (the same collection as `netdiag snapshot`) at start, again soon
after the kernel changes — netlink events from the machine's own namespace, settled for
`debounce` seconds so that one `docker run` is one snapshot — and at least every `interval`
seconds. Reading and publishing are apart: a publisher thread takes the latest snapshot from a
one-slot mailbox, so a slow or absent etcd never holds up the reading, and snapshots it could
not publish in time are replaced by newer ones rather than queued.

The publisher holds a lease of `ttl` seconds (three intervals, at least ten) and refreshes it
every third of that; every key of the node is on it (netdiag/fleet/store.py), so a machine
whose agent dies disappears from the fleet when the lease runs out. When etcd cannot be
reached it retries with a growing pause (half a second up to five); once it answers again, the
lease is renewed — or, if etcd forgot it, a new one granted — and the latest snapshot is
published again at once. An agent that is stopped (SIGTERM, SIGINT) withdraws its node.

A machine is, by default, the root namespace and everything discovered from it. With
`host_ns`, it is that namespace (taken as the machine's own, labelled `host`), the Docker
engines whose daemon runs in it, their containers' and networks' namespaces, and the ones
named in `also`: how the tests run several machines, each with its agent and its engine, on
one box.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from netdiag import __version__, watch
from netdiag.collect import collect_snapshot, discovery, docker, namespace_refs
from netdiag.errors import EXIT_COLLECT, NetdiagError
from netdiag.fleet.store import FleetStore, Meta, StoreUnavailable, blob_of, check_node_name
from netdiag.model import SCHEMA_VERSION, NamespaceRef, NsKind, Snapshot
from netdiag.model.docker import DockerEngine
from netdiag.model.serialize import encode

MIN_TTL = 10
RETRY_FIRST, RETRY_MOST = 0.5, 5.0
SETTLE_MOST = 5  # debounces: a kernel that never stops changing is read at least this often
# One collecting thread: the agent runs threads, so its reads never fork (collect/fanout.py),
# and within one process more threads only take turns on the GIL and the kernel's locks —
# 101 namespaces cost 0.24 s of CPU with four, 0.12 s with one, and took no less time. The
# agent reads every interval when nothing changes: that read is its idle cost.
READ_WORKERS = 1
# Without --interval, the agent reads every DEFAULT_INTERVAL seconds when nothing changes, or
# less often on a big host: so that those reads take at most IDLE_SHARE of one core (a host of
# 1000 containers costs seconds of CPU a read: 30 s apart, 10% of a core). Changes are read
# within the debounce all the same; meta.interval says the interval of the moment.
DEFAULT_INTERVAL = 30.0
IDLE_SHARE = 0.01


@dataclass(frozen=True, slots=True)
class AgentConfig:
    etcd: str
    node: str
    interval: float = 30.0
    ttl: int = 0  # 0: max(MIN_TTL, 3 × interval)
    history: int = 3  # snapshots kept besides the latest
    host_ns: str = ""  # a namespace reference; "": the root namespace and all it shows
    also: tuple[str, ...] = ()  # with host_ns: more namespaces that are part of the machine
    engines: tuple[str, ...] = ()  # --docker URLs
    debounce: float = 1.0
    store_timeout: float = 5.0
    verbose: bool = False
    idle_share: float = 0.0  # > 0: the interval stretches so idle reads take at most this

    @property
    def lease_ttl(self) -> int:
        return self.ttl or max(MIN_TTL, math.ceil(3 * self.interval))


def node_name(given: str, host_ns: str) -> str:
    """The node's stable identity: `--node`, else the `--host-ns` namespace's name, else the
    first 12 characters of /etc/machine-id, else the host name."""
    if given:
        return check_node_name(given)
    if host_ns:
        return check_node_name(host_ns.rpartition("/")[2].replace(":", "-"))
    try:
        machine_id = Path("/etc/machine-id").read_text().strip()
    except OSError:
        machine_id = ""
    if machine_id:
        return machine_id[:12]
    import socket

    return check_node_name(socket.gethostname())


def read_machine(host_ns: str, engines: tuple[str, ...], also: tuple[str, ...] = ()
                 ) -> Snapshot:
    """This machine's snapshot (see the module's docstring for what the machine is; `also`
    adds namespaces to a `host_ns` machine)."""
    intent = docker.read(engines)
    found = discovery.discover(engines=intent.engines)
    if not host_ns:
        return collect_snapshot(found, intent=intent, workers=READ_WORKERS)
    host = namespace_refs.resolve(host_ns, found)
    own = tuple(e for e in intent.engines if e.namespace == host.id)
    refs = [replace(host, kind=NsKind.HOST, label="host")] + machine_namespaces(host, found,
                                                                                own)
    named = {ref.id for ref in refs}
    refs += [ref for ref in namespace_refs.resolve_all(also, found) if ref.id not in named]
    return collect_snapshot(refs, intent=docker.Intent(own, intent.gaps), workers=READ_WORKERS)


def machine_namespaces(host: NamespaceRef, found: list[NamespaceRef],
                       engines: tuple[DockerEngine, ...]) -> list[NamespaceRef]:
    """The namespaces of the engines running in `host`: their containers' and the ones
    under their exec-root (sandboxes, overlay namespaces)."""
    netns_ids = {c.netns for e in engines for c in e.containers if c.netns}
    folders = tuple(f"{e.exec_root.rstrip('/')}/netns/" for e in engines if e.exec_root)
    return [ref for ref in found if ref.id != host.id and
            (ref.id in netns_ids or (folders and ref.path.startswith(folders)))]


def finding_counts(snapshot: Snapshot) -> dict[str, int]:
    """What `check` finds on this machine alone, by severity (for `fleet ls`)."""
    from netdiag.checks import engine
    from netdiag.findings.rule import CheckConfig

    counts: dict[str, int] = {}
    for finding in engine.run(snapshot, CheckConfig()).findings:
        counts[finding.severity.value] = counts.get(finding.severity.value, 0) + 1
    return counts


class Publisher(threading.Thread):
    """Publishes the latest snapshot offered, and keeps the node's lease alive."""

    def __init__(self, store: FleetStore, config: AgentConfig, log: Callable[[str], None]):
        super().__init__(name="netdiag-publisher", daemon=True)
        self.store, self.config, self.log = store, config, log
        self.stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._offered: tuple[Snapshot, str, float, dict[str, int]] | None = None
        self._latest: tuple[Snapshot, str, float, dict[str, int]] | None = None
        self.lease = 0
        self.sequence = 0
        self.interval = config.interval  # the one of the moment (AgentConfig.idle_share)
        self.failure = ""  # why the thread ended, if it did on its own (a bug)

    def offer(self, snapshot: Snapshot, reason: str, read_seconds: float,
              findings: dict[str, int]) -> None:
        with self._lock:
            self._offered = (snapshot, reason, read_seconds, findings)
        self._wake.set()

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - said once, and the agent stops on it
            self.failure = f"{type(exc).__name__}: {exc}"

    def _run(self) -> None:
        pause = RETRY_FIRST
        outage = ""  # the error of the outage going on, "" when etcd answers
        dirty = False  # the latest snapshot is not in etcd yet
        keepalive = self.config.lease_ttl / 3
        next_refresh = time.monotonic() + keepalive
        while not self.stop.is_set():
            self._wake.wait(timeout=max(0.0, next_refresh - time.monotonic()))
            self._wake.clear()
            if self.stop.is_set():
                break
            with self._lock:
                offered, self._offered = self._offered, None
            if offered is not None:
                self._latest, dirty = offered, True
            try:
                if self.lease and (outage or time.monotonic() >= next_refresh):
                    if not self.store.refresh(self.lease):
                        self.log(f"etcd forgot lease {self.lease:x}: granting a new one")
                        self.lease = 0
                    next_refresh = time.monotonic() + keepalive
                if not self.lease:
                    self.lease = self.store.grant(self.config.lease_ttl)
                    next_refresh = time.monotonic() + keepalive
                    dirty = True  # whatever was published went with the old lease
                if outage:
                    dirty = True  # etcd may have lost what it had (a restore, a new member)
                if dirty and self._latest is not None:
                    snapshot, reason, seconds, findings = self._latest
                    self._publish(snapshot, "reconnect" if outage and offered is None
                                  else reason, seconds, findings)
                    dirty = False
                if outage:
                    self.log(f"etcd at {self.store.url} answers again: republished")
                    outage = ""
                pause = RETRY_FIRST
            except StoreUnavailable as exc:
                if str(exc) != outage:
                    self.log(f"{exc}; retrying (the latest snapshot waits for etcd)")
                outage = str(exc) or "etcd failed"
                next_refresh = time.monotonic() + pause
                pause = min(RETRY_MOST, pause * 2)

    def _publish(self, snapshot: Snapshot, reason: str, read_seconds: float,
                 findings: dict[str, int]) -> None:
        data = encode(snapshot)
        blob, digest, parts = blob_of(data)
        self.sequence += 1
        meta = Meta(node=self.config.node, sequence=self.sequence,
                    slot=self.sequence % (self.config.history + 1), parts=parts,
                    sha256=digest, size=len(data), stored=len(blob),
                    published_at=_now(), created_at=snapshot.created_at,
                    interval=self.interval, agent_version=__version__,
                    schema_version=SCHEMA_VERSION, hostname=snapshot.host.hostname,
                    kernel=snapshot.host.kernel, reason=reason,
                    namespaces=len(snapshot.namespaces), findings=findings,
                    read_seconds=round(read_seconds, 3))
        self.store.publish(meta, blob, self.lease)
        if self.config.verbose:
            self.log(f"published #{meta.sequence} ({meta.reason}: {meta.namespaces} "
                     f"namespaces, {meta.size // 1024} KiB as {meta.stored // 1024} KiB, read "
                     f"in {read_seconds:.2f} s)")

    def close(self, timeout: float) -> None:
        """Stop, and withdraw the node: it leaves the fleet now (a clean stop)."""
        self.stop.set()
        self._wake.set()
        self.join(timeout=timeout)
        if self.lease:
            try:
                self.store.revoke(self.lease)
            except StoreUnavailable as exc:
                self.log(f"{exc}: the node goes when its lease runs out")


class Agent:
    def __init__(self, config: AgentConfig, log: Callable[[str], None] | None = None):
        self.config = config
        self.log = log or (lambda line: print(f"netdiag agent {config.node}: {line}",
                                              file=sys.stderr, flush=True))
        self.stop = threading.Event()
        self._changed = threading.Event()
        self.publisher = Publisher(FleetStore(config.etcd, config.store_timeout), config, self.log)

    def run(self) -> int:
        config = self.config
        host_path = namespace_refs.resolve(config.host_ns).path if config.host_ns \
            else "/proc/1/ns/net"
        self.log(f"publishing to {self.publisher.store.url} every {config.interval:g} s and on "
                 f"change (lease {config.lease_ttl} s)")
        self.publisher.start()
        watcher = threading.Thread(target=self._watch, args=(host_path,), daemon=True,
                                   name="netdiag-watch")
        watcher.start()
        reason = "start"
        try:
            while not self.stop.is_set() and self.publisher.is_alive():
                started = time.monotonic()
                interval = self._read_and_offer(reason)
                reason = self._wait(started + interval)
        finally:
            self.publisher.close(timeout=config.store_timeout * 2)
        if self.publisher.failure:
            self.log(f"the publisher failed ({self.publisher.failure}): stopping")
            return EXIT_COLLECT
        return 0

    def _read_and_offer(self, reason: str) -> float:
        """Read, and offer the snapshot; the seconds until the next read if nothing changes
        (the interval, stretched by idle_share by what this read cost)."""
        started, cpu = time.monotonic(), time.process_time()
        try:
            snapshot = read_machine(self.config.host_ns, self.config.engines, self.config.also)
            findings = finding_counts(snapshot)
        except NetdiagError as exc:
            self.log(f"cannot read the machine: {exc}")
            return self.config.interval
        interval = self.config.interval
        if self.config.idle_share:
            interval = max(interval, (time.process_time() - cpu) / self.config.idle_share)
        self.publisher.interval = interval
        self.publisher.offer(snapshot, reason, time.monotonic() - started, findings)
        return interval

    def _wait(self, deadline: float) -> str:
        """Until the interval is over ("interval") or the kernel changed and settled
        ("change")."""
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return "interval"
            if self._changed.wait(timeout=min(left, 0.5)):
                self._settle()
                return "change"
        return "stop"

    def _settle(self) -> None:
        for _ in range(SETTLE_MOST):
            self._changed.clear()
            if self.stop.wait(self.config.debounce) or not self._changed.is_set():
                return

    def _watch(self, path: str) -> None:
        try:
            watch.watch(path, self._changed.set, self.stop.is_set, settled_only=True)
        except NetdiagError as exc:
            self.log(f"no change events ({exc}): reading every {self.config.interval:g} s")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
