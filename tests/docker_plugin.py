"""`netdiag plugin serve` as a process of the caller's, for an engine of tests/docker_engine.py
(the tests and bench/drivers.py): a name of its own, so that its socket in the shared
/run/docker/plugins is no other engine's business (or, for an engine with a plugin folder of
its own, any name), started and ended by its pid; its log in a file beside the socket."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import time


class PluginProcess:
    """One engine's plugin (scope local: bridge, macvlan; global: overlay across engines)."""

    def __init__(self, engine, store: str, prefix: str = "ndt-plug-", name: str = "",
                 scope: str = "local"):
        self.engine, self.store, self.scope = engine, store, scope
        self.name = name or f"{prefix}{secrets.token_hex(3)}"
        self.socket = f"{engine.plugin_dir}/{self.name}.sock"
        self.log = engine.workdir / f"plugin-{self.name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        # The product serves a real host's engine in the root namespace; tests never do.
        roots = set()
        for path in ("/proc/1/ns/net", "/proc/2/ns/net"):  # pid 1 may be hidden from us
            try:
                roots.add(os.stat(path).st_ino)
            except OSError:
                continue
        assert roots and os.stat(self.engine.netns_path).st_ino not in roots, \
            "a test engine in the root network namespace"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "netdiag", "plugin", "serve", "--name",
                 self.name, "--host-ns", self.engine.netns_path, "--store", self.store,
                 "--socket", self.socket, "--scope", self.scope],
                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the plugin did not make its socket"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # ours, by its pid
            self.process.wait(timeout=20)
        assert not os.path.exists(self.socket), "the plugin left its socket behind"

    def post(self, path: str, body: bytes) -> dict:
        connection = _UnixConnection(self.socket)
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        assert answer.status == 200
        return json.loads(answer.read())


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)
