"""The netdiag image (image/), built with image/build-offline.sh on the session's real engine.

The build needs no registry: the script makes the base from debootstrap and prepares packages
and wheels on the host (cached under /var/cache/netdiag-image, so only the first run on a
machine pays for debootstrap and downloads). Then the image is used the ways its README
shows: attached to an app container's namespace (with Docker's default capabilities, and with
NET_ADMIN), on the engine's host with the Docker socket and the sandboxes mounted, in a terminal
(tmux) for the TUI, and as a plain toolbox: every tool image/README.md lists answers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from netdiag.model.serialize import loads
from tests.docker_engine import DOCKER_CLI, IMAGE
from tests.terminal import Terminal, tmux_session

# The first build on a machine runs debootstrap and downloads packages: give it time.
pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow,
              pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
TAG = "netdiag:test"
CAP_SYS_RESOURCE = 24
APP = "ndt-image-app"
NETWORK = "ndt-image-net"
NETDIAG = "ndt-image-netdiag"  # netdiag's own container, where a test names it
SIZE_LIMIT = 200e6  # image/README.md's promise
# Each tool image/README.md lists, and a command that shows it runs.
TOOLBOX = ("ip -V", "bridge -V", "ss -V", "iptables --version", "ip6tables --version",
           "nft --version", "tcpdump --version", "ngrep -V", "iperf3 --version",
           "curl --version", "dig -V", "kdig --version", "drill -v", "nmap --version",
           "nping --version", "socat -V", "nc -h", "ethtool --version", "conntrack --version",
           "ipvsadm --help 2>&1 | grep -qiE 'ipvsadm v|virtual server'", "brctl --version",
           "ping -V", "tracepath -V", "traceroute --version", "tcptraceroute -h 2>&1 | "
           "grep -q tcptraceroute", "mtr --version", "strace -V", "ipcalc --version",
           "jq --version", "vi --version", "tmux -V", "http --version", "https --version",
           "websocat --version", "scapy -H </dev/null", "openssl version", "ps --version",
           "netdiag --version")


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
    print(done.stderr[done.stderr.find("where the bytes go"):])
    return TAG, size


@pytest.fixture(scope="module")
def built(image):
    return image[0]


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


def test_the_image_is_no_bigger_than_promised_and_prints_where_the_bytes_go(image):
    tag, size = image
    assert size <= SIZE_LIMIT, f"{tag} is {size / 1e6:.1f} MB"


def test_without_net_admin_the_gaps_name_it_and_the_advice_comes_once(docker_engine, built,
                                                                       app):
    done = docker_run(docker_engine, "--net", f"container:{APP}", built,
                      "check", "--ns", "self", "--format", "json", check=False)
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert set(report["summary"]) == {"error", "warning", "info"}
    firewall = [gap for gap in report["gaps"] if gap["source"] in ("firewall", "nftables")]
    assert firewall and all(gap["kind"] == "permission" and gap["needs"] == "NET_ADMIN"
                            and "without CAP_NET_ADMIN" in gap["message"]
                            for gap in firewall), report["gaps"]
    assert not any("needs root" in gap["message"] for gap in report["gaps"])
    text = docker_run(docker_engine, "--net", f"container:{APP}", built,
                      "check", "--ns", "self", check=False).stdout
    assert text.count("--cap-add NET_ADMIN") == 1, text
    assert "kubectl debug --profile=netadmin" in text, text


def test_with_net_admin_the_firewall_is_read(docker_engine, built, app):
    done = docker_run(docker_engine, "--cap-add", "NET_ADMIN", "--net", f"container:{APP}",
                      built, "check", "--ns", "self", "--format", "json", check=False)
    assert done.returncode in (0, 1), done.stderr
    gaps = json.loads(done.stdout)["gaps"]
    assert not [gap for gap in gaps if gap["kind"] == "permission"], gaps


def test_attached_without_the_socket_the_namespace_is_named_after_the_containers_hostname(
        docker_engine, built, app):
    done = docker_run(docker_engine, "--net", f"container:{APP}", built, "ns", "list", "--json")
    (listed,) = json.loads(done.stdout)
    assert listed["label"] == app["Config"]["Hostname"], listed
    assert listed["kind"] != "host"


def test_attached_with_the_socket_the_namespace_and_its_gaps_are_the_containers(
        docker_engine, built, app):
    socket = ["-v", f"{docker_engine.socket}:/var/run/docker.sock"]
    done = docker_run(docker_engine, *socket, "--net", f"container:{APP}", built,
                      "ns", "list", "--json")
    (listed,) = json.loads(done.stdout)
    assert (listed["label"], listed["kind"], listed["container"]) == (APP, "docker", APP)
    done = docker_run(docker_engine, *socket, "--net", f"container:{APP}", built,
                      "check", "--ns", "self", "--format", "json", check=False)
    gaps = json.loads(done.stdout)["gaps"]
    assert gaps and all(gap["namespace"]["label"] == APP for gap in gaps
                        if gap["namespace"]), gaps
    text = docker_run(docker_engine, *socket, "--net", f"container:{APP}", built,
                      "check", "--ns", "self", check=False).stdout
    assert f"in container {APP}" in text, text


def test_snapshot_attached_to_an_app_container_is_the_apps(docker_engine, built, app):
    done = docker_run(docker_engine, "--net", f"container:{APP}", built,
                      "snapshot", "--ns", "self")
    snapshot = loads(done.stdout)
    (state,) = snapshot.namespaces
    ip = app["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    assert any(a.address == ip and a.ifname == "eth0" for a in state.addresses)
    assert any(s.port == 80 and s.protocol == "tcp" for s in state.sockets)


def test_ns_list_on_the_engine_host_names_the_app(docker_engine, built, app):
    netns_dir = str(docker_engine.netns_dir)
    done = docker_run(docker_engine, "--name", NETDIAG, "--net", "host", "--pid", "host",
                      *host_mode_privileges(), "-v", f"{netns_dir}:{netns_dir}",
                      "-v", f"{docker_engine.socket}:/var/run/docker.sock",
                      built, "ns", "list", "--json")
    listed = json.loads(done.stdout)
    ours = [ns for ns in listed if ns["container"] == APP]
    assert ours, f"{APP} not listed: {[ns['label'] for ns in listed]}"
    assert ours[0]["path"] == app["NetworkSettings"]["SandboxKey"]
    assert NETWORK in ours[0]["docker_networks"]
    (host,) = [ns for ns in listed if ns["kind"] == "host"]
    assert host["label"] == "host" and host["container"] == "", host
    assert not [ns for ns in listed if NETDIAG in (ns["label"], ns["container"])], listed


def test_on_the_host_network_without_its_pids_the_namespace_is_the_hosts(docker_engine,
                                                                         built):
    done = docker_run(docker_engine, "--name", NETDIAG, "--net", "host",
                      "-v", f"{docker_engine.socket}:/var/run/docker.sock",
                      built, "ns", "list", "--json")
    (listed,) = json.loads(done.stdout)
    assert (listed["label"], listed["kind"]) == ("host", "host"), listed


def test_tcpdump_answers(docker_engine, built):
    """A program named as the command runs as it is (the toolbox test goes through bash)."""
    done = docker_run(docker_engine, built, "tcpdump", "--version")
    assert "tcpdump version" in done.stdout + done.stderr


def test_toolbox_answers(docker_engine, built):
    # One container for all of them; the entry point runs a non-netdiag line through bash.
    script = "; ".join(f"{{ {command}; }} >/dev/null 2>&1 || echo FAILED: {command!r}"
                       for command in TOOLBOX)
    done = docker_run(docker_engine, built, script)
    assert "FAILED" not in done.stdout, done.stdout


def test_runs_as_the_numeric_non_root_user(docker_engine, built, app):
    done = docker_run(docker_engine, "--user", "10001", "--net", f"container:{APP}", built,
                      "check", "--ns", "self", "--format", "json", check=False)
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)["gaps"], "a non-root run should report what it could not read"


def test_no_arguments_without_a_terminal_falls_back_to_a_shell(docker_engine, built):
    done = docker_run(docker_engine, built)
    assert "no terminal" in done.stderr


def test_tui_in_tmux_on_the_container_and_its_shell(docker_engine, built, app):
    """`docker run -it --net container:APP IMAGE` in a terminal: the TUI on APP's namespace;
    its shell is in that namespace, without nsenter (Docker's default capabilities lack the
    CAP_SYS_ADMIN that entering would need); repair is shown unavailable (no CAP_NET_ADMIN)."""
    ip = app["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    with docker_terminal(docker_engine, "-v", f"{docker_engine.socket}:/var/run/docker.sock",
                      "--net", f"container:{APP}", built) as terminal:
        screen = terminal.wait_for(f"{APP} · docker · live", "eth0")
        assert "repair (changing it needs CAP_NET_ADMIN)" in screen, screen
        assert "shell (" not in screen, screen
        terminal.keys("s")
        terminal.wait_for("exit to return")
        terminal.keys("ip -o -4 addr show eth0", "Enter")
        terminal.wait_for(f"inet {ip}/")
        terminal.keys("exit", "Enter")
        terminal.wait_for(f"{APP} · docker · live")


def test_tui_in_tmux_says_why_entering_another_namespace_is_unavailable(docker_engine, built,
                                                                          app):
    netns_dir = str(docker_engine.netns_dir)
    with docker_terminal(docker_engine, "--net", "host", "--pid", "host",
                      "-v", f"{netns_dir}:{netns_dir}",
                      "-v", f"{docker_engine.socket}:/var/run/docker.sock",
                      built, "tui", "--ns", APP) as terminal:
        # why it could not be read, once the reading is over
        screen = terminal.wait_for("unavailable:", "read failed: needs CAP_SYS_ADMIN")
        assert "shell (entering another namespace needs CAP_SYS_ADMIN)" in screen, screen


@contextmanager
def docker_terminal(engine, *args: str) -> Iterator[Terminal]:
    """`docker run --rm -it ARGS` in a terminal (160x40); the container goes with it."""
    name = f"ndt-image-tui-{time.monotonic_ns() % 10**6}"
    argv = [DOCKER_CLI, "-H", engine.host, "run", "--rm", "-it", "--name", name,
            "-e", "SHELL=/bin/sh", *args]
    try:
        with tmux_session(argv, (160, 40), "ndt-image-tui") as terminal:
            yield terminal
    finally:
        engine.docker("rm", "-f", name, check=False)
