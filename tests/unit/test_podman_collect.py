"""Podman's intent as the collector reads it, from a stand-in of its API on a unix socket
(answers shaped like Podman 4.3's, recorded from Debian 12's) and from fixture records; the
real engine is tests/integration/test_podman.py's."""

from __future__ import annotations

import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from netdiag.collect import discovery, docker, podman
from netdiag.docker_api import EngineAddress
from netdiag.model import NsKind
from netdiag.model.docker import DockerContainer, DockerEndpoint, DockerEngine

NETWORKS = [  # GET /v4.0.0/libpod/networks/json
    {"name": "podman", "id": "2f25" * 16, "driver": "bridge", "network_interface": "podman0",
     "subnets": [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}], "ipv6_enabled": False,
     "internal": False, "dns_enabled": False, "ipam_options": {"driver": "host-local"}},
    {"name": "inner", "id": "c156" * 16, "driver": "bridge", "network_interface": "podman2",
     "subnets": [{"subnet": "10.89.1.0/24", "gateway": "10.89.1.1"}], "ipv6_enabled": False,
     "internal": True, "dns_enabled": True},
]
COMPAT_NETWORKS = [  # GET /networks: the default network is "bridge" there, Options empty
    {"Name": "bridge", "Id": "2f25" * 16, "Driver": "bridge", "Options": {},
     "IPAM": {"Config": [{"Subnet": "10.88.0.0/16", "Gateway": "10.88.0.1"}]}},
    {"Name": "inner", "Id": "c156" * 16, "Driver": "bridge", "Internal": True, "Options": {},
     "IPAM": {"Config": [{"Subnet": "10.89.1.0/24", "Gateway": "10.89.1.1"}]}},
]


def inspect(name: str, pid: int, network: str, ip: str, mode: str = "bridge") -> dict:
    """GET /containers/NAME/json, as Podman's compat API answers it."""
    return {"Id": name * 8, "Name": f"/{name}", "State": {"Status": "running", "Pid": pid},
            "Config": {"Image": "localhost/ndt-busybox:1", "Hostname": name},
            "HostConfig": {"NetworkMode": mode,
                           "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}},
            "NetworkSettings": {"SandboxKey": "/run/netns/netns-0e5b", "Ports": {
                "80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                "Networks": {network: {"IPAddress": ip, "IPPrefixLen": 16,
                                       "NetworkID": network, "MacAddress": "2e:25:67:af:45:26",
                                       "Gateway": "10.88.0.1"}}}}


CONTAINERS = {"webwebwe" * 8: inspect("webwebwe", 0, "bridge", "10.88.0.2"),
              "sidecars" * 8: inspect("sidecars", 0, "bridge", "10.88.0.2",
                                      mode="container:" + "webwebwe" * 8)}
ANSWERS = {
    "/version": {"Version": "4.3.1", "ApiVersion": "1.41", "Components": [
        {"Name": "Podman Engine", "Version": "4.3.1"}]},
    "/info": {"ID": "c1fb123b", "Name": "vm", "Swarm": {"LocalNodeState": "inactive"},
              "DockerRootDir": "/var/lib/containers/storage"},
    "/networks": COMPAT_NETWORKS,
    "/containers/json?all=1": [{"Id": cid} for cid in CONTAINERS],
    "/v4.0.0/libpod/networks/json": NETWORKS,
    "/v4.0.0/libpod/containers/json?all=true": [
        {"Id": "webwebwe" * 8, "PodName": "pod1"}, {"Id": "sidecars" * 8, "PodName": "pod1"}],
    **{f"/containers/{cid}/json": data for cid, data in CONTAINERS.items()},
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answers: dict = ANSWERS

    def do_GET(self):
        body = json.dumps(self.answers.get(self.path, {"message": "no such thing"})).encode()
        self.send_response(200 if self.path in self.answers else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "test"

    def log_message(self, *args) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def podman_socket(tmp_path):
    path = str(tmp_path / "podman.sock")
    server = _Server(path, _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def test_an_api_socket_is_read_by_the_docker_reader_and_completed(podman_socket):
    assert podman.is_podman(podman_socket)
    engine = podman.read_engine(EngineAddress(podman_socket))
    assert engine.runtime == "podman" and engine.version == "4.3.1"
    assert [n.name for n in engine.networks] == ["inner", "podman"]
    inner = engine.network("inner")
    assert inner.internal and inner.dns and inner.option(
        "com.docker.network.bridge.name") == "podman2"
    assert not engine.network("podman").dns
    web = engine.container("webwebwe")
    assert web.pod == "pod1" and web.endpoints[0].network == "podman"  # not compat's "bridge"
    assert web.bound[0].host_port == 8080
    assert engine.exec_root == ""  # Docker's sandbox folders are not Podman's


def test_an_engine_named_by_url_is_marked_podman(podman_socket):
    intent = docker.read([f"unix://{podman_socket}"])
    assert [e.runtime for e in intent.engines] == ["podman"] and intent.gaps == ()


def test_a_docker_engine_stays_docker(tmp_path):
    class Docker(_Handler):  # Docker has no /v4.0.0/libpod/...: 404
        answers = {**{k: v for k, v in ANSWERS.items() if "libpod" not in k},
                   "/version": {"Version": "20.10.24", "Components": [
                       {"Name": "Engine", "Version": "20.10.24"}]}}

    path = str(tmp_path / "docker.sock")
    server = _Server(path, Docker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert not podman.is_podman(path)
        assert [e.runtime for e in docker.read([f"unix://{path}"]).engines] == ["docker"]
    finally:
        server.shutdown()
        server.server_close()


def test_the_command_line_is_read_only_where_podman_has_state(tmp_path, monkeypatch):
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{tmp_path}/root"\n')
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(conf))
    monkeypatch.setenv("PATH", f"{tmp_path}/bin:{os.environ['PATH']}")
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "podman"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert not podman.has_state()  # a fresh host: `podman ps` would create its storage
    state = Path(tmp_path / "root" / "libpod" / "bolt_state.db")
    state.parent.mkdir(parents=True)
    state.write_bytes(b"")
    assert podman.has_state()


def test_a_failing_command_line_is_a_gap_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    fake = tmp_path / "podman"
    fake.write_text("#!/bin/sh\necho 'Error: cannot open database' >&2\nexit 125\n")
    fake.chmod(0o755)
    with pytest.raises(docker.docker_api.DockerUnavailable, match="cannot open database"):
        podman.read_cli()


def test_the_socket_of_a_service_process():
    assert podman._socket_of_service(1, ["podman", "system", "service", "--time=0",
                                         "unix:///tmp/x/podman.sock"]) == "/tmp/x/podman.sock"
    assert podman._socket_of_service(1, ["podman", "system", "service"]) == podman.ROOT_SOCKET


def test_discovery_names_a_pods_namespace_after_the_pod_and_a_containers_after_it():
    def container(name: str, netns: int, pod: str = "", mode: str = "bridge"):
        return DockerContainer(id=name * 8, name=name, state="running", pid=100 + netns,
                               netns=netns, pod=pod, network_mode=mode,
                               endpoints=(DockerEndpoint("n1", "n1", ip="10.89.0.2"),))

    engine = DockerEngine(url="podman", runtime="podman", containers=(
        container("pweb", 7, pod="pod1", mode="container:" + "infra" * 8),
        container("abc-infra", 7, pod="pod1"),
        container("web", 8), container("rootless", 9, mode="slirp4netns"),
        container("hostnet", 1, mode="host")))
    found = discovery._podman_namespaces([engine])
    assert {inode: ref.label for inode, ref in found.items()} == {
        7: "pod1", 8: "web", 9: "rootless (slirp4netns)"}
    assert all(ref.kind is NsKind.PODMAN for ref in found.values())
    assert found[7].docker_networks == ("n1",) and found[7].pids == (107,)
    # Docker's engines are Docker's: nothing of theirs is named here.
    assert discovery._podman_namespaces([DockerEngine(url="d", containers=(
        container("web", 8),))]) == {}
