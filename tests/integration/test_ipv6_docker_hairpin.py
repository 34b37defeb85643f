"""Hairpin over IPv6 on a real Docker 28: a container on an `--ipv6` network reaches its own
published port at the host's IPv6 address — through docker-proxy on `::` with the userland
proxy on (the default), and through Docker's ip6tables hairpin DNAT (`! -s fe80::/10 ... -j
DNAT --to-destination [addr]:port`, no `! -i <bridge>`) with it off (that case runs on
test_docker_intent.py's engine, whose proxy is off) — and `path` agrees with a real probe.
The expected flows promise it (netdiag/flows/expected.py: `_hairpin`'s IPv6 twin). The
host's IPv6 address is on a veth pair the test adds in the engine's namespace and removes;
ULA addresses only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.docker_engine import IMAGE

pytestmark = [pytest.mark.integration, pytest.mark.docker]
HOST6 = "fd00:19:9::2"
PORT = 8095


def hairpin_works(engine) -> None:
    engine.in_netns(f"ip link add nd6a type veth peer name nd6b && ip link set nd6a up && "
                    f"ip link set nd6b up && ip addr add {HOST6}/64 dev nd6a nodad")
    try:
        engine.docker("network", "create", "--ipv6", "--subnet", "fd00:95::/64", "ndt-hp6")
        engine.docker("run", "-d", "--name", "ndt-hp6-web", "--network", "ndt-hp6", "-p",
                      f"{PORT}:80", IMAGE, "sh", "-c",
                      "mkdir -p /www && echo hi6 > /www/index.html && httpd -f -p 80 -h /www")
        got = engine.docker("exec", "ndt-hp6-web", "sh", "-c", "for i in $(seq 20); do printf "
                            f"'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {HOST6} {PORT} && exit 0; "
                            "sleep 0.2; done; exit 1")
        assert got.endswith("hi6\n"), got
        done = subprocess.run([sys.executable, "-m", "netdiag", "path",
                               engine.sandbox_key("ndt-hp6-web"), f"[{HOST6}]:{PORT}", "--probe",
                               "--docker", f"unix://{engine.socket}", "--format", "json"],
                              capture_output=True, text=True, timeout=120)
        path = json.loads(done.stdout)
        assert path["disposition"] == "delivered" and path["probe"]["agrees"], path["probe"]
    finally:
        engine.docker("rm", "-f", "ndt-hp6-web", check=False)
        engine.docker("network", "rm", "ndt-hp6", check=False)
        engine.in_netns("ip link del nd6a", check=False)


def test_ipv6_hairpin_through_docker_proxy(docker_engines):
    hairpin_works(docker_engines("28"))
