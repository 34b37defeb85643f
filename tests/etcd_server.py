"""A real etcd (Debian's etcd-server) in a namespace of its own, for the tests that need one.

`EtcdServer(switch, address)` makes the namespace `ndt-etcd-<random>`, wires it to the bridge
`br0` of the namespace `switch` with `address` (a test address of the machines' underlay, so
the agents reach etcd over their own network as they would for real), and runs etcd there with
its data in a temporary folder. `EtcdServer()` makes no wire: etcd answers on its namespace's
loopback, for clients that run in that namespace (`ip netns exec`, netns.entered).
`stop()` ends it by its pid and `start()` starts it again on the same data: an etcd restart.
`close()` removes the process, the folder and the namespace; tests call it in `finally`.
`EtcdServer(tls=True)` serves https only, with certificates the server makes for the test (a
CA, etcd's, and a client's that etcd requires: `tls_files`); `enable_auth` turns on etcd's
user/password auth.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

PREFIX = "ndt-etcd-"
START_TIMEOUT = 20.0


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make namespaces"
    if not shutil.which("etcd"):
        return "etcd is not installed (apt-get install etcd-server)"
    return None


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


class EtcdServer:
    def __init__(self, switch: str = "", address: str = "127.0.0.1", prefixlen: int = 24,
                 v2: bool = False, tls: bool = False):
        self.tag = secrets.token_hex(3)
        self.netns = f"{PREFIX}{self.tag}"
        self.switch, self.address, self.prefixlen = switch, address, prefixlen
        self.folder = tempfile.mkdtemp(prefix=f"ndt-etcd-{self.tag}-")
        self.process: subprocess.Popen | None = None
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://{address}:2379"
        self.v2 = v2  # also etcd's v2 API: Docker 20.10's --cluster-store (libkv) speaks it
        self.tls_files: dict[str, str] = {}
        if tls:
            self._make_certificates()

    def _make_certificates(self) -> None:
        """ca.pem; server.pem/-key.pem for 127.0.0.1 and the address; client.pem/-key.pem."""
        folder = os.path.join(self.folder, "tls")
        os.mkdir(folder, 0o700)
        path = {name: os.path.join(folder, name) for name in (
            "ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem",
            "client-key.pem", "san.cnf")}
        _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=ndt-etcd-ca", "-keyout", path["ca-key.pem"], "-out", path["ca.pem"])
        with open(path["san.cnf"], "w") as file:
            file.write(f"subjectAltName=IP:127.0.0.1,IP:{self.address}\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n")
        for role in ("server", "client"):
            csr = os.path.join(folder, f"{role}.csr")
            # No CN on the client's: with auth on, etcd refuses a gateway (JSON) request whose
            # certificate names a user ("CommonName of client sending a request against
            # gateway will be ignored"); the user comes from the password instead.
            subject = "/CN=ndt-etcd-server" if role == "server" else "/O=ndt-etcd-client"
            _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", path[f"{role}-key.pem"], "-out", csr)
            _run("openssl", "x509", "-req", "-in", csr, "-CA", path["ca.pem"], "-CAkey",
                 path["ca-key.pem"], "-CAcreateserial", "-days", "1", "-extfile",
                 path["san.cnf"], "-out", path[f"{role}.pem"])
        self.tls_files = {"cacert": path["ca.pem"], "cert": path["client.pem"],
                          "key": path["client-key.pem"], "server": path["server.pem"],
                          "server-key": path["server-key.pem"]}

    def _etcdctl(self, *argv: str) -> subprocess.CompletedProcess:
        """etcdctl in etcd's namespace, with the client certificate when etcd wants one."""
        tls = ["--cacert", self.tls_files["cacert"], "--cert", self.tls_files["cert"],
               "--key", self.tls_files["key"]] if self.tls else []
        return subprocess.run(["ip", "netns", "exec", self.netns, "etcdctl", "--endpoints",
                               f"{self.scheme}://127.0.0.1:2379", *tls, *argv],
                              capture_output=True, text=True, timeout=10,
                              env={**os.environ, "ETCDCTL_API": "3"})

    def enable_auth(self, password: str) -> None:
        """etcd's auth on, with the user root and `password`."""
        for argv in (("user", "add", "root", f"--new-user-password={password}"),
                     ("user", "grant-role", "root", "root"), ("auth", "enable")):
            done = self._etcdctl(*argv)
            if done.returncode != 0 and "already" not in done.stderr:
                raise RuntimeError(f"etcdctl {' '.join(argv[:2])}: {done.stderr.strip()}")

    def create(self) -> EtcdServer:
        """The namespace, its wire and etcd; on any failure, whatever of them was made goes."""
        try:
            _run("ip", "netns", "add", self.netns)
            _run("ip", "-n", self.netns, "link", "set", "lo", "up")
            if self.switch:
                self._wire()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def _wire(self) -> None:
        port = f"e{self.tag}"
        _run("ip", "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name",
             "eth0", "netns", self.netns)
        _run("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
        _run("ip", "-n", self.netns, "addr", "add", f"{self.address}/{self.prefixlen}", "dev",
             "eth0")
        _run("ip", "-n", self.netns, "link", "set", "eth0", "up")

    def start(self) -> None:
        log = open(os.path.join(self.folder, "etcd.log"), "ab")
        peer = "http://127.0.0.1:2380"
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "etcd", "--name", f"ndt-{self.tag}",
             "--data-dir", os.path.join(self.folder, "data"),
             "--listen-client-urls", ",".join(dict.fromkeys([
                 self.url, f"{self.scheme}://127.0.0.1:2379"])),
             *(["--cert-file", self.tls_files["server"], "--key-file",
                self.tls_files["server-key"], "--trusted-ca-file", self.tls_files["cacert"],
                "--client-cert-auth"] if self.tls else []),
             "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"ndt-{self.tag}={peer}",
             "--log-level", "warn", *(["--enable-v2=true"] if self.v2 else [])],
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log()[-500:]}")
            if self.healthy():
                return
            time.sleep(0.1)
        raise RuntimeError(f"etcd did not answer in {START_TIMEOUT:g} s: {self.log()[-500:]}")

    def healthy(self) -> bool:
        """Asked from inside etcd's namespace (the test process is in the root namespace)."""
        return self._etcdctl("endpoint", "health").returncode == 0

    def log(self) -> str:
        try:
            with open(os.path.join(self.folder, "etcd.log"), errors="replace") as file:
                return file.read()
        except OSError:
            return ""

    def stop(self) -> None:
        """Kill etcd (SIGKILL, as a crash would), keeping its data."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def running_etcd() -> Iterator[EtcdServer]:
    """An EtcdServer on its namespace's loopback for the `with` block (the test is skipped
    where etcd cannot run); removed at the end, also when the test fails."""
    import pytest

    if reason := unavailable_reason():
        pytest.skip(reason)
    server = EtcdServer().create()
    try:
        yield server
    finally:
        server.close()
