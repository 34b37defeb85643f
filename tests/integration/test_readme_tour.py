"""The README's tour is what netdiag prints (issue 31: its `path` output had drifted): the
tour's commands run against the bundled lab broken-mtu, and the README's block must be what
they print. `sudo .venv/bin/python -m tests.readme_tour` writes it again."""

from __future__ import annotations

import difflib

import pytest

from tests.readme_tour import README, comparable, run_tour, written

pytestmark = pytest.mark.integration


def test_the_readme_tour_is_what_netdiag_prints():
    shown, fresh = comparable(written(README.read_text())), comparable(run_tour())
    diff = "\n".join(difflib.unified_diff(shown.splitlines(), fresh.splitlines(), "README.md",
                                          "netdiag now", lineterm=""))
    assert shown == fresh, ("the README's tour is stale; `sudo .venv/bin/python -m "
                            f"tests.readme_tour` writes it again:\n{diff}")

