"""A snapshot never carries a secret that lives where netdiag looks.

One namespace holds a process (no container: started with `ip netns exec`) that has a secret in
its environment and on its command line, holds a private key file open and listens on a socket
— so the socket collector reads its /proc entry. netdiag itself runs with etcd credentials in
its environment. Where the kernel allows it, the namespace also gets an IPsec (xfrm) state
with an encryption and an authentication key. The snapshot JSON is then searched for each.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import sh

pytestmark = pytest.mark.integration

NETDIAG = [sys.executable, "-m", "netdiag"]
SECRETS = {
    "environment": "ENVSECRET7f3a9c",
    "command line": "ARGVSECRET51d2e8",
    "private key": "KEYFILESECRET0b4c6d",
    "etcd user": "ETCDUSERSECRET93ab",
    "etcd password": "ETCDPASSWORDSECRET2c8f",
}
ENCRYPTION_KEY = "a1b2c3d4e5f60718" * 2  # 128 bits, hex
AUTHENTICATION_KEY = "f9e8d7c6b5a49382" * 4  # 256 bits, hex

HOLDER = """
import socket, sys, time
key = open(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", 7443))
server.listen()
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(netns_factory, tmp_path):
    """(namespace, pid) of a process holding every secret but the xfrm keys."""
    name = netns_factory("secrets")
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n"
                   f"{SECRETS['private key']}\n-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    env = {**os.environ, "API_TOKEN": SECRETS["environment"]}
    process = subprocess.Popen(
        ["ip", "netns", "exec", name, sys.executable, "-c", HOLDER, str(key),
         f"--password={SECRETS['command line']}"],
        stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout.readline().strip() == "ready"
        yield name, process.pid
    finally:
        process.kill()
        process.wait()


def snapshot_json(tmp_path, *refs: str) -> str:
    env = {**os.environ, "NETDIAG_ETCD_USER": SECRETS["etcd user"],
           "NETDIAG_ETCD_PASSWORD": SECRETS["etcd password"]}
    out = tmp_path / "snapshot.json"
    done = subprocess.run([*NETDIAG, "snapshot", "--docker", "none",
                           *(a for ref in refs for a in ("--ns", ref)), "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return out.read_text() + done.stdout + done.stderr


def test_no_secret_of_a_process_or_of_netdiag_reaches_the_snapshot(holder, tmp_path):
    name, pid = holder
    text = snapshot_json(tmp_path, name, f"pid:{pid}")
    assert '"port":7443' in text.replace(" ", "")  # the holder's socket was read
    for where, secret in SECRETS.items():
        assert secret not in text, f"the {where} secret is in the snapshot"


def test_no_ipsec_key_reaches_the_snapshot(netns_factory, tmp_path):
    name = netns_factory("xfrm")
    added = subprocess.run(
        ["ip", "-n", name, "xfrm", "state", "add", "src", "10.0.0.1", "dst", "10.0.0.2",
         "proto", "esp", "spi", "0x100", "reqid", "1", "mode", "transport",
         "enc", "cbc(aes)", f"0x{ENCRYPTION_KEY}",
         "auth-trunc", "hmac(sha256)", f"0x{AUTHENTICATION_KEY}", "96"],
        capture_output=True, text=True)
    if added.returncode != 0:
        pytest.skip("this kernel makes no ESP state (cbc(aes) with hmac(sha256)): "
                    f"{added.stderr.strip()}")
    assert ENCRYPTION_KEY in sh(f"ip -n {name} xfrm state")  # ip shows the keys: they exist
    text = snapshot_json(tmp_path, name)
    assert "cbc(aes)" in text  # the state was read, its algorithms named
    for key in (ENCRYPTION_KEY, AUTHENTICATION_KEY):
        for form in (key, key.upper(), bytes.fromhex(key).decode("latin-1")):
            assert form not in text
