"""`netdiag tui` fails with one line, before taking over the terminal, on bad input."""

from __future__ import annotations

from netdiag.cli import main
from tests.tui.conftest import FIXTURE


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(["tui", *argv])
    err = capsys.readouterr().err
    return code, err


def test_missing_snapshot_file(capsys, tmp_path):
    code, err = _run(capsys, "--from", str(tmp_path / "nope.json"))
    assert code == 2 and err.count("\n") == 1 and "no such file" in err


def test_unknown_namespace_in_a_snapshot(capsys):
    code, err = _run(capsys, "--from", str(FIXTURE), "--ns", "no-such-thing")
    assert code == 2 and err.count("\n") == 1 and "no-such-thing" in err


def test_refresh_must_be_positive(capsys):
    code, err = _run(capsys, "--from", str(FIXTURE), "--refresh", "0")
    assert code == 2 and "--refresh" in err


def test_without_a_terminal_it_refuses_in_one_line(tmp_path):
    """Issue 31: `netdiag tui </dev/null >file` wrote escape codes into the file until
    killed."""
    import subprocess
    import sys

    out = tmp_path / "out"
    with open(out, "w") as stdout:
        done = subprocess.run([sys.executable, "-m", "netdiag", "tui", "--from", str(FIXTURE)],
                              stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    assert done.returncode == 2 and out.read_text() == ""
    assert done.stderr.count("\n") == 1 and "needs a terminal" in done.stderr, done.stderr
