"""Spread the reading of many namespaces over one process per CPU.

Reading a namespace is mostly Python work (decoding netlink answers, parsing iptables-save
output), and the threads of one process take turns on one core (the GIL). With many
namespaces, `run` therefore forks helper processes that each read a share of them, with their
own worker threads, and send the finished records back through a pipe as MessagePack
(msgspec encodes and rebuilds the frozen dataclasses in C: 500 namespaces' records travel in
0.04 s, where pickle, which calls each dataclass's Python __reduce__ and __setstate__, took
0.3 s); the calling process reads a share itself meanwhile. Below MIN_PER_PROCESS namespaces
per process the fork costs more than it saves, so the work runs in the calling process (at
about 1.5 ms of CPU per namespace, 50 are worth a fork and a second core).

fork copies only the calling thread, and a lock held by another thread at that moment stays
locked forever in the child; so `run` forks only while the process has a single thread (the
CLI), never under the TUI or anything else that runs threads.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence
from functools import cache

import msgspec

from netdiag.model import Gap, NamespaceRef, NamespaceState

MIN_PER_PROCESS = 50
CHILD_GRACE = 1.0  # seconds a child may take past the deadline to send what it read

Result = tuple[dict[int, NamespaceState], list[Gap]]


def processes_for(count: int) -> int:
    """How many processes should read `count` namespaces (1: no fork)."""
    if threading.active_count() > 1:
        return 1
    cpus = len(os.sched_getaffinity(0))
    return max(1, min(cpus, count // MIN_PER_PROCESS))


def run(refs: Sequence[NamespaceRef], work: Callable[[Sequence[NamespaceRef]], Result],
        deadline: float | None = None) -> Result:
    """`work(refs)`, split over processes when there are enough namespaces for it to pay.

    A child that has not sent its share a moment after `deadline` (time.monotonic()) is
    killed — it is ours, by its pid — and its namespaces become "timeout" gaps."""
    count = processes_for(len(refs))
    if count == 1:
        return work(refs)
    # Every count-th namespace per share: the few big ones (host, hubs) come first in
    # discovery order and so end up in different shares.
    shares = [list(refs[i::count]) for i in range(count)]
    children = [(_fork(share, work), share) for share in shares[1:]]
    try:
        results, gaps = work(shares[0])
        for (pid, pipe), share in children:
            child_results, child_gaps = _receive(pid, pipe, share, deadline)
            results.update(child_results)
            gaps.extend(child_gaps)
    except BaseException:  # Ctrl-C (sent to this process alone): the helpers stop too
        for (pid, _), _ in children:
            _stop(pid)
        raise
    return results, gaps


def _stop(pid: int) -> None:
    """Kill a helper of ours unless it has been reaped (its pid may be another's by now)."""
    try:
        if os.waitpid(pid, os.WNOHANG) == (0, 0):  # not ended (had it, this reaped it)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except ChildProcessError:  # reaped already, by _receive
        pass


def _fork(share: list[NamespaceRef], work: Callable[[Sequence[NamespaceRef]], Result]):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read its share, send it back, and leave without cleanup
        status = 1
        try:
            os.close(read_end)
            data = encode(work(share))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
            status = 0
        finally:
            os._exit(status)  # never return into the parent's code (atexit, buffered stdout)
    os.close(write_end)
    return pid, read_end


def _receive(pid: int, pipe: int, share: list[NamespaceRef], deadline: float | None) -> Result:
    chunks = []
    with os.fdopen(pipe, "rb") as stream:
        while True:
            left = None if deadline is None else deadline + CHILD_GRACE - time.monotonic()
            ready, _, _ = select.select([stream], [], [], None if left is None else max(0, left))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {}, [Gap(collector="namespace", kind="timeout", namespace=ref.id,
                                message=f"{ref.display}: not read in time") for ref in share]
            chunk = os.read(stream.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    _, status = os.waitpid(pid, 0)
    if status == 0 and data:
        return decode(data)
    return {}, [Gap(collector="namespace", kind="error", namespace=ref.id,
                    message=f"{ref.display}: the process reading it failed") for ref in share]


# What goes through the pipe: one tag byte, then the result in MessagePack or, should msgspec
# refuse a value, pickle.
_MSGPACK, _PICKLE = b"M", b"P"
_Wire = tuple[tuple[NamespaceState, ...], tuple[Gap, ...]]


@cache
def _codec() -> tuple[msgspec.msgpack.Encoder, msgspec.msgpack.Decoder]:
    return msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(_Wire)


def encode(result: Result) -> bytes:
    states, gaps = result
    try:
        return _MSGPACK + _codec()[0].encode((tuple(states.values()), tuple(gaps)))
    except (TypeError, ValueError, OverflowError):
        import pickle  # (only here: 1.5 ms to import)

        return _PICKLE + pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes) -> Result:
    if data[:1] == _PICKLE:
        import pickle

        return pickle.loads(data[1:])
    states, gaps = _codec()[1].decode(memoryview(data)[1:])
    return {state.ref.id: state for state in states}, list(gaps)
