"""The pure parts of the TUI: what each tab shows, filtering, and reading a probe line."""

from __future__ import annotations

import re

import pytest

from netdiag.errors import UsageError
from netdiag.render import SECTIONS, RenderContext, Row, context, section_for_evidence_kind
from netdiag.tui import paths
from netdiag.tui.probes import Probe, parse
from tests.tui.conftest import HOST, WEB


def _tab(tab_id: str):
    return next(tab for tab in SECTIONS if tab.id == tab_id)


def test_every_tab_has_as_many_cells_as_columns(host_snapshot):
    ctx = context(host_snapshot)
    for state in host_snapshot.namespaces:
        for tab in SECTIONS:
            for row in tab.rows(state, ctx):
                assert len(row.cells) == len(tab.columns), (tab.id, row)


def test_links_show_peer_and_its_namespace(host_snapshot):
    state = host_snapshot.namespace(HOST)
    rows = _tab("links").rows(state, RenderContext({WEB: "web"}))
    assert ("veth1a2b3c4", "veth", "1500", "UP/up", "eth0@web", "br-frontend") in \
        [row.cells for row in rows]


def test_evidence_keys_of_firewall_and_route_rows(host_snapshot):
    state = host_snapshot.namespace(HOST)
    firewall = _tab("firewall").rows(state, RenderContext())
    assert any("nat/DOCKER/1" in row.keys for row in firewall)
    routes = _tab("routes").rows(state, RenderContext())
    table_100 = [row for row in routes if "100/default" in row.keys]
    assert [row.cells[:3] for row in table_100] == [("100", "default", "192.168.50.2")]
    assert section_for_evidence_kind("route").id == "routes"
    assert section_for_evidence_kind("nonsense") is None


def test_filter_words_must_all_match():
    row = Row(("veth1a2b3c4", "veth", "1500"))
    assert row.matches(("veth", "1500")) and row.matches(())
    assert not row.matches(("veth", "9000"))


@pytest.mark.parametrize("line, probe", [
    ("ping 10.0.0.2", Probe("ping", "10.0.0.2")),
    ("MTU 10.0.0.2", Probe("mtu", "10.0.0.2")),
    ("tcp db:5432", Probe("tcp", "db", port=5432)),
    ("tcp [fd00::2]:80", Probe("tcp", "fd00::2", port=80)),
    ("tcp container:web:80", Probe("tcp", "container:web", port=80)),
    ("dns web.example 127.0.0.11", Probe("dns", "web.example", server="127.0.0.11")),
])
def test_probe_lines(line, probe):
    assert parse(line) == probe
    assert parse(probe.title) == probe  # shown as it is typed


@pytest.mark.parametrize("line", ["", "ping", "tcp db", "tcp db 5432 6379", "trace 192.0.2.4"])
def test_bad_probe_lines_say_what_is_expected(line):
    with pytest.raises(UsageError, match="ping DST"):
        parse(line)


@pytest.mark.parametrize("line, error", [
    ("tcp db 5432", "write the port as `netdiag path` takes it: tcp db:5432"),
    ("tcp db:70000", "port 70000 is not between 1 and 65535"),
])
def test_a_probe_port_is_written_as_path_takes_it(line, error):
    with pytest.raises(UsageError, match=re.escape(error)):
        parse(line)


@pytest.mark.parametrize("line, flow", [
    ("db:6379", ("db", 6379, "tcp")),
    ("10.0.0.2", ("10.0.0.2", 0, "icmp")),
    ("10.0.0.2:53 --proto udp", ("10.0.0.2", 53, "udp")),
    ("10.0.0.2:53 --proto=udp", ("10.0.0.2", 53, "udp")),
    ("[fd00::2]:80", ("fd00::2", 80, "tcp")),
])
def test_path_lines_are_the_clis_destination_and_proto(line, flow):
    assert paths.parse(line) == flow


@pytest.mark.parametrize("line, error", [
    ("10.0.0.2:53 udp", "write the protocol as `netdiag path` takes it: 10.0.0.2:53 --proto udp"),
    ("db --proto tcp", "--proto tcp needs a port"),
    ("db:6379 --proto icmp", "icmp has no port"),
    ("db:6379 --proto sctp", "expected DST[:PORT] [--proto tcp|udp|icmp]"),
    ("", "expected DST[:PORT]"),
])
def test_bad_path_lines_say_what_is_expected(line, error):
    with pytest.raises(UsageError, match=re.escape(error)):
        paths.parse(line)


def test_the_docker_tab_shows_what_the_engine_says_about_each_namespace():
    from tests.fixtures.scenarios import docker_host

    d = docker_host()
    d.container_intent("db", state="exited", exit_code=1, netns=0, pid=0,
                       error="driver failed programming external connectivity")
    snapshot = d.build()
    ctx = context(snapshot)
    docker = _tab("docker")
    host = [row.cells for row in docker.rows(snapshot.namespace(d.host), ctx)]
    assert host[0][:2] == ("engine", "test")
    assert ("network", "int", "bridge", "local", "172.19.0.0/16 gw 172.19.0.1",
            "bridge br-int internal") in host
    # A container without a namespace of its own is shown with its engine, with its error.
    assert ("container", "db", "exited (1)", "int", "",
            "driver failed programming external connectivity") in host
    web = [row.cells for row in docker.rows(snapshot.namespace(d.web), ctx)]
    assert web == [("container", "web", "running", "web", "", "8080->80/tcp"),
                   ("  endpoint", "", "", "web", "172.18.0.2/16", "gw 172.18.0.1")]
    assert docker.rows(snapshot.namespace(d.db), ctx) == []  # exited: no namespace of its own
    assert section_for_evidence_kind("docker").id == "docker"
