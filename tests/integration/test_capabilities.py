"""Root without all capabilities (as in a container): the gaps say which one is missing.

The process runs as root in a test namespace with one capability dropped from its bounding
set (setpriv, util-linux), the way `docker run --net container:X` without `--cap-add` runs
netdiag; the text must name the capability and the flags that grant it, not "needs root".
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def without(capability: str, netns: str, *args: str, python: tuple[str, ...] = ("-m", "netdiag")
            ) -> subprocess.CompletedProcess:
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    drop = f"-{capability.lower()}"
    return subprocess.run(["ip", "netns", "exec", netns, "setpriv", f"--inh-caps={drop}",
                           f"--bounding-set={drop}", "--", sys.executable, *python, *args],
                          capture_output=True, text=True, timeout=60)


def test_without_net_admin_the_firewall_gap_names_it_and_how_to_grant_it(netns_factory):
    netns = netns_factory("cap")
    done = without("NET_ADMIN", netns, "check", "--ns", "self", "--format", "json")
    gaps = {g["source"]: g for g in json.loads(done.stdout)["gaps"]}
    for collector in ("firewall", "nftables"):
        assert "netdiag runs as root without CAP_NET_ADMIN" in gaps[collector]["message"], gaps
        assert gaps[collector]["needs"] == "NET_ADMIN", gaps
    assert not any("needs root" in g["message"] for g in gaps.values()), gaps


def test_the_text_report_says_how_to_grant_it_once(netns_factory):
    netns = netns_factory("cap")
    done = without("NET_ADMIN", netns, "check", "--ns", "self")
    out = done.stdout
    # firewall, nftables, xfrm...: several gaps, one piece of advice.
    assert out.count("without CAP_NET_ADMIN") >= 3, out
    assert out.count("--cap-add NET_ADMIN") == 1, out
    assert "grant it with docker run --cap-add NET_ADMIN, or kubectl debug --profile=netadmin" \
        in out, out


def test_without_sys_admin_entering_other_namespaces_names_it(netns_factory):
    netns = netns_factory("cap")
    done = without("SYS_ADMIN", netns, "check", "--format", "json", "--exit-zero")
    gaps = [g for g in json.loads(done.stdout)["gaps"] if g["source"] == "namespace"]
    assert gaps and all("without CAP_SYS_ADMIN" in g["message"] and g["needs"] == "SYS_ADMIN"
                        for g in gaps), gaps


def test_without_sys_admin_a_check_of_what_it_could_not_enter_exits_3(netns_factory):
    """Issue 31: 37 namespaces NOT CHECKED, then "0 errors ... over 1 namespace" and exit 0,
    which a runbook takes for healthy. The host's namespace cannot be entered from here."""
    netns = netns_factory("cap")
    for args in (("--all",), ("--ns", netns), ("--all", "--quiet")):
        done = without("SYS_ADMIN", netns, "check", *args, "--docker", "none")
        assert done.returncode == 3, (args, done.stdout, done.stderr)
        summary = done.stdout.rstrip("\n").splitlines()[-1]
        assert " not checked (not read, see above) — " in summary, summary
        assert summary.index("not checked") < summary.index(" error"), summary


def test_without_net_admin_a_repair_stops_at_its_first_failed_step(netns_factory):
    """Issue 31: the refused step ran again for five rounds ("the repairs uncovered 1
    more"). It stops at once, in one line naming the step and why, and exits non-zero."""
    netns = netns_factory("cap")
    subprocess.run(["ip", "-n", netns, "link", "add", "v0", "type", "veth", "peer", "name",
                    "v1"], check=True)
    subprocess.run(["ip", "-n", netns, "addr", "add", "10.77.31.1/24", "dev", "v0"], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "v0", "up"], check=True)  # v1 stays down
    done = without("NET_ADMIN", netns, "repair", "--ns", "self", "--apply", "--unsafe",
                   "--docker", "none")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Round 2" not in done.stdout and "uncovered" not in done.stdout, done.stdout
    (error,) = [line for line in done.stderr.splitlines() if "error:" in line]
    assert "repair stopped: `ip netns exec" in error and "ip link set dev v1 up`" in error
    assert "without CAP_NET_ADMIN" in error, error
    assert "Traceback" not in done.stderr
    state = subprocess.run(["ip", "-n", netns, "-j", "link", "show", "v1"], check=True,
                           capture_output=True, text=True).stdout
    assert json.loads(state)[0]["operstate"] == "DOWN"


def test_an_error_that_ends_the_command_says_how_to_grant_it(netns_factory):
    netns = netns_factory("cap")
    done = without("SYS_ADMIN", netns, "show", "--ns", "host", "links")
    assert done.returncode != 0
    assert "without CAP_SYS_ADMIN" in done.stderr, done.stderr
    assert "grant it with docker run --cap-add SYS_ADMIN" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


PROBES = """
from netdiag.errors import PermissionDenied
from netdiag.probe import pmtu, runner
from netdiag.probe.plan import Task
try:
    pmtu.sweep(0, "127.0.0.1", timeout=0.2)
except PermissionDenied as exc:
    print(exc.capability, exc, sep="\\n")
# Run as --probe runs them: the sweep fails alone, the connect after it still runs.
mtu, port = (runner._run(Task(kind, 0, "127.0.0.1", port), None, 0.2)
             for kind, port in (("path_mtu", 0), ("port", 9)))
print(runner._failure(str, mtu))
print(port.error)
"""


def test_without_net_raw_the_df_ping_probe_names_it(netns_factory):
    netns = netns_factory("cap")
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    done = without("NET_RAW", netns, python=("-c", PROBES))
    capability, message, failure, port_error = done.stdout.splitlines()[:4]
    assert capability == "NET_RAW", done.stdout + done.stderr
    assert "raw socket" in message and "without CAP_NET_RAW" in message, message
    assert "no DF ping answered" in failure and "without CAP_NET_RAW" in failure, failure
    assert "refused" in port_error, port_error  # nothing listens on 9: the connect was made
