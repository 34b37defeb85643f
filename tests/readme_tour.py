"""The README's tour, from real runs: `python -m tests.readme_tour` (as root) builds the bundled
lab broken-mtu, runs the tour's commands, and writes what they printed into README.md between
its markers; tests/integration/test_readme_tour.py runs them again and fails when the README
says something netdiag no longer prints.

The lab is built under a name of its own (ndt-XXXXXX, as long as "broken-mtu", so columns stay
where they were) and shown as broken-mtu. `check` and `repair` read every namespace of the
machine; on one that runs other things (a test suite in parallel), namespaces of theirs that
vanish while being read are listed as not checked: those lines, about no namespace of the
lab, are left out of the tour (`_quiet`), as a quiet machine would not print them. What
differs from run to run and says nothing — timings, the random part of the drivers' device
and namespace names, how many namespaces the machine has — is made equal before the two are
compared (`comparable`), never in what the README shows.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LAB = "broken-mtu"
EXAMPLE = ROOT / "netdiag" / "lab" / "examples" / f"{LAB}.yaml"
BEGIN = "<!-- tour: written by `python -m tests.readme_tour`; do not edit by hand -->"
END = "<!-- /tour -->"


@dataclass(frozen=True, slots=True)
class Step:
    command: str  # as the README shows it, after `netdiag`
    head: int = 0  # show only this many first lines (0: all), then "…"
    tail: int = 0  # and this many last ones


TOUR = (
    Step(f"lab up {LAB}"),
    Step(f"check --ns {LAB}/web"),
    Step(f"path {LAB}/web db-1 --size 1420 --probe"),
    Step(f"repair --lab {LAB} --apply", head=2, tail=1),
    Step(f"check --ns {LAB}/web"),
    Step(f"lab down {LAB}"),
)


def run_tour() -> str:
    """The tour's console block: each command and what it printed (stdout, then stderr)."""
    name = f"ndt-{secrets.token_hex(3)}"
    assert len(name) == len(LAB)
    topology = yaml.safe_load(EXAMPLE.read_text()) | {"name": name}
    env = os.environ | {"NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="netdiag-tour-") as folder:
        file = Path(folder) / f"{name}.yaml"
        file.write_text(yaml.safe_dump(topology, sort_keys=False))
        try:
            for step in TOUR:
                argv = shlex.split(step.command.replace(LAB, name))
                if argv[:2] == ["lab", "up"]:
                    argv[2] = str(file)
                done = subprocess.run([sys.executable, "-m", "netdiag", *argv], env=env,
                                      capture_output=True, text=True, timeout=300, cwd=folder)
                printed = [line.replace(name, LAB)
                           for line in _quiet((done.stdout + done.stderr).splitlines(), name)]
                lines.append(f"# netdiag {step.command}")
                lines += list(_shortened(printed, step))
        finally:
            subprocess.run([sys.executable, "-m", "netdiag", "lab", "down", name], env=env,
                           capture_output=True)
    return "\n".join(lines)


_GONE = re.compile(r"^  namespace \(gone\): namespace (\S+) is gone$")


def _quiet(lines: list[str], lab: str) -> list[str]:
    """`lines` without the namespaces of other programs that vanished while being read (and
    the NOT CHECKED heading, with the blank line after it, when no other line is left)."""
    kept = [line for line in lines
            if not ((gone := _GONE.match(line)) and lab not in gone.group(1))]
    for index, line in enumerate(kept):
        if line == "NOT CHECKED" and kept[index + 1:index + 2] in ([""], []):
            return kept[:index] + kept[index + 2:]
    return kept


def _shortened(lines: list[str], step: Step) -> Iterator[str]:
    if not step.head or len(lines) <= step.head + step.tail + 1:
        yield from lines
        return
    yield from lines[:step.head]
    yield "…"
    yield from lines[len(lines) - step.tail:]


def written(readme: str) -> str:
    """The tour's console block as README.md holds it."""
    start = readme.index(BEGIN) + len(BEGIN)
    block = readme[start:readme.index(END, start)]
    return block.strip().removeprefix("```console").removesuffix("```").strip("\n")


def with_tour(readme: str, tour: str) -> str:
    start = readme.index(BEGIN) + len(BEGIN)
    return readme[:start] + f"\n```console\n{tour}\n```\n" + readme[readme.index(END, start):]


_VARYING = (
    (re.compile(r"\b\d+\.\d+ s\b"), "N.NN s"),  # timings
    (re.compile(r"\bveth[0-9a-f]{7}\b"), "vethXXXXXXX"),  # the drivers' device names
    (re.compile(r"-1-[0-9a-f]{10}\b"), "-1-XXXXXXXXXX"),  # overlay namespaces: network ids
    (re.compile(r"\b\d+ ms\b"), "N ms"),
    (re.compile(r"\bover \d+ namespaces\b"), "over N namespaces"),  # the machine's, all read
    (re.compile(r"\(\d+ namespaces\)"), "(N namespaces)"),
)


def comparable(text: str) -> str:
    """`text` with what differs between two runs of the same tour made equal. The steps of a
    repair plan are compared in sorted order: they follow the namespaces' inode numbers,
    which a rebuilt lab does not keep."""
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    lines, steps = [], []
    for line in text.splitlines() + [""]:
        if line.lstrip().startswith("$ "):
            steps.append(line)
            continue
        lines += sorted(steps) + [line]
        steps = []
    return "\n".join(lines[:-1])


def main() -> int:
    if os.geteuid() != 0:
        print("the tour builds a lab: run it as root", file=sys.stderr)
        return 2
    README.write_text(with_tour(README.read_text(), run_tour()))
    print(f"wrote the tour into {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
