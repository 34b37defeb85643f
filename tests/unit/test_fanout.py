"""Spreading namespace reading over processes (netdiag.collect.fanout, by netdiag.forked), no
root needed."""

import os
import time

import pytest

from netdiag import forked
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
    monkeypatch.setattr(forked.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    results, gaps = fanout.run(refs(9), reader)
    assert sorted(results) == list(range(1, 10))
    assert results[7] == NamespaceState(ref=refs(9)[6])
    assert len({gap.message for gap in gaps}) == 3  # this process and two children


def test_a_failing_child_turns_its_share_into_gaps(monkeypatch):
    monkeypatch.setattr(fanout, "MIN_PER_PROCESS", 2)
    monkeypatch.setattr(forked.os, "sched_getaffinity", lambda pid: {0, 1})
    parent = os.getpid()

    def flaky(share):
        if os.getpid() != parent:
            raise RuntimeError("boom")
        return reader(share)

    results, gaps = fanout.run(refs(6), flaky)
    assert sorted(results) == [1, 3, 5]
    failed = sorted(gap.namespace for gap in gaps if "failed" in gap.message)
    assert failed == [2, 4, 6]


def test_a_ctrl_c_in_this_process_stops_its_helpers(monkeypatch):
    """SIGINT sent to netdiag alone (not to its process group): the helpers go with it."""
    monkeypatch.setattr(fanout, "MIN_PER_PROCESS", 2)
    monkeypatch.setattr(forked.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    parent = os.getpid()
    helpers = []
    real_start = forked.start

    def start(work):
        child = real_start(work)
        helpers.append(child.pid)
        return child

    def interrupted(share):
        if os.getpid() != parent:
            time.sleep(30)  # a helper still reading when the parent is interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(forked, "start", start)
    with pytest.raises(KeyboardInterrupt):
        fanout.run(refs(6), interrupted)
    assert len(helpers) == 2
    for pid in helpers:
        with pytest.raises(ChildProcessError):  # killed and reaped
            os.waitpid(pid, os.WNOHANG)


def test_no_fork_while_other_threads_run(monkeypatch):
    monkeypatch.setattr(forked.threading, "active_count", lambda: 2)
    assert fanout.processes_for(10_000) == 1


def test_records_cross_the_pipe_unchanged():
    from netdiag.model import Firewall, IptablesRule, Link, Match, NftTable, Sysctl, VxlanInfo

    (ref,) = refs(1)
    state = NamespaceState(
        ref=ref,
        links=(Link(index=3, name="vx0", kind="vxlan", mtu=1450, admin_up=True,
                    oper_state="up", parent_netnsid=-1, vxlan=VxlanInfo(vni=4096)),),
        firewall=Firewall(nft_tables=(NftTable("ip", "nat", 2),), iptables_rules=(IptablesRule(
            backend="nft", family=4, table="nat", chain="DOCKER", position=1,
            matches=(Match("in-interface", "br0", negated=True),), target="DNAT",
            target_options=(("to-destination", "172.18.0.2:80"),), packets=2**63),)),
        sysctls=(Sysctl("net.ipv4.ip_forward", "1"),))
    result = ({ref.id: state}, [Gap("ipvs", "feature-missing", "kernel has no IPVS")])
    data = fanout.encode(result)
    assert data[:1] == b"M"
    assert fanout.decode(data) == result
    assert type(fanout.decode(data)[0][ref.id].ref.kind) is NsKind


def test_what_msgpack_refuses_goes_by_pickle():
    huge = NamespaceState(ref=NamespaceRef(id=2**70, kind=NsKind.PID, path="/x"))
    result = ({huge.ref.id: huge}, [])
    data = fanout.encode(result)
    assert data[:1] == b"P"
    assert fanout.decode(data) == result
