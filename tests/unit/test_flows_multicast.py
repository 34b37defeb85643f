"""An echo request to all nodes (ff02::1) or all hosts (224.0.0.1), as the kernel answers it:
the sender is a member of the group on the way out, so a copy is looped back and answered
(net/ipv6/icmp.c icmpv6_echo_reply: unless net.ipv6.icmp.echo_ignore_multicast; net/ipv4/icmp.c
icmp_rcv: unless net.ipv4.icmp_echo_ignore_broadcasts, which is 1 by default). Whatever is
not that stays `unknown`."""

from __future__ import annotations

from dataclasses import replace

from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine
from netdiag.model import Sysctl
from tests.fixtures.dual_stack import dual_stack_host


def _path(snapshot, source: int, dst: str, proto: str = "icmp", port: int = 0):
    return Engine(snapshot).path(source, Packet("", dst, proto, 43210 if port else 0, port))


def _with_sysctl(snapshot, ns_id: int, name: str, value: str):
    namespaces = tuple(replace(ns, sysctls=(*ns.sysctls, Sysctl(name, value)))
                       if ns.ref.id == ns_id else ns for ns in snapshot.namespaces)
    return replace(snapshot, namespaces=namespaces)


def test_the_sender_answers_its_own_echo_to_all_nodes():
    d = dual_stack_host()
    for dst in ("ff02::1", "ff02::1%eth0"):
        result = _path(d.build(), d.host, dst)
        assert result.delivered, result.forward.drop
        assert result.reply.disposition == "delivered" and result.reply.delivered_as.src == \
            result.flow.packet.src
        steps = " ".join(step.detail for step in result.forward.hops[0].steps)
        assert "IP_MULTICAST_LOOP" in steps


def test_an_ignored_echo_to_a_group_is_unknown_not_a_guess():
    d = dual_stack_host()
    ignoring = _with_sysctl(d.build(), d.host, "net.ipv6.icmp.echo_ignore_multicast", "1")
    result = _path(ignoring, d.host, "ff02::1")
    assert result.disposition == "unknown"
    assert "echo_ignore_multicast is 1:" in result.forward.drop.reason
    # IPv4's switch is on by default; a snapshot that did not read it takes the default
    result = _path(d.build(), d.host, "224.0.0.1")
    assert result.disposition == "unknown"
    assert "icmp_echo_ignore_broadcasts is 1 (the default; not read)" in \
        result.forward.drop.reason


def test_all_hosts_answers_when_the_sender_does_not_ignore_it():
    d = dual_stack_host()
    snapshot = _with_sysctl(d.build(), d.host, "net.ipv4.icmp_echo_ignore_broadcasts", "0")
    assert _path(snapshot, d.host, "224.0.0.1").delivered
    ignoring_all = _with_sysctl(snapshot, d.host, "net.ipv4.icmp_echo_ignore_all", "1")
    assert _path(ignoring_all, d.host, "224.0.0.1").disposition == "no-listener"


def test_other_groups_and_other_protocols_stay_unknown():
    d = dual_stack_host()
    snapshot = d.build()
    for dst, proto, port in (("ff05::1:3", "icmp", 0), ("ff02::1", "udp", 53),
                             ("ff02::2", "icmp", 0), ("224.0.0.251", "udp", 5353),
                             ("224.0.0.1", "tcp", 80)):
        result = _path(snapshot, d.host, dst, proto, port)
        assert result.disposition == "unknown", (dst, proto, result.forward.drop)
        assert "multicast" in result.forward.drop.reason


def test_the_looped_copy_meets_the_firewall_by_the_groups_device():
    d = dual_stack_host()
    d.builder.iptables(d.host, "filter", "-A OUTPUT -o eth0 -p ipv6-icmp -j DROP", family=6)
    result = _path(d.build(), d.host, "ff02::1")
    assert result.disposition == "denied", result.forward.drop
    assert result.forward.drop.where == "filter/OUTPUT/1"
