"""A repair that sticks (issue 31): after `repair --lab broken-mtu --apply` the drivers' store
holds the repaired MTU, so `lab status` agrees with `check` and the overlay's next endpoint
gets the repaired MTU, not the one the fault made wrong."""

from __future__ import annotations

import json
import subprocess

import pytest

from netdiag.drivers.controller import Controller
from netdiag.store import open_store
from netdiag.topology import schema
from tests.conftest import sh
from tests.integration.test_lab import EXAMPLES, NETDIAG, lab  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration


def _mtu(netns: str, link: str) -> int:
    return json.loads(sh(f"ip -n {netns} -j link show {link}"))[0]["mtu"]


def test_broken_mtu_repair_updates_the_drivers_store(lab, netns_factory):  # noqa: F811
    j = lab(schema.load(EXAMPLES / "broken-mtu.yaml"))
    done = subprocess.run([*NETDIAG, "repair", "--lab", j.name, "--apply"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "record MTU 1350 for network petnet" in done.stdout, done.stdout
    repaired = _mtu(j.nodes["web"], "eth0")
    assert repaired == 1350  # host2's underlay is 1400, less 50 for VXLAN

    status = subprocess.run([*NETDIAG, "lab", "status", j.name], capture_output=True,
                            text=True)
    assert status.returncode == 0, status.stderr
    assert "driver checks: 0 findings" in status.stdout, status.stdout

    # host1's underlay is still 1500: without the record, a new endpoint there got 1450.
    newcomer = netns_factory("new")
    with open_store(j.store) as store:
        endpoint = Controller(store).connect("petnet", f"/run/netns/{newcomer}", "newcomer",
                                             host=f"/run/netns/{j.nodes['host1']}")
    assert _mtu(newcomer, endpoint.ifname) == repaired

    # A driver finding is named by the lab node, as `check` names it, not by the raw name.
    sh(f"ip -n {j.nodes['web']} link set eth0 mtu 1300")
    status = subprocess.run([*NETDIAG, "lab", "status", j.name], capture_output=True,
                            text=True)
    assert f"  warning: {j.name}/web: eth0 has MTU 1300" in status.stdout, status.stdout
