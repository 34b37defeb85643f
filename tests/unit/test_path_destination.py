"""`netdiag path SRC DST`: how DST is read (netdiag/flows/names.py), and an IPv6 destination
walked (issue 29: "cannot resolve 'fd00:'")."""

from __future__ import annotations

import json
import re

import pytest

from netdiag.cli import main
from netdiag.errors import UsageError
from netdiag.flows import names
from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine
from netdiag.model.serialize import save
from netdiag.probe.path import refusal
from tests.fixtures.dual_stack import dual_stack_host
from tests.fixtures.scenarios import docker_host


@pytest.fixture
def dual_stack():
    d = dual_stack_host()
    return d, d.build()


@pytest.mark.parametrize("text, expected", [
    ("10.0.0.2", ("10.0.0.2", 0)),
    ("10.0.0.2:80", ("10.0.0.2", 80)),
    ("fd00::2", ("fd00::2", 0)),
    ("[fd00::2]:80", ("fd00::2", 80)),
    ("[fd00::2]", ("fd00::2", 0)),
    ("::1", ("::1", 0)),
    ("::ffff:10.0.0.1", ("::ffff:10.0.0.1", 0)),
    ("fe80::1%eth0", ("fe80::1%eth0", 0)),
    ("[fe80::1%eth0]:443", ("fe80::1%eth0", 443)),
    # A bare IPv6 address has no port: its last group is its own.
    ("fd00::2:80", ("fd00::2:80", 0)),
    ("db", ("db", 0)),
    ("db:6379", ("db", 6379)),
    ("container:web", ("container:web", 0)),
    ("container:web:80", ("container:web", 80)),
    ("inode:4026531840", ("inode:4026531840", 0)),
    ("inode:4026531840:80", ("inode:4026531840", 80)),
    ("pid:42", ("pid:42", 0)),
    ("lab1/router:22", ("lab1/router", 22)),
])
def test_destinations_as_written(text, expected):
    assert names.split_port(text) == expected


@pytest.mark.parametrize("text, says", [
    ("[fd00::2]80", "[ADDRESS]:PORT"),
    ("[fd00::2", "[ADDRESS]:PORT"),
    ("[10.0.0.2]:80", "[ADDRESS]:PORT"),  # brackets are for IPv6 only
    ("[fd00::2]:", "port (none)"),
    ("[fd00::2]:70000", "port 70000"),
    ("fd00::2::80", "not an IPv6 address"),
    ("fd00:::2", "not an IPv6 address"),
    ("fe80::1%", "not an IPv6 address"),
    ("db:0", "port 0"),
    ("10.0.0.2:65536", "port 65536"),
])
def test_malformed_destinations_say_how_to_write_them(text, says):
    with pytest.raises(UsageError, match=re.escape(says)):
        names.split_port(text)


def test_an_ipv6_address_resolves_to_itself():
    d = docker_host()
    snapshot = d.build()
    assert names.resolve(snapshot, d.web, "fd00::2") == ("fd00::2", "address")
    assert names.resolve(snapshot, d.web, "fe80::1%eth0") == ("fe80::1%eth0", "address")
    with pytest.raises(UsageError, match="not an IP address, a Docker or lab name"):
        names.resolve(snapshot, d.web, "nowhere")


def test_an_ipv6_flow_is_walked(dual_stack):
    d, snapshot = dual_stack
    engine = Engine(snapshot)
    result = engine.path(d.web, Packet("", "fd00:18::1", "tcp", 43210, 22))
    assert result.delivered, result.forward.drop
    assert result.flow.packet.src == "fd00:18::2"  # the global address, not the link-local one
    out = engine.path(d.web, Packet("", "2001:db8:99::9", "tcp", 43210, 443))
    assert out.leaves_and_returns, out.forward.drop  # NAT66 out of eth0, and back
    (kind, _, after), = out.forward.translations
    assert (kind, after.src) == ("snat", "2001:db8::10")
    assert refusal(snapshot, result) == ""  # a model verdict to hold against the kernel


@pytest.mark.parametrize("dst", ["fd00:18::1", "[fd00:18::1]:22"])
def test_the_path_command_walks_ipv6(tmp_path, capsys, dual_stack, dst):
    saved = tmp_path / "host.json"
    save(dual_stack[1], saved)
    args = ["path", "web", dst, "--from", str(saved)]
    assert main(args + ([] if "]:" in dst else ["--port", "22"])) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.rstrip().endswith("=> DELIVERED"), captured.out
    assert main(args + ["--format", "json"] + ([] if "]:" in dst else ["--port", "22"])) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["disposition"] == "delivered"
    assert report["flow"]["dst"] == "fd00:18::1"


def test_a_name_is_its_ipv6_address_with_minus_6(tmp_path, capsys, dual_stack):
    d, snapshot = dual_stack
    assert names.resolve(snapshot, d.web, "host", 6) == ("2001:db8::10", "namespace host")
    assert names.resolve(snapshot, d.web, "host") == ("192.168.1.10", "namespace host")
    saved = tmp_path / "host.json"
    save(snapshot, saved)
    assert main(["path", "web", "host:22", "-6", "--from", str(saved), "--format",
                 "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["flow"]["dst"] == "2001:db8::10" and report["disposition"] == "delivered"
    assert main(["path", "web", "host", "-6", "--size", "40", "--from", str(saved)]) == 2
    assert "an IPv6 icmp packet is 48 to 65535 bytes" in capsys.readouterr().err


def test_a_name_with_only_an_ipv6_address_is_that_address():
    d = dual_stack_host()
    only6 = d.builder.container("only6")
    d.builder.veth(only6, "eth0", d.host, "veth9", address="fd00:18::3/64",
                   peer_master="br-web")
    only4 = d.builder.container("only4")
    d.builder.veth(only4, "eth0", d.host, "veth8", address="172.18.0.4/16",
                   peer_master="br-web")
    snapshot = d.build()
    assert names.resolve(snapshot, d.web, "only6") == ("fd00:18::3", "namespace only6")
    with pytest.raises(UsageError, match="only4 has no IPv6 address to send to"):
        names.resolve(snapshot, d.web, "only4", 6)


def test_the_path_command_refuses_a_mistyped_ipv6_address_in_one_line(tmp_path, capsys):
    saved = tmp_path / "host.json"
    save(docker_host().build(), saved)
    assert main(["path", "web", "fd00::2::80", "--from", str(saved)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "write [ADDRESS]:PORT" in err, err


def test_a_lab_nodes_name_is_its_labs_not_a_container_of_that_name_elsewhere():
    """A lab node resolves `web` by its lab's DNS, even when a Docker container named web
    runs in an engine on the same machine (a lab test beside Docker's once reached it)."""
    from dataclasses import replace

    from netdiag.model import LabIntent
    from netdiag.model.lab import LabName

    d = docker_host()
    node = d.b.container("lab1-app")
    d.b.veth(node, "eth0", d.host, "vlab1", address="10.77.0.2/24")
    snapshot = d.build()
    snapshot = replace(snapshot, labs=(LabIntent(
        name="lab1", attached=(("app", ("front",)),),
        names=(LabName("front", "web", "10.77.0.9"),)),),
        namespaces=tuple(replace(s, ref=replace(s.ref, lab="lab1", node="app"))
                         if s.ref.id == node else s for s in snapshot.namespaces))
    assert names.resolve(snapshot, node, "web") == ("10.77.0.9", "lab lab1: web on front")
    # from the host (no lab's node), web is still Docker's container
    assert names.resolve(snapshot, d.host, "web")[1].startswith("Docker: web")
