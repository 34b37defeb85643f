"""`netdiag path SRC DST`: how DST is read (netdiag/flows/names.py), and the answer for an
IPv6 destination until the flow engine models IPv6 (issue 29: "cannot resolve 'fd00:'")."""

from __future__ import annotations

import json
import re

import pytest

from netdiag.cli import main
from netdiag.errors import UsageError
from netdiag.flows import names
from netdiag.flows.packet import Packet
from netdiag.flows.walk import IPV6_NOT_MODELLED, Engine
from netdiag.model.serialize import save
from netdiag.probe.path import refusal
from tests.fixtures.scenarios import docker_host


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


def test_an_ipv6_flow_is_unknown_saying_why():
    d = docker_host()
    engine = Engine(d.build())
    for dst in ("fd00::2", "fe80::1%eth0"):
        result = engine.path(d.web, Packet("", dst, "tcp", 43210, 80))
        assert result.disposition == "unknown" and not result.delivered
        assert result.forward.drop.reason == IPV6_NOT_MODELLED
        assert result.forward.drop.cause == "unmodelled" and result.reply is None
        assert refusal(d.build(), result).startswith(IPV6_NOT_MODELLED)  # nothing to probe
    arriving = engine.arriving(d.host, "eth0", Packet("2001:db8::9", "fd00::2", "tcp", 1, 80))
    assert arriving.disposition == "unknown"
    assert arriving.forward.drop.reason == IPV6_NOT_MODELLED


@pytest.mark.parametrize("dst", ["fd00::2", "[fd00::2]:80", "fe80::1%eth0"])
def test_the_path_command_answers_ipv6_in_one_line(tmp_path, capsys, dst):
    saved = tmp_path / "host.json"
    save(docker_host().build(), saved)
    assert main(["path", "web", dst, "--from", str(saved)]) == 1  # as for any unknown
    captured = capsys.readouterr()
    assert "cannot resolve" not in captured.err and captured.err == ""
    verdicts = [line for line in captured.out.splitlines() if line.startswith("forward:")]
    assert verdicts == [f"forward: UNKNOWN in web at the flow model: {IPV6_NOT_MODELLED}"]
    assert captured.out.rstrip().endswith("=> UNKNOWN")
    assert main(["path", "web", dst, "--from", str(saved), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["disposition"] == "unknown" and report["hops"] == []
    assert report["drop"]["reason"] == IPV6_NOT_MODELLED
    assert report["flow"]["dst"] == names.split_port(dst)[0]


def test_the_path_command_refuses_a_mistyped_ipv6_address_in_one_line(tmp_path, capsys):
    saved = tmp_path / "host.json"
    save(docker_host().build(), saved)
    assert main(["path", "web", "fd00::2::80", "--from", str(saved)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "write [ADDRESS]:PORT" in err, err
