"""A minimal, read-only Docker Engine API client: which containers exist and where their
network namespaces are.

It speaks HTTP over the engine's unix socket (DOCKER_HOST=unix://PATH, else
/var/run/docker.sock) with the standard library only. An engine that is absent or does not
answer quickly yields no containers: discovery then falls back to the sandbox files.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from dataclasses import dataclass

DEFAULT_SOCKET = "/var/run/docker.sock"
TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    name: str
    sandbox_key: str
    networks: tuple[str, ...]
    pid: int


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=TIMEOUT)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(self._path)


def socket_path() -> str | None:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if host:  # tcp:// and ssh:// engines are not on this host's namespaces
        return None
    return DEFAULT_SOCKET


def _get(path: str, url: str):
    conn = _UnixConnection(path)
    try:
        conn.request("GET", url)
        response = conn.getresponse()
        if response.status != 200:
            return None
        return json.loads(response.read())
    finally:
        conn.close()


def containers() -> list[Container]:
    """Running containers of the engine at DOCKER_HOST, or [] when there is none."""
    path = socket_path()
    if not path or not os.path.exists(path):
        return []
    try:
        listing = _get(path, "/containers/json") or []
        found = []
        for item in listing:
            detail = _get(path, f"/containers/{item['Id']}/json")
            if detail:
                found.append(_container(detail))
        return found
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        return []


def _container(detail: dict) -> Container:
    settings = detail.get("NetworkSettings") or {}
    return Container(
        id=detail["Id"],
        name=detail.get("Name", "").lstrip("/"),
        sandbox_key=settings.get("SandboxKey") or "",
        networks=tuple(sorted((settings.get("Networks") or {}).keys())),
        pid=(detail.get("State") or {}).get("Pid") or 0,
    )
