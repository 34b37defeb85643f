"""The project's small error hierarchy, classified by kind.

OS, netlink and parsing errors are translated into these once, at the boundary where they
happen, with the context a user needs (which namespace, which object). The CLI maps each kind
to one line of text and an exit code; nothing below the CLI prints or exits.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_COLLECT = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class NetdiagError(Exception):
    """Base class: a message fit for one line, and the exit code the CLI uses for it."""

    exit_code = EXIT_USAGE


class UsageError(NetdiagError):
    """Bad command-line usage or bad input file."""


class Ambiguous(UsageError):
    """A name that matches several objects (namespaces): the message lists them."""


class NotFound(NetdiagError):
    """A namespace, network, lab or other object that does not exist."""


class Conflict(NetdiagError):
    """The object exists already or overlaps with one that does."""


class CorruptSnapshot(NetdiagError):
    """A snapshot file that cannot be read back."""


class TopologyError(NetdiagError):
    """An invalid lab topology file."""


class PermissionDenied(NetdiagError):
    """The kernel refused: netdiag is not root, or is root without `capability` (in a
    container); capabilities.refused makes these."""

    exit_code = EXIT_COLLECT

    def __init__(self, message: str, capability: str = ""):
        super().__init__(message)
        self.capability = capability  # "NET_ADMIN"...: what root lacked; "" if not that


class NamespaceGone(NetdiagError):
    """A namespace disappeared while netdiag was reading it."""

    exit_code = EXIT_COLLECT


class KernelFeatureMissing(NetdiagError):
    """This kernel lacks a feature (IPVS, 8021q, ESP...)."""

    exit_code = EXIT_COLLECT


class DriverError(NetdiagError):
    """A network driver could not carry out an operation."""

    exit_code = EXIT_COLLECT


class RepairFailed(NetdiagError):
    """A repair step the kernel refused or that failed: the repair stops there. It keeps the
    exit code, and the capability netdiag lacked, of the error that failed the step."""

    def __init__(self, message: str, cause: NetdiagError):
        super().__init__(f"{message}: {cause}")
        self.exit_code = cause.exit_code
        self.capability = getattr(cause, "capability", "")


class CollectError(NetdiagError):
    """Reading kernel state failed for a reason that is not one of the kinds above."""

    exit_code = EXIT_COLLECT


class Interrupted(NetdiagError):
    """The user pressed Ctrl-C; the message says what was undone."""

    exit_code = EXIT_INTERRUPTED


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def is_plain_key(key: object) -> bool:
    """Whether a key of a user's file looks like a key name, so an error may quote it: the
    keys of a file that is not ours (a password file given by mistake) are its lines."""
    return _PLAIN_KEY.fullmatch(str(key)) is not None


def yaml_position(exc: Exception) -> str:
    """`:line:column` of a PyYAML error, or nothing when it knows no position."""
    mark = getattr(exc, "problem_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark else ""


def yaml_problem(exc: Exception) -> str:
    """What PyYAML expected, without what it quotes from the file (its own message prints
    the offending line; `found undefined alias 'hunter2'` → `found undefined alias`).
    Token names such as '<block end>' stay."""
    parts = (getattr(exc, "context", None), getattr(exc, "problem", None))
    problem = _QUOTED.sub(_token_or_nothing, ", ".join(p for p in parts if p))
    return re.sub(r"\s{2,}", " ", problem).strip() or "cannot parse"


def _token_or_nothing(quoted: re.Match) -> str:
    inner = quoted.group()[1:-1]
    return quoted.group() if len(inner) <= 1 or inner.startswith("<") else ""
