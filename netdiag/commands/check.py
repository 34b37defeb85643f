"""`netdiag check`: collect (or load) a Snapshot, run the rules, report, and exit by severity.

`--all` reads every namespace and reports every finding; `--ns REF` reads the same and reports
the findings that involve the namespaces asked for or one on their paths (veth peers, bridges,
the overlay and underlay they ride): a superset of what concerns them, never a different
answer; `--from FILE` checks a saved snapshot. Exit codes: 0 nothing at or above `--fail-on`,
1 findings at or above it, 2 bad usage or input, 3 a namespace could not be read at all (not
entered, not read in time: the report's "clean" would say nothing about it).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from netdiag import private_files, terminal
from netdiag.checks.output import FORMAT_NAMES
from netdiag.cli import SUMMARIES
from netdiag.commands.common import add_docker_arg, collect_scoped, focus_offline, seconds
from netdiag.commands.fleet import add_etcd_access_args
from netdiag.errors import EXIT_COLLECT, EXIT_FINDINGS, EXIT_OK, CollectError, UsageError
from netdiag.findings.severity import Severity

if TYPE_CHECKING:
    from netdiag.checks import engine
    from netdiag.model import Snapshot

# The rules, the collectors and the model are imported in run(), not here: `check --help`
# needs none of them (tests/unit/test_cli_imports.py).


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help=SUMMARIES["check"],
        description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every namespace (the default)")
    which.add_argument("--ns", action="append", default=[], metavar="REF",
                       help="report on this namespace and those on its paths (repeatable), "
                            "e.g. --ns container:web")
    parser.add_argument("--from", dest="from_file", metavar="SNAPSHOT",
                        help="check a saved snapshot instead of the kernel; e.g. --from "
                             "snap.json")
    parser.add_argument("--fleet", metavar="URL",
                        help="check the fleet whose agents publish into etcd at URL: every "
                             "node's snapshot merged, and the rules between nodes; e.g. "
                             "--fleet http://10.0.0.5:2379")
    add_etcd_access_args(parser)
    parser.add_argument("--rule", action="append", default=[], metavar="NAME",
                        help="run only this rule, by name or code (repeatable); e.g. --rule "
                             "mtu-mismatch")
    parser.add_argument("--skip", action="append", default=[], metavar="NAME",
                        help="do not run this rule (repeatable); e.g. --skip ND101")
    parser.add_argument("--config", metavar="FILE",
                        help="YAML: rules, severities, exclusions, expected flows; e.g. "
                             "--config netdiag.yaml")
    parser.add_argument("--timeout", type=seconds, metavar="SECONDS",
                        help="bound the whole run (e.g. 10): namespaces not read in time are "
                             "gaps and make the exit code 3, rules not finished are unknown")
    add_docker_arg(parser)
    parser.add_argument("--format", choices=sorted(FORMAT_NAMES), default="text",
                        help="the report's form on stdout (default: text); e.g. --format "
                             "sarif")
    parser.add_argument("--output", action="append", default=[], metavar="FORMAT=FILE",
                        help="also write the report in FORMAT to FILE (repeatable); e.g. "
                             "--output junit=report.xml")
    parser.add_argument("--fail-on", choices=[s.value for s in Severity], default="warning",
                        help="lowest severity that makes the exit code 1 (default: warning)")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 whatever was found")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing when nothing is found (for cron; the exit code "
                             "is the same)")
    parser.add_argument("--probe", action="store_true",
                        help="also send active probes between the namespaces read (nothing is "
                             "sent without); e.g. check --all --probe")
    parser.add_argument("--probe-external", action="store_true",
                        help="with --probe: also probe targets no namespace netdiag read holds "
                             "(upstream resolvers, gateways beyond the host)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from netdiag.checks import config as check_config
    from netdiag.checks import engine
    from netdiag.checks.output import text
    from netdiag.checks.output.formats import FORMATS
    from netdiag.findings.rule import CheckConfig
    from netdiag.model.serialize import load

    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    outputs = _outputs(args.output)
    config = check_config.load(args.config) if args.config else CheckConfig()
    config = check_config.with_command_line(config, args.rule, args.skip)

    if args.probe_external and not args.probe:
        raise UsageError("--probe-external goes with --probe")
    if args.from_file and args.probe:
        # A saved snapshot may come from another host: its addresses are not ours to probe.
        raise UsageError("--probe sends packets from live namespaces; it cannot be used "
                         "with --from")
    if args.from_file and args.fleet:
        raise UsageError("--from and --fleet both say where the snapshot comes from: give one")
    if args.fleet and args.probe:
        raise UsageError("--probe sends packets from live namespaces of this machine; it "
                         "cannot be used with --fleet")
    if args.fleet:
        from netdiag.fleet import gather

        snapshot = gather(args.fleet)
        if not snapshot.machines and not snapshot.gaps:
            raise CollectError(f"no node publishes into {args.fleet} (start `netdiag agent "
                               f"--etcd {args.fleet}` on each machine)")
        focus = focus_offline(snapshot, args.ns)
    elif args.from_file:
        # A big snapshot's million records are no garbage: frozen as they come, not first
        # walked by a collection at the end of the load (0.2 s for 1M routes).
        collecting = gc.isenabled()
        gc.disable()
        try:
            snapshot = load(args.from_file)
            gc.freeze()
        finally:
            if collecting:
                gc.enable()
        # (no --ns: nothing to resolve, and the resolver's import loads every collector)
        focus = focus_offline(snapshot, args.ns) if args.ns else frozenset()
    else:
        snapshot, focus = collect_scoped(args.ns, deadline, args.docker)
    # The snapshot lives until exit: keep the cyclic GC from walking its (maybe millions of)
    # records again at every collection the rules trigger.
    gc.freeze()
    if args.probe:
        snapshot = _probe(snapshot, focus, deadline, args.probe_external)
    report = engine.run(snapshot, config, focus=focus, deadline=deadline)

    if not (args.quiet and _nothing_found(report)):
        sys.stdout.write(text.render(report, terminal.look(args.color))
                         if args.format == "text" else FORMATS[args.format](report))
    for fmt, path in outputs:
        _write(path, FORMATS[fmt](report))
    if report.unread and not args.exit_zero:
        return EXIT_COLLECT  # namespaces were not read: no "all clear" from the rest
    return _exit_code(report, Severity(args.fail_on), args.exit_zero)


def _nothing_found(report: engine.Report) -> bool:
    """No finding, no rule left unknown, no namespace left unread: nothing to say (cron)."""
    return not report.findings and not report.unknown and \
        all(gap.kind in ("feature-missing", "gone") for gap in report.gaps) and \
        not report.unread


def _outputs(values: list[str]) -> list[tuple[str, str]]:
    outputs = []
    for value in values:
        fmt, sep, path = value.partition("=")
        if not sep or not path or fmt not in FORMAT_NAMES:
            raise UsageError(f"--output {value!r}: expected FORMAT=FILE with FORMAT one of "
                             f"{', '.join(sorted(FORMAT_NAMES))}")
        why = _unwritable(Path(path))
        if why:  # said now, not after a long collection and the report on stdout
            raise UsageError(f"--output {value}: {why}")
        outputs.append((fmt, path))
    return outputs


def _unwritable(path: Path) -> str:
    """Why `path` cannot be written ("" when it can, as far as can be told beforehand)."""
    folder = path.parent
    if path.is_dir():
        return "is a folder"
    if not folder.is_dir():
        return f"no folder {folder}"
    if not os.access(path if path.exists() else folder, os.W_OK):  # also a read-only mount
        return f"{'the file' if path.exists() else folder} is not writable"
    return ""


def _write(path: str, text: str) -> None:
    try:
        private_files.write(path, text.encode())  # a report quotes the snapshot: root's only
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def _probe(snapshot: Snapshot, focus: frozenset[int], deadline: float | None,
           external: bool) -> Snapshot:
    """Active probes (netdiag.probe): the snapshot comes back with their measurements in
    `probes`, which rules cite as evidence. Progress on a terminal while they run, and what
    was probed on stderr at the end (stdout is the report, maybe JSON)."""
    from netdiag.probe.runner import summary, with_probes
    from netdiag.progress import Progress

    def label(ns_id: int) -> str:
        state = snapshot.namespace(ns_id)
        return state.ref.display if state else f"inode:{ns_id}"

    with Progress() as progress:
        probed, planned = with_probes(
            snapshot, focus=focus, deadline=deadline, external=external,
            progress=lambda done, total, task: progress.update(
                f"probing {done + 1}/{total}: {task.kind} {label(task.namespace)} → "
                f"{task.target}"))
    for line in summary(planned, probed.probes, label):
        print(line, file=sys.stderr)
    return probed


def _exit_code(report: engine.Report, fail_on: Severity, exit_zero: bool) -> int:
    worst = report.worst()
    if exit_zero or worst is None or worst.rank < fail_on.rank:
        return EXIT_OK
    return EXIT_FINDINGS
