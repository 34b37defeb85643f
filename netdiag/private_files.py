"""Files and folders that hold netdiag's state — lab journals, driver stores, snapshots —
readable by root only: 0600 files in 0700 folders.

The mode is given when a file or folder is made, never narrowed after it was written: a
snapshot names every process and address of a host, a journal every object of a lab.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_dir(path: str | os.PathLike, own: bool = False) -> None:
    """Make `path` and its missing parents, each 0700. Folders that exist are left as they
    are (a user's folder is not ours to change), but for `path` itself when it is netdiag's
    `own` (/run/netdiag/labs, /var/lib/netdiag), made by an older netdiag with 0755."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:  # made meanwhile by another netdiag
            pass
    if own:
        os.chmod(path, DIR_MODE)


def create(path: str | os.PathLike) -> None:
    """Make sure the file at `path` exists and is 0600 (before SQLite opens it: SQLite gives
    its journal and WAL files the database file's mode)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
    os.chmod(path, FILE_MODE)


def write(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to the file at `path`, made 0600 (a file that was there is narrowed to
    0600 before its new content goes in)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, FILE_MODE)
        handle.write(data)
