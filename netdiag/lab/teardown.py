"""Taking a lab down: everything its journal records, in the order that keeps the journal's
promises — the lab's processes stop, its namespaces go (deleting a namespace takes its links,
addresses, routes and rules with it, so nothing inside needs undoing one by one), then what
the processes made while stopping, the resolv.conf files, the files, and the journal last.
A host part of a multi-host lab first leaves the store the hosts share.

Apart from `build` so that `lab down` and `lab status` import only the journal and the
namespaces, not the schema and the drivers a build needs.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from netdiag import netns, private_files
from netdiag.errors import DriverError, NetdiagError
from netdiag.netns import LAB_DIR
from netdiag.topology import journal as journals

STOP_GRACE = 2.0  # seconds a lab's process has to stop before SIGKILL
BuildProgress = Callable[[int, int, str], None]


@contextmanager
def underlay_lock() -> Iterator[None]:
    """This machine's lock on the labs' shared underlay switches (made by a lab's first host
    part, removed by its last), held for milliseconds."""
    private_files.make_dir(LAB_DIR, own=True)
    folder = os.open(LAB_DIR, os.O_RDONLY | os.O_CLOEXEC)  # the folder: no lock file to leave
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)


def down(name: str, progress: BuildProgress | None = None) -> list[str]:
    """Remove everything the lab's journal records. Returns what was removed (for the log)."""
    try:
        journal = journals.load(name)
    except NetdiagError:
        return []
    deleted: list[str] = []
    stopping = _terminate(journal.processes)
    unreachable = None
    if journal.host:
        # A host part leaves the shared store first, undone as built while its namespaces
        # are still there; its processes are gone before (they might write it meanwhile).
        _wait_stopped(stopping)
        try:
            removed = _leave_shared_store(journal)
        except NetdiagError as exc:  # the namespaces still go; the journal stays for a retry
            removed, unreachable = [], exc
    else:
        # Otherwise the namespaces go while the processes stop: deleting one takes its links,
        # addresses, routes and rules with it, so what the resolver would undo in each (NAT
        # rules) is gone and it skips it (NamespaceGone), instead of the wait lasting as long
        # as its undoing of every sandbox one by one.
        deleted += _delete_namespaces(journal, progress)
        _wait_stopped(stopping)
        removed = []
    # After the processes are gone, again: a namespace (an overlay sandbox) or resolv.conf
    # they made while stopping goes too.
    deleted += _delete_namespaces(journal, progress)
    for ns in dict.fromkeys(journal.namespaces + deleted):
        _remove_resolv_conf(ns)
    removed = [f"process {process.pid}" for process in stopping] + removed + \
        [f"namespace {ns}" for ns in deleted]
    if journal.host:
        removed += _remove_shared_underlay(journal)
    if unreachable is not None:
        raise DriverError(f"lab {name}: its namespaces and processes are gone, but its records "
                          f"in {journal.store} could not be removed ({unreachable}); run "
                          f"`netdiag lab down {name}` again when the store answers")
    stores = [] if journal.host else [journal.store + s for s in ("", "-wal", "-shm")]
    for path in journal.files + stores:
        if path and os.path.exists(path):
            os.unlink(path)
    journal.remove()
    return removed


def _leave_shared_store(journal: journals.Journal) -> list[str]:
    """Take this host's part out of the shared store: its endpoints of the lab's networks, the
    networks no host has an endpoint on any more (this host's part may be the last), and the
    pools of this host's own address space (its gateway bridge's)."""
    from netdiag.drivers.controller import Controller
    from netdiag.drivers.ipam import local_space
    from netdiag.store import open_store

    host = str(netns.NAMED_DIR / journal.nodes[journal.host])
    removed = []
    with open_store(journal.store) as store:
        controller = Controller(store)
        lab_networks = [n for n in store.networks()
                        if dict(n.labels).get("netdiag.lab") == journal.lab_name]
        for network in lab_networks:
            for endpoint in store.endpoints(network.id, host=host):
                try:  # undone as built, while the namespaces are still there
                    controller.disconnect(network.id, endpoint.id)
                except NetdiagError:  # half-built, or gone after a crash: forget it
                    controller.release(network, endpoint)
            if not store.endpoints(network.id) and (network.host == host or
                                                    not os.path.exists(network.host)):
                controller.delete_network(network.id, force=True)
                removed.append(f"network {network.name}")
        with store.transaction(write=False) as tx:
            own_pools = tx.pools(local_space(host))
        for pool in own_pools:
            controller.ipam.release_pool(pool.id)
    return removed


def _remove_shared_underlay(journal: journals.Journal) -> list[str]:
    """The last host part of a lab on this machine removes the switch they shared."""
    ns = journal.nodes[journals.UNDERLAY_NODE]
    with underlay_lock():
        others = [n for n in journals.names()
                  if n.startswith(f"{journal.lab_name}@") and n != journal.name]
        if others or not (netns.NAMED_DIR / ns).exists():
            return []
        netns.delete_named(ns)
        return [f"namespace {ns}"]


def nested_namespaces(journal: journals.Journal) -> list[str]:
    """Namespaces drivers made inside the lab: overlay sandboxes are `<host ns>-<n>-<id>`."""
    if not netns.NAMED_DIR.is_dir():
        return []
    if not journal.namespaces:
        return []
    owners = "|".join(re.escape(ns) for ns in journal.namespaces)
    pattern = re.compile(rf"(?:{owners})-\d+-[0-9a-f]{{10}}")
    return sorted(p.name for p in netns.NAMED_DIR.iterdir() if pattern.fullmatch(p.name))


def _remove_resolv_conf(ns: str) -> None:
    folder = Path("/etc/netns") / ns
    (folder / "resolv.conf").unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def _delete_namespaces(journal: journals.Journal, progress: BuildProgress | None) -> list[str]:
    """Delete the lab's namespaces that are still there, nested ones (drivers') first.
    Returns their names."""
    doomed = [ns for ns in reversed(journal.namespaces + nested_namespaces(journal))
              if (netns.NAMED_DIR / ns).exists()]
    for i, ns in enumerate(doomed, 1):
        if progress:
            progress(i, len(doomed), f"removing namespace {ns}")
        netns.delete_named(ns)
    return doomed


def _terminate(processes: list[journals.Process]) -> list[journals.Process]:
    """SIGTERM to the processes the lab started — each only if it is still that process
    (same start time). Returns those signalled, for _wait_stopped."""
    ours = [p for p in processes if journals.start_time(p.pid) == p.start_time]
    for process in ours:
        _signal(process.pid, signal.SIGTERM)
    return ours


def _wait_stopped(ours: list[journals.Process]) -> None:
    """Wait for the processes _terminate signalled to end: a grace period, then SIGKILL to
    what is left."""
    deadline = time.monotonic() + STOP_GRACE
    running = ours
    while running and time.monotonic() < deadline:
        for process in running:
            _reap(process.pid)
        running = [p for p in running if journals.start_time(p.pid) == p.start_time]
        if running:
            time.sleep(0.005)
    for process in running:
        _signal(process.pid, signal.SIGKILL)
        _reap(process.pid)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (started by an earlier `lab up`): init reaps it
