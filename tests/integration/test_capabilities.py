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


def without(capability: str, netns: str, *args: str) -> subprocess.CompletedProcess:
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    drop = f"-{capability.lower()}"
    return subprocess.run(["ip", "netns", "exec", netns, "setpriv", f"--inh-caps={drop}",
                           f"--bounding-set={drop}", "--", sys.executable, "-m", "netdiag",
                           *args], capture_output=True, text=True, timeout=60)


def test_without_net_admin_the_firewall_gap_names_it_and_how_to_grant_it(netns_factory):
    netns = netns_factory("cap")
    done = without("NET_ADMIN", netns, "check", "--ns", "self", "--format", "json")
    gaps = {g["source"]: g["message"] for g in json.loads(done.stdout)["gaps"]}
    for collector in ("firewall", "nftables"):
        assert "netdiag runs as root without CAP_NET_ADMIN" in gaps[collector], gaps
        assert "--cap-add NET_ADMIN" in gaps[collector] and \
            "kubectl debug --profile=netadmin" in gaps[collector], gaps
    assert not any("needs root" in message for message in gaps.values()), gaps


def test_without_sys_admin_entering_other_namespaces_names_it(netns_factory):
    netns = netns_factory("cap")
    done = without("SYS_ADMIN", netns, "check", "--format", "json", "--exit-zero")
    gaps = [g["message"] for g in json.loads(done.stdout)["gaps"]
            if g["source"] == "namespace"]
    assert gaps and all("without CAP_SYS_ADMIN" in m and "--cap-add SYS_ADMIN" in m
                        for m in gaps), gaps
