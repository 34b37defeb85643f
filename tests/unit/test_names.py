"""One meaning per name: no two public classes of netdiag share a name (three `Step`s, two
`Rule`s and two `Topology`s once did), so a name in a traceback, a review or a grep means one
thing."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "netdiag"


def test_no_two_public_classes_share_a_name():
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(str(path.relative_to(PACKAGE.parent)))
    assert len(where) > 50  # the scan saw the package
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}


def test_no_two_test_files_share_a_name():
    """pytest imports tests/unit/test_x.py and tests/integration/test_x.py as the same module
    `test_x` (the test folders are not packages): the whole suite stops at collection."""
    tests = PACKAGE.parent / "tests"
    where: dict[str, list[str]] = defaultdict(list)
    for path in tests.rglob("test_*.py"):
        where[path.name].append(str(path.relative_to(tests)))
    assert len(where) > 50
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}
