"""Ctrl-C is never lost: SIGINT at eight points spread over a `lab up` of 60 containers and over
a `check --all` ends each run with exit code 130 and one line saying so; `lab up` removes
everything it had built. Every other run starts with SIGINT ignored, as a background job of a
non-interactive shell does — where a `lab up` told to stop used to finish instead (issue 26).
The points are read from the commands' own progress lines (tests/interrupts.py)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable

import pytest
import yaml

from netdiag.errors import EXIT_INTERRUPTED
from netdiag.lab import build, teardown
from netdiag.topology import journal, plan, schema
from tests.interrupts import interrupt_at, progress_step

pytestmark = [pytest.mark.integration, pytest.mark.slow]
POINTS = 8


def big_lab(name: str) -> dict:
    return {"name": name, "networks": [{"name": "net", "subnet": "172.29.0.0/24"}],
            "containers": [{"name": f"c{i}", "networks": ["net"]} for i in range(60)]}


def namespaces_of(lab: str) -> list[str]:
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(f"{lab}-")) \
        if os.path.isdir("/run/netns") else []


def spread(total: int) -> list[int]:
    """POINTS steps from the first to the last of `total`."""
    return sorted({1 + round(i * (total - 1) / (POINTS - 1)) for i in range(POINTS)})


def test_ctrl_c_at_any_step_of_lab_up_rolls_it_back(tmp_path):
    name = f"ndt-{secrets.token_hex(3)}"
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(big_lab(name)))
    total = len(plan.plan(schema.load(path)))
    try:
        for i, step in enumerate(spread(total)):
            def reached(line: str, step=step) -> bool:
                done = progress_step(line) if line.startswith("[") else None
                return done is not None and done[0] >= step

            run = interrupt_at(["lab", "up", str(path)], reached, ignored=i % 2 == 1)
            assert run.returncode == EXIT_INTERRUPTED, run.describe()
            assert run.shown[-1].endswith("everything it had built was removed"), \
                run.describe()
            assert "Traceback" not in run.raw and "is up" not in run.stdout, run.describe()
            assert namespaces_of(name) == [], run.describe()
            assert name not in journal.names(), run.describe()
    finally:
        teardown.down(name)


@pytest.fixture(scope="module")
def many_namespaces():
    """A lab of 60 containers for `check --all` to read (besides whatever else is here)."""
    name = f"ndt-{secrets.token_hex(3)}"
    build.up(schema.parse(yaml.safe_dump(big_lab(name))))
    try:
        yield name
    finally:
        teardown.down(name)


def test_ctrl_c_at_any_point_of_check_all_is_one_line_and_exit_130(many_namespaces):
    """The first point is in netdiag's imports; the others are spread over the reading of the
    namespaces (the lab's 60 among them), the last at its end ("n/n"), with the rules and the
    report still to come."""
    def reading(fraction: float) -> Callable[[str], bool]:
        def reached(line: str) -> bool:
            done = progress_step(line) if line.startswith("reading namespaces:") else None
            return done is not None and done[1] >= 60 and done[0] >= max(1, fraction * done[1])
        return reached

    points = [lambda line: line == "importing"]
    points += [reading(n / (POINTS - 1)) for n in range(1, POINTS)]
    for i, point in enumerate(points):
        run = interrupt_at(["check", "--all"], point, ignored=i % 2 == 1)
        assert run.returncode == EXIT_INTERRUPTED, run.describe()
        assert run.shown == ["netdiag: interrupted"], run.describe()
        assert run.stdout == "", run.describe()
