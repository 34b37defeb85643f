"""What users see when things are not as they should be, and the promise that reading is safe.

* Read-only: snapshots of rich namespaces taken before and after `netdiag snapshot` and
  `netdiag show` are equal apart from counters.
* A namespace deleted mid-collection is a gap, not a crash.
* Without root: one clear line and exit code 3.
* A corrupt snapshot file: one clear line and exit code 2.

User-visible behaviour is tested through the CLI in a subprocess, as a user would run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from netdiag.collect import COLLECTORS, collect_snapshot
from netdiag.diff import diff
from netdiag.errors import EXIT_COLLECT, EXIT_USAGE
from netdiag.model import NamespaceRef, NsKind
from netdiag.model.serialize import load
from tests.conftest import sh
from tests.interrupts import interrupt_at

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def netdiag(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "netdiag", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def named_ref(name: str) -> NamespaceRef:
    path = f"/run/netns/{name}"
    return NamespaceRef(id=os.stat(path).st_ino, kind=NsKind.NAMED, path=path, name=name,
                        label=name)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


# --- read-only ------------------------------------------------------------------------------


@pytest.fixture
def rich_pair(netns_factory):
    """Two namespaces: a bridge with a veth into the other, addresses, routes, neighbours,
    iptables rules in both backends, a native nftables table, changed sysctls."""
    a, b = netns_factory("ro-a"), netns_factory("ro-b")
    for command in (
        # No IPv6: its router solicitations and DAD would add link-local routes, neighbours
        # and learnt bridge entries on their own, seconds later, while the test compares.
        f"ip netns exec {a} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
        "net.ipv6.conf.default.disable_ipv6=1",
        f"ip netns exec {b} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
        "net.ipv6.conf.default.disable_ipv6=1",
        f"ip -n {a} link add br0 type bridge",
        f"ip -n {a} link add v0 type veth peer name eth0 netns {b}",
        f"ip -n {a} link set v0 master br0",
        f"ip -n {a} addr add 10.77.0.1/24 dev br0",
        f"ip -n {b} addr add 10.77.0.2/24 dev eth0",
        f"ip -n {a} link set br0 up",
        f"ip -n {a} link set v0 up",
        f"ip -n {b} link set eth0 up",
        f"ip -n {b} route add default via 10.77.0.1",
        f"ip -n {b} neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent",
        f"ip netns exec {a} iptables-nft -t nat -A POSTROUTING -s 10.77.0.0/24 ! -o br0 "
        "-j MASQUERADE",
        f"ip netns exec {a} iptables-nft -A FORWARD -i br0 -o br0 -j ACCEPT",
        f"ip netns exec {a} iptables-legacy -A INPUT -p tcp --dport 22 -j ACCEPT",
        f"ip netns exec {a} nft add table inet rotest",
        f"ip netns exec {a} nft add chain inet rotest pass "
        "'{ type filter hook forward priority 0; policy accept; }'",
        f"ip netns exec {a} nft add rule inet rotest pass counter accept",
        f"ip netns exec {a} sysctl -qw net.ipv4.ip_forward=1",
    ):
        sh(command)
    settle(a, b)
    return a, b


def settle(*names: str) -> None:
    """Wait until the kernel has finished reacting to the set-up (links going up)."""
    def state() -> str:
        return "".join(sh(f"ip -n {n} -j addr; ip -n {n} -j route show table all; "
                          f"ip -n {n} -j neigh; bridge -n {n} -j fdb") for n in names)
    previous = state()
    for _ in range(50):
        time.sleep(0.1)
        current = state()
        if current == previous:
            return
        previous = current
    raise AssertionError("the test namespaces did not settle within 5 s")


def test_snapshot_and_show_change_nothing(rich_pair, tmp_path):
    a, b = rich_pair
    selection = ["--ns", a, "--ns", b]
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    assert netdiag("snapshot", *selection, "-o", str(before)).returncode == 0

    # what is being tested: reading, showing (every view), reading again
    assert netdiag("snapshot", *selection, "-o", str(tmp_path / "middle.json")).returncode == 0
    shown = netdiag("show", *selection)
    if "not available yet" not in shown.stderr:
        assert shown.returncode == 0, shown.stderr
        for view in ("firewall", "sockets", "sysctls", "dns"):
            assert netdiag("show", *selection, view).returncode == 0

    assert netdiag("snapshot", *selection, "-o", str(after)).returncode == 0
    first, second = load(before), load(after)
    assert len(first.namespaces) == 2
    rules = [r for ns in first.namespaces for r in ns.firewall.iptables_rules]
    assert {r.backend for r in rules} == {"nft", "legacy"}  # the snapshot is really rich
    assert first.namespaces[0].firewall.nft_rules and first.namespaces[0].fdb
    assert diff(first, second) == ()


def test_the_comparison_still_sees_real_changes(rich_pair, tmp_path):
    """The comparison above must not be blind: one added nft rule shows, and only it."""
    a, _ = rich_pair
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    assert netdiag("snapshot", "--ns", a, "-o", str(before)).returncode == 0
    sh(f"ip netns exec {a} nft add rule inet rotest pass ip saddr 10.77.0.2 counter drop")
    assert netdiag("snapshot", "--ns", a, "-o", str(after)).returncode == 0
    changes = diff(load(before), load(after))
    assert [(c.section, c.kind) for c in changes] == [("firewall.nft_rules", "added")]


# --- a namespace that disappears --------------------------------------------------------------


class _DeleteOther:
    """A collector hook: while the first namespace is being read, delete the second."""

    NAME = "test-delete-other"

    def __init__(self, first: NamespaceRef, second: str):
        self.first, self.second = first, second

    def collect(self, ctx) -> dict:
        if ctx.ref.id == self.first.id:
            sh(f"ip netns del {self.second}")
        return {}


def test_namespace_deleted_mid_collection_is_a_gap(netns_factory):
    first, second = netns_factory("gone-a"), netns_factory("gone-b")
    refs = [named_ref(first), named_ref(second)]
    hook = _DeleteOther(refs[0], second)
    snapshot = collect_snapshot(refs, workers=1, collectors=(hook, *COLLECTORS))
    assert [ns.ref.name for ns in snapshot.namespaces] == [first]
    gone = [g for g in snapshot.gaps if g.kind == "gone"]
    assert len(gone) == 1 and gone[0].namespace == refs[1].id
    assert second in gone[0].message


class _Blocks:
    """A collector hook that blocks in one namespace until released (a hung helper program)."""

    NAME = "test-blocks"

    def __init__(self, stuck: NamespaceRef):
        self.stuck, self.release = stuck, threading.Event()

    def collect(self, ctx) -> dict:
        if ctx.ref.id == self.stuck.id:
            self.release.wait(60)
        return {}


def test_a_namespace_that_blocks_holds_up_its_reader_not_the_others(netns_factory):
    """One reading thread, and another once nothing has been read for a moment: the others
    are read while the first waits; the stuck one is left out at the deadline."""
    refs = [named_ref(netns_factory(f"stall-{i}")) for i in range(4)]
    hook = _Blocks(refs[0])
    try:
        snapshot = collect_snapshot(refs, timeout=2, collectors=(hook, *COLLECTORS))
    finally:
        hook.release.set()
    assert sorted(ns.ref.id for ns in snapshot.namespaces) == sorted(r.id for r in refs[1:])
    (late,) = [gap for gap in snapshot.gaps if gap.kind == "timeout"]
    assert late.namespace == refs[0].id and "not read in time" in late.message


def test_namespace_deleted_while_being_read_is_still_read_whole(netns_factory):
    """Deleting the name does not free a namespace a thread is inside: reading completes."""
    name = netns_factory("gone-self")
    sh(f"ip netns exec {name} iptables-nft -A INPUT -j ACCEPT")
    ref = named_ref(name)
    hook = _DeleteOther(ref, name)
    snapshot = collect_snapshot([ref], collectors=(hook, *COLLECTORS))
    (state,) = snapshot.namespaces
    assert [r.text for r in state.firewall.iptables_rules] == ["-A INPUT -j ACCEPT"]
    assert [g for g in snapshot.gaps if g.kind != "feature-missing"] == []


# --- without root -------------------------------------------------------------------------------


def test_without_root_one_clear_line_and_exit_code_3():
    done = netdiag("snapshot", prefix=tuple(NOBODY))
    assert done.returncode == EXIT_COLLECT == 3
    line = one_line(done.stderr)
    assert line.startswith("netdiag: error:") and "root" in line
    assert done.stdout == ""


def test_without_root_ones_own_namespace_is_read_with_gaps_not_tracebacks():
    folder = Path(tempfile.mkdtemp(prefix="ndt-nobody-", dir="/tmp"))
    os.chmod(folder, 0o777)  # nobody writes the snapshot here (pytest's tmp_path is root-only)
    out = folder / "self.json"
    try:
        done = netdiag("snapshot", "--ns", "self", "-o", str(out), prefix=tuple(NOBODY))
        snapshot = load(out) if out.exists() else None
    finally:
        shutil.rmtree(folder)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert len(snapshot.namespaces) == 1
    # nftables and xfrm need CAP_NET_ADMIN even to read: recorded as permission gaps
    assert {g.collector for g in snapshot.gaps if g.kind == "permission"} >= {"nftables",
                                                                              "xfrm"}


COLLECT_SELF = """
import json
from netdiag.collect import COLLECTORS, Context
from netdiag.errors import NetdiagError
from netdiag.model import NamespaceRef, NsKind
ctx = Context(NamespaceRef(id=0, kind=NsKind.PID, path="/proc/self/ns/net"))
outcome = {}
for collector in COLLECTORS:
    try:
        found = collector.collect(ctx)
        ctx.found.update(found)
        outcome[collector.NAME] = ["ok", sum(1 for v in found.values() if v)]
    except NetdiagError as exc:  # anything else is a bug and ends this script with a traceback
        outcome[collector.NAME] = [type(exc).__name__, str(exc)]
ctx.close()
print(json.dumps(outcome))
"""


def test_without_root_the_collectors_report_permission_clearly():
    """Each collector in the namespace a non-root user is in (no setns: that needs root)."""
    done = subprocess.run([*NOBODY, sys.executable, "-c", COLLECT_SELF], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    outcome = json.loads(done.stdout)
    # nftables, iptables-nft-save and xfrm need CAP_NET_ADMIN even to read
    assert outcome["nftables"][0] == "PermissionDenied"
    assert "permission denied" in outcome["nftables"][1]
    assert outcome["firewall"][0] == "PermissionDenied"
    assert outcome["xfrm"][0] == "PermissionDenied"
    assert outcome["ipvs"][0] in ("KernelFeatureMissing", "ok")
    for name in ("dns", "sockets", "sysctls", "conntrack"):
        assert outcome[name][0] == "ok", (name, outcome[name])
    assert outcome["sysctls"][1] == 1  # read, and not empty


# --- corrupt snapshot files ---------------------------------------------------------------------


@pytest.mark.parametrize("content, words", [
    ('{"namespaces": [', "not JSON"),
    ("[1, 2]", "not a netdiag snapshot"),
    ('{"schema_version": 99, "namespaces": []}', "schema version 99"),
    (b"\xff\xfe\x00garbage", ("cannot read", "not JSON")),  # depends on the locale
])
def test_corrupt_snapshot_file_one_clear_line_and_exit_code_2(tmp_path, content, words):
    path = tmp_path / "broken.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    done = netdiag("show", "--from", str(path))
    if "not available yet" in done.stderr:  # `show` not written yet: `diff` reads files too
        done = netdiag("diff", str(path), str(path))
    if "not available yet" in done.stderr:
        pytest.fail("neither `show --from` nor `diff` can read a snapshot file yet")
    assert done.returncode == EXIT_USAGE == 2
    line = one_line(done.stderr)
    assert str(path) in line
    assert any(w in line for w in ((words,) if isinstance(words, str) else words)), line


def test_missing_snapshot_file_one_clear_line(tmp_path):
    done = netdiag("show", "--from", str(tmp_path / "absent.json"))
    if "not available yet" in done.stderr:
        done = netdiag("diff", str(tmp_path / "absent.json"), str(tmp_path / "absent.json"))
    assert done.returncode == 2
    assert "no such file" in one_line(done.stderr)


# --- time and interruption ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_a_timeout_that_is_not_positive_is_a_usage_error(value):
    done = netdiag("check", "--all", "--timeout", value)
    assert done.returncode == EXIT_USAGE
    assert "positive number of seconds" in one_line(done.stderr) or \
        "not a number" in one_line(done.stderr)


def test_namespaces_not_read_in_time_are_gaps_and_exit_3(netns_factory):
    netns_factory("ndt-slow")
    done = netdiag("check", "--all", "--timeout", "0.001", "--format", "json")
    assert done.returncode == EXIT_COLLECT, done.stderr
    if done.stdout:  # some namespaces were read: the report lists the others
        assert any(gap["kind"] == "timeout" for gap in json.loads(done.stdout)["gaps"])
    else:  # none was: one line that says why
        assert "not read in time" in one_line(done.stderr)
    done = netdiag("snapshot", "--timeout", "0.001")
    assert done.returncode == EXIT_COLLECT
    assert "not read in time" in done.stderr


@pytest.fixture(scope="module")
def silent_nameserver():
    """Namespace a asks b's 10.213.0.2 for names, and b drops the queries: a probing run
    waits there for seconds, so a signal at any moment finds it still at work."""
    names = [f"ndt-sig-{os.getpid()}-{side}" for side in ("a", "b")]
    folder = Path("/etc/netns") / names[0]
    try:
        for name in names:
            sh(f"ip netns add {name} && ip -n {name} link set lo up")
        sh(f"ip -n {names[0]} link add eth0 type veth peer name eth0 netns {names[1]}")
        for name, address in zip(names, ("10.213.0.1/24", "10.213.0.2/24")):
            sh(f"ip -n {name} addr add {address} dev eth0 && ip -n {name} link set eth0 up")
        sh(f"ip netns exec {names[1]} iptables -A INPUT -p udp --dport 53 -j DROP")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resolv.conf").write_text("nameserver 10.213.0.2\n")
        yield names
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        for name in names:
            sh(f"ip netns del {name}", check=False)


POINTS = {
    "importing": lambda line: line == "importing",  # netdiag's own imports still running
    "reading": lambda line: line.startswith("reading namespaces:"),
    "probing": lambda line: line.startswith("probing 1/"),
    # the query to the silent nameserver: it waits 2 s for an answer that never comes
    "asking the silent nameserver": lambda line: line.startswith("probing ")
    and ": dns " in line and line.endswith("→ 10.213.0.2"),
}


@pytest.mark.parametrize("point", POINTS)
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(point, silent_nameserver):
    """From netdiag's imports still running to the middle of the probes, each point read from
    the run's own output (tests/interrupts.py), so the signal never comes too early (in
    CPython's start-up) nor too late (after the run)."""
    a, b = silent_nameserver
    run = interrupt_at(["check", "--ns", a, "--ns", b, "--probe"], POINTS[point])
    assert "Traceback" not in run.raw, run.describe()
    assert run.returncode == 130, run.describe()
    assert run.shown == ["netdiag: interrupted"], run.describe()
