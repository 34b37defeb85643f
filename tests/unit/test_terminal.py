"""What text output looks like with and without a terminal: colour, NO_COLOR, --color, tables
that fit, a healthy report that says one line, footnotes for what the kernel lacks, --quiet."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

import pytest

from netdiag import terminal
from netdiag.checks import registry
from netdiag.cli import main
from netdiag.model import Gap
from netdiag.model.serialize import save
from tests.fixtures.scenarios import docker_host

ANSI = "\x1b["


def run_on_a_terminal(argv: list[str], columns: int = 60, **env: str) -> str:
    """`python -m netdiag ARGV` with its stdout on a pseudo-terminal of `columns` columns."""
    leader, follower = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment.update({"COLUMNS": str(columns), "TERM": "xterm", **env})
    process = subprocess.Popen([sys.executable, "-m", "netdiag", *argv], stdout=follower,
                               stderr=subprocess.DEVNULL, env=environment)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end is closed once the process has gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def run_on_a_pipe(argv: list[str], **env: str) -> str:
    environment = {**os.environ, "COLUMNS": "60", **env}
    return subprocess.run([sys.executable, "-m", "netdiag", *argv], capture_output=True,
                          text=True, env=environment, check=False).stdout


def test_the_look_follows_the_stream_and_the_choice(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    pipe = io.StringIO()
    assert terminal.look("auto", pipe) == terminal.Look(False, 0)
    assert terminal.look("always", pipe).color is True
    assert terminal.look("never", pipe).color is False
    assert terminal.Look(True).paint("x", "error") == "\x1b[1;31mx\x1b[0m"
    assert terminal.Look(False).paint("x", "error") == "x"


def test_a_table_on_a_terminal_wraps_to_its_width_and_on_a_pipe_keeps_its_rows():
    on_terminal = run_on_a_terminal(["explain"], columns=60)
    lines = [line for line in on_terminal.splitlines() if line]
    assert ANSI + "1m" in lines[0]  # the header, bold
    plain = [line.replace(ANSI + "1m", "").replace(ANSI + "0m", "") for line in lines]
    assert max(len(line) for line in plain) <= 60, plain
    rules = len(registry.catalogue())
    assert len(lines) > rules + 1  # the rules and a header, some of them on several lines
    on_pipe = run_on_a_pipe(["explain"])
    assert ANSI not in on_pipe
    assert len(on_pipe.splitlines()) == rules + 1  # one line per rule: easy to grep
    assert max(len(line) for line in on_pipe.splitlines()) > 60


def test_no_color_and_color_never_win_over_a_terminal():
    assert ANSI not in run_on_a_terminal(["explain"], NO_COLOR="1")
    assert ANSI not in run_on_a_terminal(["explain", "--color", "never"])
    assert ANSI in run_on_a_pipe(["explain", "--color", "always"])


@pytest.fixture
def faulty(tmp_path):
    d = docker_host()
    d.b.sysctl(d.host, "net.ipv4.ip_forward", 0)
    path = tmp_path / "faulty.json"
    save(d.build(), path)
    return str(path)


def _saved(tmp_path, snapshot, name: str) -> str:
    path = tmp_path / name
    save(snapshot, path)
    return str(path)


def test_check_paints_severities_on_a_terminal_only(faulty):
    coloured = run_on_a_terminal(["check", "--from", faulty], columns=100)
    assert "\x1b[1;31mERROR (1)\x1b[0m" in coloured
    assert "\x1b[1;31mND501 ip-forward-disabled\x1b[0m" in coloured
    plain = run_on_a_pipe(["check", "--from", faulty])
    assert ANSI not in plain and "ERROR (1)" in plain


def test_a_kernel_gap_no_rule_needed_is_not_shown_and_one_that_is_is_a_footnote(tmp_path,
                                                                                  capsys):
    from dataclasses import replace

    healthy = docker_host().build()
    gap = Gap("ipvs", "feature-missing", "kernel has no IPVS")
    quiet_host = _saved(tmp_path, replace(healthy, gaps=(gap,)), "no-ipvs.json")
    assert main(["check", "--from", quiet_host]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [out.splitlines()[0]] and out.startswith("0 errors"), out
    # With a Swarm service, the IPVS rule would have had something to read: one note, last.
    (engine,) = healthy.docker
    swarm = replace(engine, swarm=replace(engine.swarm, state="active"))
    needing = _saved(tmp_path, replace(healthy, gaps=(gap, gap), docker=(swarm,)), "swarm.json")
    main(["check", "--from", needing, "--rule", "ipvs-no-backends"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "note: kernel has no IPVS (ipvs not read)", lines
    assert sum("IPVS" in line for line in lines) == 1 and "NOT CHECKED" not in lines


def test_quiet_prints_nothing_when_nothing_is_found_and_everything_otherwise(tmp_path, faulty,
                                                                               capsys):
    healthy = _saved(tmp_path, docker_host().build(), "healthy.json")
    assert main(["check", "--from", healthy, "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["check", "--from", faulty, "-q"]) == 1
    assert "ip-forward-disabled" in capsys.readouterr().out
