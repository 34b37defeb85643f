"""Spreading namespace reading over processes (netdiag.collect.fanout), no root needed."""

import os

from netdiag.collect import fanout
from netdiag.model import Gap, NamespaceRef, NamespaceState, NsKind


def refs(count):
    return [NamespaceRef(id=i, kind=NsKind.PID, path=f"/proc/{i}/ns/net", label=f"n{i}")
            for i in range(1, count + 1)]


def reader(share):
    """Stands in for the thread pool: one state per namespace, tagged with the reading pid."""
    return ({ref.id: NamespaceState(ref=ref) for ref in share},
            [Gap("links", "error", str(os.getpid()), namespace=ref.id) for ref in share])


def test_small_jobs_stay_in_this_process():
    assert fanout.processes_for(fanout.MIN_PER_PROCESS - 1) == 1
    results, gaps = fanout.run(refs(5), reader)
    assert sorted(results) == [1, 2, 3, 4, 5]
    assert {gap.message for gap in gaps} == {str(os.getpid())}


def test_many_namespaces_are_read_by_several_processes_and_merged(monkeypatch):
    monkeypatch.setattr(fanout, "MIN_PER_PROCESS", 2)
    monkeypatch.setattr(fanout.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    results, gaps = fanout.run(refs(9), reader)
    assert sorted(results) == list(range(1, 10))
    assert results[7] == NamespaceState(ref=refs(9)[6])
    assert len({gap.message for gap in gaps}) == 3  # this process and two children


def test_a_failing_child_turns_its_share_into_gaps(monkeypatch):
    monkeypatch.setattr(fanout, "MIN_PER_PROCESS", 2)
    monkeypatch.setattr(fanout.os, "sched_getaffinity", lambda pid: {0, 1})
    parent = os.getpid()

    def flaky(share):
        if os.getpid() != parent:
            raise RuntimeError("boom")
        return reader(share)

    results, gaps = fanout.run(refs(6), flaky)
    assert sorted(results) == [1, 3, 5]
    failed = sorted(gap.namespace for gap in gaps if "failed" in gap.message)
    assert failed == [2, 4, 6]


def test_no_fork_while_other_threads_run(monkeypatch):
    monkeypatch.setattr(fanout.threading, "active_count", lambda: 2)
    assert fanout.processes_for(10_000) == 1
