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
