"""`netdiag --help` and `netdiag COMMAND --help` start fast because they import only the parser:
no third-party package the commands use when they run, no rule, no collector. An assertion on
which modules load, not on time (bench/startup.py measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from netdiag.cli import COMMANDS

# What a command imports in its run(), never for its --help.
HEAVY = ("textual", "rich", "scapy", "pyroute2", "pydantic", "yaml", "msgspec", "dns",
         "etcd3gw", "netdiag.checks.registry", "netdiag.checks.engine", "netdiag.collect",
         "netdiag.model", "netdiag.flows", "netdiag.tui")

PROBE = """
import json, sys
from netdiag.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(argv: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_top_level_help_imports_nothing_heavy():
    assert _heavy(_loaded(["--help"])) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_a_commands_help_imports_nothing_heavy(command):
    assert _heavy(_loaded([command, "--help"])) == []


def test_the_probe_sees_what_a_command_imports_when_it_runs():
    """The test above would pass if the probe saw nothing: `explain` runs and loads the rules."""
    assert "netdiag.checks.registry" in _loaded(["explain"])


def test_check_help_knows_every_format_without_loading_them():
    from netdiag.checks.output import FORMAT_NAMES
    from netdiag.checks.output.formats import FORMATS

    assert FORMAT_NAMES == tuple(FORMATS)


def test_taking_a_lab_down_imports_neither_the_schema_nor_the_drivers():
    """`lab down` is as fast as `ip netns del` only if it does not first import what a build
    needs (pydantic's schema, the drivers: ~0.5 s): the teardown reads the journal only."""
    probe = "import sys, netdiag.lab.teardown; print(sorted(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    modules = done.stdout
    for heavy in ("'pydantic'", "'netdiag.drivers'", "'netdiag.topology.schema'",
                  "'netdiag.lab.build'"):
        assert heavy not in modules, heavy
