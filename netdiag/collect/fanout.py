"""Spread the reading of many namespaces over one process per CPU.

Reading a namespace is mostly Python work (decoding netlink answers, parsing iptables-save
output), and the threads of one process take turns on one core (the GIL). With many
namespaces, `run` therefore forks helper processes that each read a share of them and send
the finished records back through a pipe (forked.encode: MessagePack); the calling process
reads a share itself meanwhile. Below MIN_PER_PROCESS namespaces per process the fork costs
more than it saves: at about 1 ms of CPU a namespace, a second process made 100 namespaces
0.02-0.03 s quicker and 0.02-0.04 s dearer in CPU (bench/snapshot.py: 0.21-0.22 s wall and
0.26-0.27 s CPU forked, 0.24 s and 0.23-0.24 s not); 1000 namespaces took 1.0 s in two.

The forking is netdiag/forked.py's: only while the process has a single thread (the CLI),
never under the TUI or anything else that runs threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from netdiag import forked
from netdiag.model import Gap, NamespaceRef, NamespaceState

MIN_PER_PROCESS = 100
CHILD_GRACE = 1.0  # seconds a child may take past the deadline to send what it read

Result = tuple[dict[int, NamespaceState], list[Gap]]


def processes_for(count: int) -> int:
    """How many processes should read `count` namespaces (1: no fork)."""
    if not forked.alone():
        return 1
    return max(1, min(forked.cpus(), count // MIN_PER_PROCESS))


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
    children = [(forked.start(lambda share=share: encode(work(share))), share)
                for share in shares[1:]]
    try:
        results, gaps = work(shares[0])
        for child, share in children:
            child_results, child_gaps = _receive(child, share, deadline)
            results.update(child_results)
            gaps.extend(child_gaps)
    except BaseException:  # Ctrl-C (sent to this process alone): the helpers stop too
        for child, _ in children:
            forked.stop(child)
        raise
    return results, gaps


def _receive(child: forked.Child, share: list[NamespaceRef], deadline: float | None
             ) -> Result:
    data = forked.result(child, None if deadline is None else deadline + CHILD_GRACE)
    if data is not None:
        return decode(data)
    late = deadline is not None and time.monotonic() >= deadline + CHILD_GRACE
    return {}, [Gap(collector="namespace", kind="timeout" if late else "error",
                    namespace=ref.id, message=f"{ref.display}: " + (
                        "not read in time" if late else "the process reading it failed"))
                for ref in share]


_Wire = tuple[tuple[NamespaceState, ...], tuple[Gap, ...]]


def encode(result: Result) -> bytes:
    states, gaps = result
    return forked.encode((tuple(states.values()), tuple(gaps)), _Wire)


def decode(data: bytes) -> Result:
    states, gaps = forked.decode(data, _Wire)
    return {state.ref.id: state for state in states}, list(gaps)
