"""netdiag against an etcd that wants TLS with client certificates and user/password auth.

The etcd of tests/etcd_server.py serves https only, with certificates this test makes, and has
auth on. netdiag runs in etcd's namespace (`ip netns exec`) and reaches it on loopback with
the files and credentials from its environment (NETDIAG_ETCD_CACERT, _CERT, _KEY, _USER,
_PASSWORD): the drivers' store (`net`) and the fleet (`fleet ls`) both get in; a wrong password
or a certificate etcd does not trust fails with one line and exit 3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from netdiag.errors import UsageError
from netdiag.etcd import EtcdAccess, plain_http_warning
from tests.etcd_server import EtcdServer, unavailable_reason

pytestmark = pytest.mark.integration

NETDIAG = [sys.executable, "-m", "netdiag"]
PASSWORD = "ndt-etcd-pw-4d1f"
URL = "https://127.0.0.1:2379"


@pytest.fixture(scope="module")
def etcd():
    if reason := unavailable_reason():
        pytest.skip(reason)
    server = EtcdServer(tls=True).create()
    try:
        server.enable_auth(PASSWORD)
        yield server
    finally:
        server.close()


def access_env(etcd: EtcdServer, **changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETDIAG_ETCD")}
    env.update(NETDIAG_ETCD_CACERT=etcd.tls_files["cacert"], NETDIAG_ETCD_CERT=etcd.tls_files[
        "cert"], NETDIAG_ETCD_KEY=etcd.tls_files["key"], NETDIAG_ETCD_USER="root",
        NETDIAG_ETCD_PASSWORD=PASSWORD)
    env.update(changes)
    return env


def netdiag(etcd: EtcdServer, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", etcd.netns, *NETDIAG, *argv],
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_store_and_the_fleet_get_in_with_certificates_and_a_password(etcd):
    env = access_env(etcd)
    done = netdiag(etcd, env, "net", "--store", URL, "ls", "--json")
    assert done.returncode == 0, done.stderr
    done = netdiag(etcd, env, "fleet", "ls", "--etcd", URL)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_the_files_and_the_password_file_come_from_the_command_line(etcd, tmp_path):
    password = tmp_path / "etcd-password"
    password.write_text(PASSWORD + "\n")
    env = access_env(etcd, NETDIAG_ETCD_CACERT="", NETDIAG_ETCD_CERT="", NETDIAG_ETCD_KEY="",
                     NETDIAG_ETCD_PASSWORD="")
    files = etcd.tls_files
    done = netdiag(etcd, env, "net", "--store", URL, "--etcd-cacert", files["cacert"],
                   "--etcd-cert", files["cert"], "--etcd-key", files["key"],
                   "--etcd-password-file", str(password), "ls")
    assert done.returncode == 0, done.stderr


def test_a_plain_http_etcd_off_this_machine_is_warned_about(netns_factory):
    """In an empty namespace: 10.0.0.5 is unreachable there, no packet leaves."""
    name = netns_factory("plain")
    done = subprocess.run(["ip", "netns", "exec", name, *NETDIAG, "fleet", "ls", "--etcd",
                           "http://10.0.0.5:2379"], capture_output=True, text=True, timeout=60)
    lines = done.stderr.splitlines()
    assert done.returncode == 3 and len(lines) == 2, done.stderr
    assert lines[0].startswith("netdiag: warning: etcd at 10.0.0.5 is plain HTTP"), lines


@pytest.mark.parametrize("what", ["wrong password", "no client certificate",
                                  "untrusted client certificate", "server's CA not given"])
def test_refused_access_is_one_line_and_exit_3(etcd, tmp_path, what):
    changes = {"wrong password": {"NETDIAG_ETCD_PASSWORD": "not-" + PASSWORD},
               "no client certificate": {"NETDIAG_ETCD_CERT": "", "NETDIAG_ETCD_KEY": ""},
               "untrusted client certificate": _stranger(tmp_path),
               "server's CA not given": {"NETDIAG_ETCD_CACERT": ""}}[what]
    done = netdiag(etcd, access_env(etcd, **changes), "net", "--store", URL, "ls")
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert PASSWORD not in done.stderr


def _stranger(folder) -> dict[str, str]:
    """A self-signed client certificate: etcd's CA never signed it."""
    cert, key = str(folder / "stranger.pem"), str(folder / "stranger-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=stranger", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return {"NETDIAG_ETCD_CERT": cert, "NETDIAG_ETCD_KEY": key}


def test_the_password_comes_from_a_file_over_the_environment(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("from-the-file\n")
    access = EtcdAccess.from_environment(
        {"NETDIAG_ETCD_USER": "root", "NETDIAG_ETCD_PASSWORD": "from-env"},
        password_file=str(secret))
    assert (access.user, access.password) == ("root", "from-the-file")
    with pytest.raises(UsageError):
        EtcdAccess.from_environment({"NETDIAG_ETCD_PASSWORD": "no user"})
    with pytest.raises(UsageError):
        EtcdAccess.from_environment({}, cert="/c.pem")


def test_plain_http_off_loopback_is_warned_about():
    assert plain_http_warning("http://10.0.0.5:2379").startswith("warning: etcd at 10.0.0.5")
    for quiet in ("http://127.0.0.1:2379", "http://localhost:2379", "https://10.0.0.5:2379",
                  "http://[::1]:2379"):
        assert plain_http_warning(quiet) == "", quiet


LAB_ON_TLS = """\
name: {name}
hosts: [{{name: h1}}]
underlay: {{subnet: 198.18.13.0/24, mtu: 1500}}
networks:
  - {{name: ovl, driver: overlay, subnet: 10.94.0.0/24}}
containers:
  - {{name: c1, host: h1, networks: [ovl]}}
  - {{name: c2, host: h1, networks: [ovl]}}
"""


def test_a_labs_host_part_and_its_agent_get_in_with_the_files_from_the_command_line(
        etcd, tmp_path):
    """`lab up --host` hands its access to the agent it starts (whose endpoints live on the
    agent's lease: `lab up` waits for it to be alive in etcd), and `lab down --host` uses
    it to withdraw the host's part."""
    name = "ndt-tls"
    topology = tmp_path / "lab.yaml"
    topology.write_text(LAB_ON_TLS.format(name=name))
    password = tmp_path / "etcd-password"
    password.write_text(PASSWORD + "\n")
    env = access_env(etcd, NETDIAG_ETCD_CACERT="", NETDIAG_ETCD_CERT="", NETDIAG_ETCD_KEY="",
                     NETDIAG_ETCD_PASSWORD="")
    files = ["--etcd-cacert", etcd.tls_files["cacert"], "--etcd-cert", etcd.tls_files["cert"],
             "--etcd-key", etcd.tls_files["key"], "--etcd-password-file", str(password)]
    try:
        done = netdiag(etcd, env, "lab", "up", str(topology), "--etcd", URL, "--host", "h1",
                       *files)
        assert done.returncode == 0, done.stderr
        done = netdiag(etcd, env, "net", "--store", URL, *files, "inspect", "ovl")
        assert done.returncode == 0, done.stderr
        assert len(json.loads(done.stdout)["endpoints"]) == 2, done.stdout
    finally:
        done = netdiag(etcd, env, "lab", "down", name, "--host", "h1", *files)
    assert done.returncode == 0, done.stderr
    done = netdiag(etcd, env, "net", "--store", URL, *files, "ls", "--json")
    assert done.returncode == 0 and "ovl" not in done.stdout, done.stdout
