"""Shared test fixtures.

Integration tests build real kernel state in namespaces they create. Every namespace gets the
prefix `ndt-` plus a random part, so parallel or crashed runs never collide, and is deleted at
teardown even when the test fails. Nothing here touches the root namespace.

`./dev test` runs two workers (pytest-xdist, `--dist loadfile`: a file's tests, and its module
fixtures, stay on one worker). What keeps them apart: namespaces, engines (tests/docker_engine.py,
tests/podman_engine.py), etcd servers and labs are all named with a random part and live in
namespaces of their own; a session fixture (the Docker engines) is one per worker; a test that
reads the whole machine (`check --all`, `ns list`, the README tour) judges only what it made,
since another worker's namespaces come and go meanwhile.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from contextlib import ExitStack

import pytest

from tests.docker_engine import DOCKER_VERSIONS

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


# What a test needs, marked here by where it is and what it uses, so that the fast lane
# (`./dev fast`: -m "not integration and not docker and not slow") runs exactly the tests that
# need no root, no namespace, no Docker and no etcd, in seconds.
MARKS_BY_PATH = {
    "integration/": "integration",  # real namespaces, engines, etcd: root
    "tui/test_pilot.py": "slow",  # the whole Textual app, 1 to 5 s a test
    "tui/test_snapshots.py": "slow",
}
DOCKER_FIXTURES = frozenset({"docker_engines", "docker_version", "swarm_fleet"})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under `./dev test`, which installed every engine (NETDIAG_REQUIRE_ENGINES=1), an engine
    that "cannot run here" is a failure, not a skip: a clean clone's Podman 5 tests once
    skipped silently for a mount point its chroot lacked. Elsewhere it stays a skip."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and call.excinfo is not None and \
            os.environ.get("NETDIAG_REQUIRE_ENGINES") == "1" and \
            "cannot run here" in str(call.excinfo.value):
        report.outcome = "failed"
        report.longrepr = f"./dev test installed this engine, but it did not start: " \
                          f"{call.excinfo.value}"


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these marks
def pytest_collection_modifyitems(config, items):
    tests = os.path.dirname(__file__)
    root = os.geteuid() == 0 and shutil.which("ip")
    skip = pytest.mark.skip(reason="needs root and iproute2")
    for item in items:
        where = os.path.relpath(str(item.path), tests)
        for prefix, mark in MARKS_BY_PATH.items():
            if where.startswith(prefix):
                item.add_marker(mark)
        if DOCKER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker("docker")
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
def docker_engines():
    """The session's real Docker engines, one per version, each started when first asked for
    (`docker_engines("28")`) in its own namespace (tests/docker_engine.py).

    Tests that use one remove the containers and networks they made; the engines, their
    namespaces, mounts, cgroups and folders are removed at the end of the session. An engine
    that cannot run here skips the tests that ask for it.
    """
    from tests.docker_engine import EngineUnavailable, running_engine, unavailable_reason

    started: dict[str, object] = {}
    with ExitStack() as stack:
        def engine_of(version: str):
            reason = unavailable_reason(version)
            if reason:
                pytest.skip(reason)
            if version not in started:
                try:
                    started[version] = stack.enter_context(running_engine(version=version))
                except EngineUnavailable as exc:
                    started[version] = exc  # once: the next test is not kept waiting again
            if isinstance(started[version], EngineUnavailable):
                pytest.skip(f"dockerd {version} cannot run here: {started[version]}")
            return started[version]

        yield engine_of


@pytest.fixture(scope="session")
def docker_engine(docker_engines):
    """The session's Docker 20.10 engine (see `docker_engines`)."""
    return docker_engines("20.10")


@pytest.fixture(scope="module", params=DOCKER_VERSIONS,
                ids=lambda version: f"docker{version.split('.')[0]}")
def docker_version(request) -> str:
    """Each Docker engine version in turn ("20.10", "28"; ids docker20, docker28): a test or
    module fixture that takes it runs once per version, a module's tests grouped by version.
    Tests use real components: when `./dev setup` has not installed Docker 28, its runs fail."""
    from tests.docker_engine import missing_docker28

    missing = missing_docker28() if request.param == "28" else None
    if missing:
        pytest.fail(missing, pytrace=False)
    return request.param


@pytest.fixture(scope="module")
def each_docker_engine(docker_version, docker_engines):
    """The session's engine of each version in turn (a module's tests run on both)."""
    return docker_engines(docker_version)
