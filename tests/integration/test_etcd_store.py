"""The drivers' store on a real etcd, shared by processes as machines would share it: three
processes taking 300 addresses at once never hand out one twice, an etcd restart loses
nothing, and an etcd that is down is one clear error. The processes run in etcd's namespace
(etcd answers on its loopback there); nothing leaves the test's namespaces."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.etcd_server import EtcdServer, running_etcd

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POOL = "local:/run/netns/ndt-etcd-host/10.77.0.0/22"
SETUP = """
import sys
from netdiag.drivers.ipam import DefaultIpam
from netdiag.store import open_store
DefaultIpam(open_store(sys.argv[1])).request_pool("local:/run/netns/ndt-etcd-host",
                                                  "10.77.0.0/22")
"""
TAKE = """
import json, sys
from netdiag.drivers.ipam import DefaultIpam
from netdiag.store import open_store
ipam = DefaultIpam(open_store(sys.argv[1]))
sys.stdin.readline()  # all three start together
print(json.dumps([ipam.request_address(sys.argv[2], owner=sys.argv[3])
                  for _ in range(int(sys.argv[4]))]))
"""
LIST = """
import json, sys
from netdiag.store import open_store
from netdiag.errors import NetdiagError
try:
    with open_store(sys.argv[1]).transaction(write=False) as tx:
        print(json.dumps(tx.addresses(sys.argv[2])))
except NetdiagError as exc:  # what a command's error boundary would print
    sys.exit(f"error: {exc}")
"""


@pytest.fixture
def etcd():
    with running_etcd() as server:
        yield server


def python(etcd: EtcdServer, script: str, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", etcd.netns, sys.executable, "-c", script,
                             etcd.url.replace("http://", "etcd://"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finished(process: subprocess.Popen, stdin: str = "") -> str:
    out, err = process.communicate(stdin, timeout=120)
    assert process.returncode == 0, err
    return out


def test_three_processes_taking_300_addresses_at_once_never_share_one(etcd):
    finished(python(etcd, SETUP))
    workers = [python(etcd, TAKE, POOL, f"worker{i}", "100", stdin=subprocess.PIPE)
               for i in range(3)]
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    taken = [json.loads(finished(worker)) for worker in workers]
    every = [address for addresses in taken for address in addresses]
    assert len(every) == 300
    assert len(set(every)) == 300, "an address was handed out twice"
    # Lowest free first, interleaved between the processes: 10.77.0.1 (gateways aside) on.
    assert sorted(every, key=lambda a: tuple(map(int, a.split(".")))) == \
        [f"10.77.{n // 256}.{n % 256}" for n in range(1, 301)]

    etcd.stop()  # SIGKILL, as a crash would
    down = python(etcd, LIST, POOL)
    out, err = down.communicate(timeout=60)
    assert down.returncode != 0 and "cannot be reached" in err, err  # one clear error

    etcd.start()
    recorded = json.loads(finished(python(etcd, LIST, POOL)))
    assert len(recorded) == 300, "the restart lost allocations"


def test_a_plugin_on_an_etcd_that_is_down_says_so_in_one_line(etcd, netns_factory, tmp_path):
    engine_ns = netns_factory("plg")
    etcd.stop()
    socket_path = tmp_path / "p.sock"
    done = subprocess.run(["ip", "netns", "exec", etcd.netns, sys.executable, "-m", "netdiag",
                           "plugin", "serve", "--host-ns", engine_ns, "--socket",
                           str(socket_path), "--store", etcd.url], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "cannot be reached" in done.stderr, done.stderr
    assert not socket_path.exists()
