"""Make the image smaller without losing a tool: run once, as the Dockerfile's last step.

* Python modules outside netdiag keep only their bytecode (compiled beside the source, which
  Python loads when the source is gone): it halves the space Python takes. A traceback inside a
  library then shows no source line; netdiag's own code keeps its source.
* The standard library's bytecode goes into /usr/lib/python311.zip, which CPython puts on
  sys.path for exactly this (zlib is built into Debian's python3.11): 11.6 MB become 4.7 MB.
  Compiled modules (lib-dynload) stay files.
* Test suites that wheels carry, PyYAML's C loader (netdiag reads YAML with the pure-Python safe
  loader), the leap-second copy of the time zones (`right/`) and glibc's iconv modules for
  legacy character sets go. Python, the tools and UTF-8 do not use them (glibc converts
  UTF-8/16/32 and ASCII without modules).
* dpkg's and debconf's backup copies (`*-old`) and the packages' checksum lists (`*.md5sums`:
  only `dpkg --verify` reads them) go; dpkg's file lists stay (sizes.py reads them).

    python3 slim.py ROOT KEEP...   (KEEP: folders left as they are)
"""

from __future__ import annotations

import compileall
import re
import shutil
import sys
import zipfile
from pathlib import Path

PYTHON_TREES = ("usr/lib/python3.11", "opt/netdiag/lib/python3.11/site-packages")
STDLIB_ZIP = "usr/lib/python311.zip"
STDLIB_FILES_STAY = ("lib-dynload", "site-packages", "dist-packages")
DROPPED = ("usr/share/zoneinfo/right", "usr/lib/x86_64-linux-gnu/gconv/*.so",
           "opt/netdiag/lib/python3.11/site-packages/yaml/_yaml.*.so",
           "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "var/lib/dpkg/info/*.md5sums")
WHEEL_TESTS = ("tests", "test")  # folder names inside site-packages' packages


def sourceless(tree: Path, keep: list[Path]) -> None:
    skip = re.compile("|".join(re.escape(f"{k}/") for k in keep)) if keep else None
    if not compileall.compile_dir(tree, quiet=2, legacy=True, workers=0, rx=skip):
        sys.exit(f"slim: compiling {tree} failed")
    for path in sorted(tree.rglob("*.py")):
        if any(path.is_relative_to(k) for k in keep):
            continue
        if path.with_suffix(".pyc").exists():
            path.unlink()
    for cache in list(tree.rglob("__pycache__")):
        if not any(cache.is_relative_to(k) for k in keep):
            shutil.rmtree(cache)


def zip_stdlib(root: Path) -> None:
    stdlib = root / PYTHON_TREES[0]
    with zipfile.ZipFile(root / STDLIB_ZIP, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
        for path in sorted(stdlib.rglob("*")):
            inside = path.relative_to(stdlib)
            if path.is_file() and inside.parts[0] not in STDLIB_FILES_STAY:
                zipped.write(path, inside.as_posix())
                path.unlink()
    for folder in sorted(stdlib.rglob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def remove(root: Path, pattern: str) -> None:
    for path in root.glob(pattern):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def main() -> None:
    root, keep = Path(sys.argv[1]), [Path(sys.argv[1], k) for k in sys.argv[2:]]
    site = root / PYTHON_TREES[1]
    for package in site.iterdir():
        for name in WHEEL_TESTS:
            if package.is_dir() and package not in keep:
                remove(package, name)
    remove(site, "*/_testcapi*.so")
    for pattern in DROPPED:
        remove(root, pattern)
    for tree in PYTHON_TREES:
        sourceless(root / tree, keep)
    zip_stdlib(root)


if __name__ == "__main__":
    main()
