"""The lab's state journal: what a lab made, written down BEFORE it is made.

Every namespace, process and file a lab creates is recorded here first (intent logging), and the
file is replaced atomically each time, so `lab down` can remove exactly what the lab made —
nothing else — even after a crash or `kill -9` in the middle of `lab up`.

The journal lives at /run/netdiag/labs/NAME.json (tmpfs: it goes with a reboot, as namespaces
do). Namespace discovery reads its `nodes` map to label lab namespaces as LAB/NODE.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from netdiag import private_files
from netdiag.errors import NotFound
from netdiag.netns import LAB_DIR

UNDERLAY_NODE = "ul"  # the node of a lab's underlay switch


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    start_time: int  # from /proc/PID/stat: tells our process from a later one with its pid
    netns: str


@dataclass
class Journal:
    """Mutable while a lab is being built; saved after every change."""

    name: str
    topology: str = ""  # the topology file it was built from
    definition: str = ""  # the topology itself, as JSON (the file may change or go)
    state: str = "building"  # building, up, failed
    builder: Process | None = None  # the `lab up` process, while it builds
    nodes: dict[str, str] = field(default_factory=dict)  # node → namespace name
    namespaces: list[str] = field(default_factory=list)  # every namespace, in creation order
    processes: list[Process] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    store: str = ""  # the drivers' store: the lab's own SQLite file, or a shared etcd's URL
    networks: dict[str, str] = field(default_factory=dict)  # network name → its driver id
    # One host's part of a lab (`lab up FILE --etcd URL --host NAME`): the journal is named
    # LAB@HOST, the lab's own name is `lab`, and the store is shared with the other hosts.
    lab: str = ""
    host: str = ""

    @property
    def lab_name(self) -> str:
        return self.lab or self.name

    @property
    def path(self) -> Path:
        return LAB_DIR / f"{self.name}.json"

    def save(self) -> None:
        private_files.make_dir(LAB_DIR, own=True)
        tmp = self.path.with_suffix(".tmp")
        private_files.write(tmp, json.dumps(asdict(self), indent=1).encode())
        os.replace(tmp, self.path)

    def add_process(self, process: Process) -> None:
        self.processes.append(process)
        self.save()

    def add_file(self, path: str) -> None:
        self.files.append(path)
        self.save()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    @property
    def condition(self) -> str:
        """What a person should be told: up, building (its `lab up` is still running), or
        half-built (that process was killed, or its rollback failed)."""
        if self.state == "up":
            return "up"
        builder = self.builder
        if self.state == "building" and builder is not None \
                and start_time(builder.pid) == builder.start_time:
            return "building"
        return "half-built"


def load(name: str) -> Journal:
    path = LAB_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"no lab named {name!r} (see `netdiag lab ls`)") from None
    except ValueError:
        raise NotFound(f"lab {name!r}: journal {path} is damaged") from None
    data["processes"] = [Process(**p) for p in data.get("processes", [])]
    data["builder"] = Process(**data["builder"]) if data.get("builder") else None
    return Journal(**data)


def host_part(lab: str, host: str) -> str:
    """The journal name of one host's part of a lab."""
    return f"{lab}@{host}"


def names() -> list[str]:
    if not LAB_DIR.is_dir():
        return []
    return sorted(p.stem for p in LAB_DIR.glob("*.json"))


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat),
    or -1 when it is gone — a zombie counts as gone: it has stopped, only its parent can
    still reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    fields = stat.rsplit(")", 1)[1].split()
    return -1 if fields[0] == "Z" else int(fields[19])
