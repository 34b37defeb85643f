"""Finding Podman's API sockets without starting a service: a socket that systemd holds for a
service that is not running (podman.socket, socket activation) is never connected to — the
connection would start podman.service — and the command line is read instead. Here the test
process plays systemd: it holds a listening unix socket, and is made the "init" netdiag looks
at (the real one is pid 1, which this test cannot be)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from netdiag.collect import podman


@pytest.fixture
def held_socket(tmp_path, monkeypatch):
    """A listening unix socket at Podman's root path (moved under tmp_path), held by this
    process and by no `podman system service`."""
    path = str(tmp_path / "podman.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    monkeypatch.setattr(podman, "ROOT_SOCKET", path)
    monkeypatch.setattr(podman, "USER_SOCKETS", str(tmp_path / "none" / "*.sock"))
    monkeypatch.setattr(podman, "service_processes", lambda: [])
    yield path
    listener.close()


def test_a_socket_init_holds_is_activation_only(held_socket):
    assert podman._activation_only(held_socket, init=os.getpid())
    other = subprocess.Popen(["sleep", "30"])  # a process that does not hold it
    try:
        assert not podman._activation_only(held_socket, init=other.pid)
    finally:
        other.kill()
        other.wait()


def test_find_leaves_an_activation_socket_alone(held_socket, monkeypatch):
    assert [a.socket for a in podman.find()] == [held_socket]  # another process holds it
    monkeypatch.setattr(podman, "INIT_PID", os.getpid())  # now "systemd" holds it
    assert podman.find() == []


def test_no_socket_file_is_not_activation_only(tmp_path):
    assert not podman._activation_only(str(tmp_path / "absent.sock"), init=1)
