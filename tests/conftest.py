"""Shared test fixtures.

Integration tests build real kernel state in namespaces they create. Every namespace gets the
prefix `ndt-` plus a random part, so parallel or crashed runs never collide, and is deleted at
teardown even when the test fails. Nothing here touches the root namespace.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import pytest

TEST_PREFIX = "ndt-"


def sh(command: str, check: bool = True) -> str:
    """Run a shell command (test set-up only: the code under test uses netlink)."""
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{command!r} failed: {done.stderr.strip()}")
    return done.stdout


def pings(ns: str, address: str, wait: int = 1) -> bool:
    """Whether one ping from the named namespace `ns` to `address` is answered."""
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", f"-W{wait}", address],
                          capture_output=True).returncode == 0


def pytest_collection_modifyitems(config, items):
    root = os.geteuid() == 0 and shutil.which("ip")
    skip = pytest.mark.skip(reason="needs root and iproute2")
    for item in items:
        if "integration" in item.keywords and not root:
            item.add_marker(skip)


class NetnsFactory:
    """Makes named namespaces for one test and removes them (and what lives in them) after."""

    def __init__(self):
        self.names: list[str] = []
        self.tag = secrets.token_hex(3)

    def __call__(self, role: str = "ns") -> str:
        name = f"{TEST_PREFIX}{self.tag}-{role}"[:40]
        sh(f"ip netns add {name}")
        self.names.append(name)
        sh(f"ip -n {name} link set lo up")
        return name

    def cleanup(self) -> None:
        for name in reversed(self.names):
            # Kill what tests started inside (servers), by pid, then delete the namespace.
            pids = sh(f"ip netns pids {name}", check=False).split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            sh(f"ip netns del {name}", check=False)


@pytest.fixture
def netns_factory():
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture(scope="session")
def docker_engine():
    """One real Docker engine in its own namespace for the whole run (tests/docker_engine.py).

    Tests that use it remove the containers and networks they made; the engine, its namespace,
    mounts, cgroups and folders are removed at the end of the session.
    """
    from tests.docker_engine import EngineUnavailable, running_engine, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    try:
        with running_engine() as engine:
            yield engine
    except EngineUnavailable as exc:
        pytest.skip(f"dockerd cannot run here: {exc}")
