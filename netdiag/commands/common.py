"""What several subcommands share: choosing namespaces and getting a Snapshot.

A command either collects live (`--ns REF`, repeatable; all namespaces by default; which ones
is netdiag/collect/scope.py's choice) or reads a saved snapshot (`--from FILE`). Reading other
namespaces needs root; without it netdiag says so in one line and exits 3, unless only
`--ns self` was asked for.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from netdiag import terminal

if TYPE_CHECKING:  # the collectors and the model load when a command runs, not for its --help
    from netdiag.model import Snapshot


def add_namespace_args(parser: argparse.ArgumentParser, offline: bool = True) -> None:
    parser.add_argument("--ns", action="append", metavar="REF", default=[],
                        help="namespace: self, host, NAME, PATH, pid:N, container:NAME, "
                             "inode:N, LAB/NODE (repeatable; default: all); e.g. --ns "
                             "container:web --ns host")
    if offline:
        parser.add_argument("--from", dest="from_file", metavar="FILE",
                            help="read a saved snapshot instead of the kernel; e.g. --from "
                                 "before.json")
    parser.add_argument("--timeout", type=seconds, metavar="SECONDS", default=None,
                        help="give up on namespaces not read within this time (e.g. 5); "
                             "what was not read is listed, and the exit code is 3")
    add_docker_arg(parser)


def add_docker_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--docker", action="append", default=[], metavar="URL",
                        help="read this Docker engine (unix:///PATH; repeatable) instead of "
                             "every one found (DOCKER_HOST, the default socket, each running "
                             "dockerd); --docker none reads none; e.g. --docker "
                             "unix:///run/docker.sock")


MAX_SECONDS = 86400.0  # a day is plenty; past ~292 years Python's timers overflow (a traceback)


def seconds(text: str) -> float:
    """argparse type of a duration: a positive number of seconds, at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of seconds, at "
                                         f"most {MAX_SECONDS:g} (a day)")
    return value


def timed_out(snapshot: Snapshot) -> list[str]:
    """The namespaces a collection did not read in time (their gaps' messages)."""
    return [gap.message for gap in snapshot.gaps if gap.kind == "timeout"]


def get_snapshot(args: argparse.Namespace) -> Snapshot:
    """A saved snapshot (`--from`), or the namespaces `--ns` names (all by default) read now."""
    from netdiag.collect import scope
    from netdiag.model.serialize import load

    if getattr(args, "from_file", None):
        return load(args.from_file)
    chosen = scope.select(args.ns, everything=False, engines=args.docker)
    return read_with_progress(chosen.read, args.timeout, chosen.docker)


def read_with_progress(refs, timeout, intent, collectors=None) -> Snapshot:
    """collect_snapshot (of `collectors`, default all) with a live line on a terminal while
    it takes more than a moment."""
    from netdiag.collect import COLLECTORS, collect_snapshot
    from netdiag.progress import Progress

    with Progress() as progress:
        return collect_snapshot(refs, timeout=timeout, intent=intent,
                                collectors=collectors or COLLECTORS,
                                progress=lambda done, total: progress.update(
                                    f"reading namespaces: {done}/{total}"))


def print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                look: terminal.Look = terminal.PLAIN) -> None:
    """An aligned text table: plain on a pipe, fitted to the terminal on one
    (netdiag/terminal.py)."""
    sys.stdout.write(terminal.table(headers, rows, look))


def remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def collect_scoped(refs: list[str], deadline: float | None, engines: list[str],
                   collectors=None) -> tuple[Snapshot, frozenset[int]]:
    """Read the namespaces `refs` name (all without any) within the deadline: the snapshot
    and the chosen namespaces' ids (the focus of `check --ns`, `exposure --ns`); only
    `collectors` of each, when given."""
    from netdiag.collect import scope
    from netdiag.errors import CollectError

    chosen = scope.select(refs, engines=engines)
    snapshot = read_with_progress(chosen.read, remaining(deadline), chosen.docker, collectors)
    if not snapshot.namespaces:
        reasons = "; ".join(gap.message for gap in snapshot.gaps[:3]) or "no namespace found"
        raise CollectError(f"could not read any namespace: {reasons}")
    return snapshot, chosen.chosen


def focus_offline(snapshot: Snapshot, refs: list[str]) -> frozenset[int]:
    """The ids of the namespaces `refs` name in a saved snapshot."""
    from netdiag.collect import namespace_refs

    known = [state.ref for state in snapshot.namespaces]
    return frozenset(ref.id for ref in namespace_refs.resolve_all(refs, known,
                                                                  snapshot.docker))
