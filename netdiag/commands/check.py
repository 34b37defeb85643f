"""`netdiag check` (not written yet)."""

from netdiag.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("check", help="(not available yet)")
    parser.set_defaults(func=run)


def run(args) -> int:
    raise UsageError("`netdiag check` is not available yet")
