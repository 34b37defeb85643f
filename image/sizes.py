"""Where the bytes of an image go: run inside it (build-offline.sh does, after the build).

    docker run -i --rm --entrypoint python3 IMAGE - "BASE PACKAGES..." < image/sizes.py

Sizes are the files' own (what `docker image inspect` adds up), each file counted once. A
package's are the files dpkg lists for it; the Debian base is the packages debootstrap put in.
"""

import os
import sys
from pathlib import Path

SKIP = ("/proc", "/sys", "/dev")
VENV = Path("/opt/netdiag")
SITE = VENV / "lib/python3.11/site-packages"
PYTHON_PACKAGES = ("python3", "python3.11", "python3-minimal", "python3.11-minimal",
                   "libpython3.11-minimal", "libpython3.11-stdlib", "libpython3-stdlib")
TOP = 8  # packages named in each group


def file_sizes() -> dict[str, int]:
    sizes, seen = {}, set()
    for top, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in SKIP]
        for name in files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                sizes[path] = st.st_size
    return sizes


def merged(path: str) -> str:
    """Where a file dpkg lists under /bin, /lib or /sbin is on a merged-/usr system."""
    folder, name = os.path.split(path)
    return os.path.join(os.path.realpath(folder), name)


def package_files() -> dict[str, list[str]]:
    owned = {}
    for listing in Path("/var/lib/dpkg/info").glob("*.list"):
        package = listing.stem.split(":")[0]
        owned[package] = listing.read_text().splitlines()
    return owned


def elsewhere(left: dict[str, int]) -> dict[str, int]:
    """The remaining files by their folder, two levels deep (/var/lib, /etc/ssl...)."""
    folders = {}
    for path, size in left.items():
        folder = "/".join(path.split("/")[:3])
        folders[folder] = folders.get(folder, 0) + size
    return folders


def main() -> None:
    base = set(sys.argv[1].split()) if len(sys.argv) > 1 else set()
    sizes = file_sizes()
    left = dict(sizes)
    per_package = {}
    for package, paths in package_files().items():
        per_package[package] = sum(left.pop(path, 0) or left.pop(merged(path), 0)
                                   for path in paths)
    python = {p: per_package.pop(p) for p in PYTHON_PACKAGES if p in per_package}
    # Python's own modules compiled into bytecode by the slimming step are no package's.
    python["(the stdlib's bytecode, zipped)"] = sum(left.pop(p) for p in list(left)
                                             if p.startswith("/usr/lib/python3"))
    venv = {}
    for path in [p for p in left if p.startswith(f"{VENV}/")]:
        relative = Path(path).relative_to(SITE) if path.startswith(f"{SITE}/") else None
        part = relative.parts[0] if relative else Path(path).relative_to(VENV).parts[0] + "/"
        part = part.split("-")[0].removesuffix(".dist").removesuffix(".py")
        venv[part] = venv.get(part, 0) + left.pop(path)
    groups = {
        "Debian base (debootstrap minbase)": {p: s for p, s in per_package.items() if p in base},
        "toolbox packages and their libraries":
            {p: s for p, s in per_package.items() if p not in base},
        "Debian's Python 3.11": python,
        f"{VENV} (netdiag, its libraries, PyPI tools)": venv,
        "files no package owns": elsewhere(left),
    }
    total = sum(sizes.values())
    print(f"{'where the bytes go':<52} {'MB':>7}")
    for title, parts in groups.items():
        print(f"{title:<52} {sum(parts.values()) / 1e6:7.1f}")
        for name, size in sorted(parts.items(), key=lambda item: -item[1])[:TOP]:
            print(f"    {name:<48} {size / 1e6:7.1f}")
    print(f"{'total':<52} {total / 1e6:7.1f}")


if __name__ == "__main__":
    main()
