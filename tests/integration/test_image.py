"""The netdiag image (image/), built with image/build-offline.sh on the session's real engine.

The build needs no registry: the script makes the base from debootstrap and prepares packages
and wheels on the host (cached under /var/cache/netdiag-image, so only the first run on a
machine pays for debootstrap and downloads). Then the image is used the three ways its README
shows: attached to an app container's namespace, on the engine's host with the Docker socket
and the sandboxes mounted, and as a plain toolbox.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netdiag.model.serialize import loads
from tests.docker_engine import DOCKER_CLI, IMAGE

# The first build on a machine runs debootstrap and downloads packages: give it time.
pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow,
              pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
TAG = "netdiag:test"
CAP_SYS_RESOURCE = 24
APP = "ndt-image-app"
NETWORK = "ndt-image-net"
TOOLBOX = ("ip -V", "iptables --version", "nft --version", "iperf3 --version", "curl --version",
           "dig -v", "nmap --version", "socat -V", "ethtool --version", "conntrack --version",
           "ipvsadm --help 2>&1 | grep -qiE 'ipvsadm v|virtual server'", "brctl --version",
           "tmux -V", "ping -V", "netdiag --version")


@pytest.fixture(scope="module")
def image(docker_engine):
    """The image, built once per run; its build time is printed for the record."""
    began = time.monotonic()
    done = subprocess.run([str(REPO / "image" / "build-offline.sh"), "-t", TAG],
                          env={**docker_engine.env, "DOCKER": DOCKER_CLI,
                               "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, f"build-offline.sh failed:\n{done.stderr[-3000:]}"
    size = int(docker_engine.docker("image", "inspect", "-f", "{{.Size}}", TAG))
    print(f"\nimage {TAG}: {size / 1e6:.0f} MB, built in {time.monotonic() - began:.0f} s")
    return TAG


@pytest.fixture(scope="module")
def app(docker_engine):
    engine = docker_engine
    engine.docker("network", "create", NETWORK)
    try:
        engine.docker("run", "-d", "--name", APP, "--network", NETWORK, "-p", "8082:80", IMAGE,
                      "httpd", "-f", "-p", "80", "-h", "/www")
        engine.wait_until_serving(APP)
        yield engine.inspect(APP)
    finally:
        engine.docker("rm", "-f", APP, check=False)
        engine.docker("network", "rm", NETWORK, check=False)


def host_mode_privileges() -> list[str]:
    """`--privileged`, or its equivalent where this machine cannot grant every capability.

    Sandboxed CI machines can lack a capability in their own bounding set (seen here:
    CAP_SYS_RESOURCE), and runc then refuses --privileged; all the others do the same job.
    """
    bounding = int(re.search(r"^CapBnd:\s*([0-9a-f]+)", Path("/proc/self/status").read_text(),
                             re.MULTILINE).group(1), 16)
    if bounding & (1 << CAP_SYS_RESOURCE):
        return ["--privileged"]
    return ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
            "--security-opt", "seccomp=unconfined"]


def docker_run(engine, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([DOCKER_CLI, "-H", engine.host, "run", "--rm", *args],
                          capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert done.returncode == 0, f"docker run {' '.join(args)}: {done.stderr.strip()}"
    return done


def test_check_attached_to_an_app_container(docker_engine, image, app):
    done = docker_run(docker_engine, "--net", f"container:{APP}", image,
                      "check", "--ns", "self", "--format", "json", check=False)
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert set(report["summary"]) == {"error", "warning", "info"}
    # Default capabilities lack NET_ADMIN: the firewall cannot be read, and netdiag says so.
    assert any(gap["source"] == "firewall" and gap["kind"] == "permission"
               for gap in report["gaps"]), report["gaps"]


def test_snapshot_attached_to_an_app_container_is_the_apps(docker_engine, image, app):
    done = docker_run(docker_engine, "--net", f"container:{APP}", image,
                      "snapshot", "--ns", "self")
    snapshot = loads(done.stdout)
    (state,) = snapshot.namespaces
    ip = app["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    assert any(a.address == ip and a.ifname == "eth0" for a in state.addresses)
    assert any(s.port == 80 and s.protocol == "tcp" for s in state.sockets)


def test_ns_list_on_the_engine_host_names_the_app(docker_engine, image, app):
    netns_dir = str(docker_engine.netns_dir)
    done = docker_run(docker_engine, "--net", "host", "--pid", "host", *host_mode_privileges(),
                      "-v", f"{netns_dir}:{netns_dir}",
                      "-v", f"{docker_engine.socket}:/var/run/docker.sock",
                      image, "ns", "list", "--json")
    listed = json.loads(done.stdout)
    ours = [ns for ns in listed if ns["container"] == APP]
    assert ours, f"{APP} not listed: {[ns['label'] for ns in listed]}"
    assert ours[0]["path"] == app["NetworkSettings"]["SandboxKey"]
    assert NETWORK in ours[0]["docker_networks"]


def test_tcpdump_answers(docker_engine, image):
    done = docker_run(docker_engine, image, "tcpdump", "--version")
    assert "tcpdump version" in done.stdout + done.stderr


def test_toolbox_answers(docker_engine, image):
    # One container for all of them; the entry point runs a non-netdiag line through bash.
    script = "; ".join(f"{{ {command}; }} >/dev/null 2>&1 || echo FAILED: {command!r}"
                       for command in TOOLBOX)
    done = docker_run(docker_engine, image, script)
    assert "FAILED" not in done.stdout, done.stdout


def test_runs_as_the_numeric_non_root_user(docker_engine, image, app):
    done = docker_run(docker_engine, "--user", "10001", "--net", f"container:{APP}", image,
                      "check", "--ns", "self", "--format", "json", check=False)
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)["gaps"], "a non-root run should report what it could not read"


def test_no_arguments_without_a_terminal_falls_back_to_a_shell(docker_engine, image):
    done = docker_run(docker_engine, image)
    assert "no terminal" in done.stderr


def test_no_arguments_in_a_terminal_opens_the_tui_on_the_container(docker_engine, image, app):
    """`docker run -it --net container:APP IMAGE`: the TUI, attached to APP's namespace."""
    screen, exit_code = _run_in_terminal(
        [DOCKER_CLI, "-H", docker_engine.host, "run", "--rm", "-it", "--name", "ndt-image-tui",
         "--net", f"container:{APP}", image],
        until=b"eth0", then=b"q", engine=docker_engine)
    assert b"eth0" in screen, screen[-2000:]
    assert exit_code == 0


def _run_in_terminal(argv: list[str], until: bytes, then: bytes, engine,
                     deadline: float = 120.0) -> tuple[bytes, int | None]:
    """Run `argv` on a pseudo-terminal until `until` appears, type `then`, wait for the end."""
    main, child = pty.openpty()
    proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    screen = b""
    typed = False
    end = time.monotonic() + deadline
    try:
        while proc.poll() is None and time.monotonic() < end:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(main, 65536)
                except OSError:  # the terminal closed: the program ended
                    break
            if not typed and until in screen:
                os.write(main, then)
                typed = True
        return screen, proc.wait(timeout=30) if typed else None
    finally:
        if proc.poll() is None:
            engine.docker("rm", "-f", "ndt-image-tui", check=False)
            proc.wait(timeout=30)
        os.close(main)
