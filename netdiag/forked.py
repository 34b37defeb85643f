"""Run work in a forked child process and take back the bytes it sends: a second core for
Python work, which the threads of one process share on one (the GIL).

Used to read many namespaces (collect/fanout.py) and to run the rules that walk flows beside
the others on a big snapshot (checks/engine.py). The child shares the parent's memory as it
was at the fork (copy on write), so it needs no arguments sent; it returns bytes, then leaves
with os._exit, never into the parent's code. (Reading the container engines' APIs in a child
while the namespaces are read was tried on a host of 1000 containers: no faster, as both
cores are busy reading and dockerd needs one to answer.)

What it sends is `encode`d: MessagePack, which msgspec encodes and rebuilds as frozen
dataclasses in C (500 namespaces' records travel in 0.04 s, where pickle, which calls each
dataclass's Python __reduce__ and __setstate__, took 0.3 s), or pickle for a value or type
msgspec refuses (a union of several record types, an int beyond 64 bits).

fork copies only the calling thread, and a lock held by another thread at that moment stays
locked forever in the child; so callers fork only while `alone()` says the process has a
single thread (the CLI), never under the TUI, the agent or a test runner's threads.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import msgspec


def alone() -> bool:
    """Whether this process has one thread, so that it may fork."""
    return threading.active_count() == 1


def cpus() -> int:
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True, slots=True)
class Child:
    pid: int
    pipe: int  # the read end of what the child sends


def start(work: Callable[[], bytes]) -> Child:
    """Fork a child that runs `work()` and sends what it returns."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: do the work, send it, and leave without cleanup
        status = 1
        try:
            os.close(read_end)
            data = work()
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
            status = 0
        finally:
            os._exit(status)  # never return into the parent's code (atexit, buffered stdout)
    os.close(write_end)
    return Child(pid, read_end)


def result(child: Child, deadline: float | None) -> bytes | None:
    """What the child sent, once it has ended; None when it failed, or had not finished by
    `deadline` (a time.monotonic() value; it is killed then)."""
    chunks = []
    with os.fdopen(child.pipe, "rb") as stream:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            ready, _, _ = select.select([stream], [], [], None if left is None else max(0, left))
            if not ready:
                stop(child)
                return None
            chunk = os.read(stream.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(child.pid, 0)
    return b"".join(chunks) if status == 0 and chunks else None


def stop(child: Child) -> None:
    """Kill a child of ours unless it has been reaped (its pid may be another's by now)."""
    try:
        if os.waitpid(child.pid, os.WNOHANG) == (0, 0):  # not ended (had it, this reaped it)
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
    except ChildProcessError:  # reaped already, by result()
        pass


# One tag byte, then MessagePack or pickle.
_MSGPACK, _PICKLE = b"M", b"P"


@cache
def _decoder(kind) -> msgspec.msgpack.Decoder | None:
    try:
        return msgspec.msgpack.Decoder(kind)
    except TypeError:  # a type msgspec cannot rebuild (an untagged union of records)
        return None


@cache
def _encoder() -> msgspec.msgpack.Encoder:
    return msgspec.msgpack.Encoder()


def encode(value, kind) -> bytes:
    """`value`, of type `kind`, as bytes for `decode`."""
    if _decoder(kind) is not None:
        try:
            return _MSGPACK + _encoder().encode(value)
        except (TypeError, ValueError, OverflowError):
            pass
    import pickle  # (only here: 1.5 ms to import)

    return _PICKLE + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes, kind):
    if data[:1] == _PICKLE:
        import pickle

        return pickle.loads(data[1:])
    return _decoder(kind).decode(memoryview(data)[1:])
