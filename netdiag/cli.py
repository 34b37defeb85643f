"""The `netdiag` command: parses arguments, runs one subcommand, and is the error boundary.

Each subcommand lives in netdiag/commands/ with `register(subparsers)` (which sets
`func` on its parser) and returns an exit code. Only the module of the command being run is
imported (the others pull in netlink, pydantic and Textual, which would slow every start);
`--help` lists them from SUMMARIES without importing any. Every NetdiagError becomes one line
on stderr and the error's exit code; nothing below this module prints a traceback or calls
exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

import netdiag
from netdiag import __version__, capabilities, terminal
from netdiag.errors import EXIT_USAGE, NetdiagError

# Each command's one line, here so that `netdiag --help` lists them without importing them.
SUMMARIES = {
    "ns": "list network namespaces",
    "show": "show namespaces' network state as tables",
    "snapshot": "save namespaces' state as a JSON snapshot",
    "diff": "compare two snapshots (exit 1 if they differ)",
    "check": "diagnose: run the rules and report findings with evidence and repairs",
    "path": "why can't A reach B: simulate a flow hop by hop, and its reply",
    "capture": "capture a flow on every interface of its hops at once, beside path's verdict",
    "exposure": "who can reach each listening socket, and how, sorted by risk",
    "explain": "print what a rule finds and how to repair it",
    "repair": "apply the repairs of what check finds, then check again",
    "lab": "build, inspect and remove labs of namespaces",
    "net": "build container networks with the bundled drivers",
    "plugin": "serve the bundled drivers to a Docker engine as its network and IPAM plugin",
    "tui": "interactive view of namespaces and findings",
    "agent": "publish this machine's snapshot into etcd for the fleet view",
    "fleet": "the machines whose agents publish into etcd: ls, show, snapshot",
    "completion": "print shell completion for bash or zsh",
    "man": "print the manual page (roff)",
}
COMMANDS = tuple(SUMMARIES)

# What `netdiag COMMAND --help` ends with: the commands people type first.
EXAMPLES = {
    "ns": ["netdiag ns list", "netdiag ns list --json"],
    "show": ["netdiag show --ns container:web", "netdiag show routes --ns host",
             "netdiag show docker", "netdiag show links --from snap.json --ns web",
             "netdiag show connections --ns container:web"],
    "snapshot": ["netdiag snapshot -o before.json",
                 "netdiag snapshot --ns container:web --ns host -o web.json"],
    "diff": ["netdiag diff before.json after.json",
             "netdiag diff before.json after.json --all-fields --json"],
    "check": ["netdiag check --all", "netdiag check --ns container:web --probe",
              "netdiag check --all --format sarif --output junit=report.xml",
              "netdiag check --from snap.json --rule mtu-mismatch",
              "netdiag check --fleet http://10.0.0.5:2379"],
    "path": ["netdiag path container:web db:6379",
             "netdiag path host 172.18.0.2 --proto icmp --size 1472",
             "netdiag path container:web 10.0.0.9:443 --probe --trace",
             "netdiag path lab1/h1 10.0.0.2:80 --from snapshot.json --format json"],
    "capture": ["netdiag capture container:web db:6379",
                "netdiag capture lab1/h1 10.0.0.2 --size 1472 -w flow.pcapng",
                "netdiag capture container:web db:6379 --wait --timeout 30"],
    "exposure": ["netdiag exposure", "netdiag exposure --ns container:db --format json",
                 "netdiag exposure --from snap.json --format sarif"],
    "explain": ["netdiag explain", "netdiag explain mtu-mismatch", "netdiag explain ND921"],
    "repair": ["netdiag repair --ns container:web", "netdiag repair --lab broken-mtu --apply",
               "netdiag repair --ns host --apply --unsafe --rule ip-forward-disabled"],
    "lab": ["netdiag lab examples", "netdiag lab up broken-mtu", "netdiag lab status broken-mtu",
            "netdiag lab exec broken-mtu web -- ip route", "netdiag lab down broken-mtu",
            "netdiag lab from-snapshot snap.json -o repro.yaml"],
    "net": ["netdiag net create front --host-ns lab-host --subnet 172.30.0.0/24",
            "netdiag net connect front web --host-ns lab-host -p 8080:80",
            "netdiag net check --host-ns lab-host",
            "netdiag net --store etcd://10.0.0.5:2379 agent --host-ns lab-host"],
    "plugin": ["netdiag plugin serve --name ndnet --host-ns /run/netns/engine",
               "netdiag plugin serve --name ndnet --host-ns engine --store etcd://10.0.0.5:2379"],
    "tui": ["netdiag tui", "netdiag tui --ns container:web", "netdiag tui --from snap.json"],
    "agent": ["netdiag agent --etcd http://10.0.0.5:2379",
              "netdiag agent --etcd http://10.0.0.5:2379 --node worker-3 --interval 10"],
    "fleet": ["netdiag fleet ls --etcd http://10.0.0.5:2379",
              "netdiag fleet show worker-3 --etcd http://10.0.0.5:2379",
              "netdiag fleet snapshot -o fleet.json --etcd http://10.0.0.5:2379"],
    "completion": ["netdiag completion bash > /etc/bash_completion.d/netdiag",
                   "source <(netdiag completion zsh)"],
    "man": ["netdiag man > /usr/local/share/man/man1/netdiag.1", "netdiag man | man -l -"],
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, with netdiag's exit code for them."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"netdiag: error: {message} (see `{self.prog} --help`)\n")


def build_parser(wanted: str | None = None, everything: bool = False
                 ) -> argparse.ArgumentParser:
    """The parser; only the `wanted` command's module is loaded (or, with `everything`, all
    of them: for the man page and the completions), the others get placeholders with their
    one line (`netdiag --help` loads none)."""
    parser = _Parser(prog="netdiag", description=netdiag.__doc__.strip())
    parser.add_argument("--version", action="version", version=f"netdiag {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=_Parser)
    subparsers.required = True
    for name in COMMANDS:
        if everything or wanted == name:
            import_module(f"netdiag.commands.{name}").register(subparsers)
            command = subparsers.choices[name]
            command.epilog = "examples:\n" + "".join(f"  {line}\n" for line in EXAMPLES[name])
            command.formatter_class = argparse.RawDescriptionHelpFormatter
            _add_color(command)
        else:  # enough for `netdiag --help` and for argparse to know the name
            subparsers.add_parser(name, help=SUMMARIES[name])
    return parser


def _add_color(parser: argparse.ArgumentParser) -> None:
    """`--color` on every command that runs (the leaves: `ns list`, `lab up`...)."""
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in nested:
        for sub in action.choices.values():
            _add_color(sub)
    if not nested:
        parser.add_argument("--color", choices=terminal.CHOICES, default="auto",
                            help="colour in text output: auto (on a terminal, unless NO_COLOR "
                                 "is set), always, never (default: auto)")


def _choose_etcd_access(args: argparse.Namespace) -> None:
    """For a command that talks to etcd (its parser has --etcd-cacert): the files and password
    it proves itself with, and a warning when its etcd is plain HTTP off this machine."""
    if not hasattr(args, "etcd_cacert"):
        return
    from netdiag import etcd

    etcd.use_access(etcd.EtcdAccess.from_environment(
        cacert=args.etcd_cacert, cert=args.etcd_cert, key=args.etcd_key,
        password_file=args.etcd_password_file))
    url = next((u for u in (getattr(args, name, None) for name in ("etcd", "fleet", "store"))
                if u and "://" in u), None)
    if url and (warning := etcd.plain_http_warning(url)):
        print(f"netdiag: {warning}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(wanted if wanted in COMMANDS else None).parse_args(argv)
    try:
        _choose_etcd_access(args)
        return args.func(args)
    except NetdiagError as exc:
        print(f"netdiag: error: {exc}", file=sys.stderr)
        for advice in capabilities.advice([getattr(exc, "capability", "")]):
            print(f"netdiag: note: {advice}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("netdiag: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `netdiag show | head`
        return 0
