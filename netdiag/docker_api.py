"""Where the host's Docker engines are, and a minimal read-only Engine API client.

Engines are found three ways, like a person would look: DOCKER_HOST (a unix:// URL), the
default socket, and every running `dockerd` process — its `-H`/`--host` unix sockets (the
default socket when it has none, or is socket-activated with fd://), its `--exec-root` (where
its sandboxes live) and its `--config-file`. A host with several engines, or an engine
inside a namespace as in the tests, is so described in full. `--docker URL` (repeatable) names
the engines instead; `--docker none` reads none. tcp:// and ssh:// engines are not on this
host's namespaces and are refused.

The client speaks HTTP/1.1 over the unix socket with the standard library only, one
keep-alive connection per thread. Every failure is a DockerUnavailable (a CollectError) whose
text names the engine; the caller records it as a gap.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from netdiag.errors import CollectError, UsageError

DEFAULT_SOCKET = "/var/run/docker.sock"
DEFAULT_EXEC_ROOT = "/var/run/docker"
DEFAULT_CONFIG = "/etc/docker/daemon.json"
TIMEOUT = 5.0


class DockerUnavailable(CollectError):
    """An engine did not answer, or answered with an error."""


@dataclass(frozen=True, slots=True)
class EngineAddress:
    """An engine to read: its socket, and its dockerd process when that was found."""

    socket: str
    pid: int = 0
    argv: tuple[str, ...] = field(default=(), repr=False)  # dockerd's command line

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def option(self, name: str, default: str = "") -> str:
        return option(list(self.argv), name) or default

    @property
    def exec_root(self) -> str:
        return self.option("--exec-root", DEFAULT_EXEC_ROOT)


def option(argv: list[str], *names: str) -> str:
    """The last value of `--name VALUE` or `--name=VALUE` in an argument list ("" if absent)."""
    found = options(argv, *names)
    return found[-1] if found else ""


def options(argv: list[str], *names: str) -> list[str]:
    """Every value of a repeatable option (`-H a -H b`, `--host=c`)."""
    found = []
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                found.append(argv[i + 1])
            elif arg.startswith(name + "="):
                found.append(arg[len(name) + 1:])
    return found


def socket_of(url: str) -> str:
    """The socket path of a unix:// URL (or a bare path); UsageError for anything else."""
    if url.startswith("unix://"):
        return url[len("unix://"):]
    if url.startswith("/"):
        return url
    raise UsageError(f"--docker {url}: only engines on this host's unix sockets can be read "
                     "(unix:///PATH); a tcp:// or ssh:// engine is not on this host's namespaces")


def dockerd_processes() -> list[tuple[int, list[str]]]:
    """(pid, argv) of every running dockerd. Each process's name is read with os.open: a host
    of 1000 containers runs thousands of processes, and pathlib's reads cost 0.1 s there."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fd = os.open(f"/proc/{entry.name}/comm", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if os.read(fd, 64) != b"dockerd\n":
                    continue
            finally:
                os.close(fd)
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().decode(
                errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        found.append((int(entry.name), [a for a in argv if a]))
    return found


def _sockets_of(argv: list[str]) -> list[str]:
    hosts = options(argv, "-H", "--host")
    paths = [h[len("unix://"):] for h in hosts if h.startswith("unix://")]
    if not hosts or any(h.startswith("fd://") for h in hosts):
        paths.append(DEFAULT_SOCKET)  # dockerd's default, and systemd's docker.socket
    return paths


def _same(path: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def find(urls: Sequence[str] = ()) -> list[EngineAddress]:
    """The engines to read: the ones `urls` names, else every one found on the host."""
    if list(urls) == ["none"]:
        return []
    processes = dockerd_processes()
    by_socket = {_same(path): (pid, argv) for pid, argv in processes for path in _sockets_of(argv)}
    if urls:
        wanted = [socket_of(url) for url in urls if url != "none"]
    else:
        wanted = []
        if os.environ.get("DOCKER_HOST", "").startswith("unix://"):
            wanted.append(socket_of(os.environ["DOCKER_HOST"]))
        wanted.append(DEFAULT_SOCKET)
        wanted += [path for _, argv in processes for path in _sockets_of(argv)]
    found: dict[str, EngineAddress] = {}
    for path in wanted:
        key = _same(path)
        if key in found or (not urls and not os.path.exists(path)):
            continue  # an engine found twice, or a default socket nobody serves
        pid, argv = by_socket.get(key, (0, []))
        found[key] = EngineAddress(path, pid, tuple(argv))
    # One engine may listen on several sockets: keep its first.
    seen_pids: set[int] = set()
    engines = []
    for address in found.values():
        if address.pid and address.pid in seen_pids:
            continue
        seen_pids.add(address.pid)
        engines.append(address)
    return engines


@cache
def _unix_connection():
    """http.client's connection over a unix socket. Made on first use: importing http.client
    costs 15 ms, a tenth of a `snapshot --docker none` of one namespace, which needs none."""
    import http.client

    class UnixConnection(http.client.HTTPConnection):
        def __init__(self, path: str, timeout: float):
            super().__init__("localhost", timeout=timeout)
            self._path = path

        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(self._path)

    return UnixConnection


class Client:
    """GET requests to one engine over one keep-alive connection (one Client per thread)."""

    def __init__(self, socket_path: str, timeout: float = TIMEOUT):
        self.socket_path = socket_path
        self._conn = _unix_connection()(socket_path, timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self._conn.close()

    def get(self, url: str):
        """The decoded JSON answer; DockerUnavailable when there is none."""
        import http.client  # (imported by _unix_connection already: a lookup)

        try:
            self._conn.request("GET", url)
            response = self._conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            raise DockerUnavailable(f"Docker engine at unix://{self.socket_path}: "
                                    f"{getattr(exc, 'strerror', None) or exc}") from None
        if response.status != 200:
            message = _error_text(body)
            raise DockerUnavailable(f"Docker engine at unix://{self.socket_path}: GET {url}: "
                                    f"{response.status} {message}")
        try:
            return json.loads(body)
        except ValueError:
            raise DockerUnavailable(f"Docker engine at unix://{self.socket_path}: GET {url}: "
                                    "the answer is not JSON") from None


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", "")).strip()
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace").strip()
