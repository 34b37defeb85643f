"""Hairpin over IPv6, with real packets: a container reaches its own network's published port
through the host's IPv6 address when the bridge driver builds the network as Docker does with
its userland proxy off (hairpin mode on the container's bridge port, the ip6tables DNAT without
`! -i <bridge>`, and the MASQUERADE of the container's own address to itself), and `path`
agrees with a real probe; with hairpin mode off the kernel drops the frame and `path` says so
too. Namespaces from netns_factory (the bridge driver tests' Lab); ULA addresses only."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from netdiag.store.records import PortBinding
from tests.conftest import sh
from tests.integration.test_driver_bridge import lab  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration
HOST6, OUTSIDE6 = "fd00:203::1", "fd00:203::2"
NETDIAG = [sys.executable, "-m", "netdiag"]


def _path(source: str, to: str) -> dict:
    done = subprocess.run([*NETDIAG, "path", source, to, "--probe", "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def _get(ns: str, url: str) -> str:
    code = ("import urllib.request,sys; "
            f"sys.stdout.write(urllib.request.urlopen({url!r}, timeout=3).read().decode())")
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                          capture_output=True, text=True)
    return done.stdout


def test_a_container_reaches_its_own_published_port_over_ipv6_by_hairpin(lab, tmp_path):  # noqa: F811
    (tmp_path / "hello.txt").write_text("hairpin6\n")
    sh(f"ip -n {lab.host} addr add {HOST6}/64 dev up0 nodad")
    sh(f"ip -n {lab.outside} addr add {OUTSIDE6}/64 dev eth0 nodad")
    lab.network("loop", options={"hairpin": "true", "subnet6": "fd00:77::/64"})
    c1 = lab.connect("loop", "c1", ports=[PortBinding(80, host_port=8080)])
    c1_ns = c1.sandbox.rsplit("/", 1)[1]
    # One socket on :: for both families (http.server's dual-stack server).
    lab.servers.append(subprocess.Popen(
        ["ip", "netns", "exec", c1_ns, "python3", "-m", "http.server", "80", "--bind", "::",
         "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 10
    while ":80 " not in sh(f"ip netns exec {c1_ns} ss -Htln", check=False):
        assert time.monotonic() < deadline, "http.server did not start"
        time.sleep(0.05)
    saved = sh(f"ip netns exec {lab.host} ip6tables-save -t nat")
    assert "-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:77::2]:80" \
        in saved
    assert _get(c1_ns, f"http://[{HOST6}]:8080/hello.txt") == "hairpin6\n"
    path = _path(c1_ns, f"[{HOST6}]:8080")
    assert path["disposition"] == "delivered" and path["probe"]["agrees"], path["probe"]
    # Without hairpin mode the bridge never sends the frame back out of the port it came in.
    sh(f"ip -n {lab.host} link set {c1.host_ifname} type bridge_slave hairpin off")
    assert _get(c1_ns, f"http://[{HOST6}]:8080/hello.txt") == ""
    path = _path(c1_ns, f"[{HOST6}]:8080")
    assert path["disposition"] != "delivered" and path["probe"]["agrees"], path["probe"]
