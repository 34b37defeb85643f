"""`path` to IPv6's special destinations held against the kernel (issue 29: "say what the kernel
does, or unknown"), as test_flows_differential.py holds IPv4's: the unspecified address `::`
is the sender itself (connect() to :: reaches ::1) and the loopback is local, as the kernel
has it; an echo to all nodes on the link (ff02::1) is answered by the sender itself, a member
(net.ipv6.icmp.echo_ignore_multicast is 0), as the kernel does; any other multicast group is
no flow the model follows: `unknown`, never a guess (the kernel answers none to a site-wide
group nobody joined). Two
namespaces on a veth, ULA addresses (`nodad`), a TCP listener on port 80 in each."""

from __future__ import annotations

import pytest

from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine
from tests import real_flows
from tests.conftest import sh
from tests.integration.test_flows_ipv6 import _wait_until_no_address_is_tentative

pytestmark = pytest.mark.integration

UNICAST = (("::", "tcp", 80), ("::", "icmp", 0), ("::1", "tcp", 80), ("::", "tcp", 5555))
MULTICAST = (("ff02::1", "icmp", 0), ("ff05::1:3", "icmp", 0))


def test_special_ipv6_destinations_agree_with_the_kernel(netns_factory):
    names = {"a": netns_factory("a"), "b": netns_factory("b")}
    sh(f"ip -n {names['a']} link add eth0 type veth peer name eth0 netns {names['b']}")
    for number, ns in enumerate(names.values(), start=1):
        sh(f"ip -n {ns} addr add fd72::{number}/64 dev eth0 nodad")
        sh(f"ip -n {ns} link set eth0 up")
        real_flows.listen(ns, tcp=(80,))
    real_flows.wait_for_carriers([(ns, "eth0") for ns in names.values()])
    # ff02::1 is sent from the link-local address, which is tentative for a moment
    _wait_until_no_address_is_tentative(names)
    snapshot, ids = real_flows.snapshot_of(names)
    flows = [{"id": number, "src": role, "dst": dst, "proto": proto, "port": port, "size": 0}
             for number, (role, (dst, proto, port)) in enumerate(
                 (role, special) for role in sorted(names) for special in UNICAST + MULTICAST)]
    real = real_flows.send(names, flows)
    unicast = [flow for flow in flows if not flow["dst"].startswith("ff")]
    disagreements, by_disposition, _ = real_flows.compare(Engine(snapshot), ids, unicast, real)
    assert not disagreements, "\n".join(disagreements)
    assert set(by_disposition) == {"delivered", "no-listener"}, by_disposition
    engine = Engine(snapshot)
    said = {}
    for flow in (flow for flow in flows if flow not in unicast):
        result = engine.path(ids[flow["src"]], Packet("", flow["dst"], "icmp"))
        said[flow["src"], flow["dst"]] = (result.disposition, real[flow["id"]])
        if result.disposition == "unknown":
            assert "IPv6 multicast group" in result.forward.drop.reason
    # all nodes: the sender answers its own echo first (and the neighbour too); a site-wide
    # group nobody joined is not modelled, and the kernel answers nothing there
    assert said == {(role, dst): answer for role in names for dst, answer in (
        ("ff02::1", ("delivered", "ok")), ("ff05::1:3", ("unknown", "fail")))}, said
