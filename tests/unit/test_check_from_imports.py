"""`check --from FILE` reads no kernel, so it loads no collector: importing any netdiag.collect
module loads them all. An assertion on which modules load, not on time (bench/checks.py
measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys

from netdiag.model.serialize import save
from tests.fixtures.scenarios import docker_host

PROBE = """
import contextlib, io, json, sys
from netdiag.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(argv: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_checking_a_saved_snapshot_loads_no_collector(tmp_path):
    path = tmp_path / "snap.json"
    save(docker_host().build(), path)
    loaded = _loaded(["check", "--from", str(path), "--exit-zero"])
    assert "netdiag.checks.registry" in loaded  # the rules ran in the probe
    assert [m for m in loaded if m == "netdiag.collect" or m.startswith("netdiag.collect.")] \
        == []
    # Naming a namespace does need the resolver (the probe would see it load).
    assert "netdiag.collect.namespace_refs" in _loaded(
        ["check", "--from", str(path), "--ns", "web", "--exit-zero"])
