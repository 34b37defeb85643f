"""route_localnet against the kernel: a host `h` that DNATs localhost to a container `c` over
veth0 (10.0.0.1/24 ↔ 10.0.0.2), as kube-proxy does for node ports on 127.0.0.1 (an OUTPUT
DNAT behind `-m addrtype --dst-type LOCAL`, MASQUERADE of 127.0.0.0/8 leaving by veth0), and
that DNATs tcp 81 arriving by veth0 into 127.0.0.1:8081. The kernel keeps 127.0.0.0/8 on lo
unless route_localnet is on (net/ipv4/route.c: __mkroute_output refuses the route,
ip_route_input_slow drops the martian); flows are sent for real with the switch off, on for
`all`, on for veth0 alone, and on without the MASQUERADE (then the container drops the
loopback source), each held against the path model, which must agree and say why.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from netdiag.collect import collect_snapshot, namespace_refs
from netdiag.collect.docker import Intent
from netdiag.flows.packet import DELIVERED, DENIED, Packet
from netdiag.flows.walk import Engine
from tests import real_flows
from tests.conftest import sh

pytestmark = pytest.mark.integration

ALL = "net.ipv4.conf.all.route_localnet"
FLOWS = (  # (id, source, destination, port)
    (1, "h", "127.0.0.1", 8080),  # the node port on localhost → c:80
    (2, "c", "10.0.0.1", 81),  # DNATed into 127.0.0.1:8081
    (3, "h", "127.0.0.1", 8081),  # plain loopback
    (4, "h", "10.0.0.2", 80),  # plain veth
)
MASQUERADE = "POSTROUTING -s 127.0.0.0/8 -o veth0 -j MASQUERADE"


def _build(netns_factory) -> dict[str, str]:
    names = {role: netns_factory(role) for role in ("h", "c")}
    h, c = names["h"], names["c"]
    sh(f"ip -n {h} link add veth0 type veth peer name eth0 netns {c}")
    sh(f"ip -n {h} addr add 10.0.0.1/24 dev veth0")
    sh(f"ip -n {c} addr add 10.0.0.2/24 dev eth0")
    sh(f"ip -n {h} link set veth0 up")
    sh(f"ip -n {c} link set eth0 up")
    sh(f"ip -n {c} route add default via 10.0.0.1")
    for rule in ("-N KUBE-NODEPORTS",
                 "-A OUTPUT -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
                 "-A KUBE-NODEPORTS -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80",
                 f"-A {MASQUERADE}",
                 "-A PREROUTING -i veth0 -p tcp --dport 81 -j DNAT "
                 "--to-destination 127.0.0.1:8081"):
        sh(f"ip netns exec {h} iptables -t nat {rule}")
    real_flows.wait_for_carriers([(c, "eth0")])
    return names


def _case(names: dict[str, str], settings: str) -> dict[int, str]:
    """Each flow's disposition in the model, after `settings` (sysctl arguments) in h;
    fails on any disagreement with the packets sent."""
    sh(f"ip netns exec {names['h']} sysctl -qw {settings}")
    refs = namespace_refs.resolve_all(list(names.values()))
    snapshot = collect_snapshot(refs, intent=Intent())
    ids = {role: namespace_refs.resolve(name, [s.ref for s in snapshot.namespaces]).id
           for role, name in names.items()}
    read = {role: next(s for s in snapshot.namespaces if s.ref.id == ids[role]).sysctl(ALL)
            for role in names}
    # read where a DNAT is (h), not where none is (c)
    assert read["h"] == ("1" if f"{ALL}=1" in settings else "0") and read["c"] is None
    flows = [{"id": n, "src": src, "dst": dst, "proto": "tcp", "port": port, "size": 0,
              "wait": 1.0} for n, src, dst, port in FLOWS]
    engine = Engine(snapshot)
    found, _, _ = real_flows.compare(engine, ids, flows, real_flows.send(names, flows))
    assert not found, f"{settings}:\n" + "\n".join(found)
    return {n: engine.path(ids[src], Packet("", dst, "tcp", 43210, port))
            for n, src, dst, port in FLOWS}


def test_route_localnet_decides_loopback_across_devices_as_the_kernel_does(netns_factory):
    names = _build(netns_factory)
    server_c = real_flows.listen(names["c"], tcp=(80,))
    server_h = real_flows.listen(names["h"], tcp=(8081,))
    try:
        off = _case(names, f"{ALL}=0 net.ipv4.conf.veth0.route_localnet=0")
        assert [off[n].disposition for n in (1, 2, 3, 4)] == [DENIED, DENIED, DELIVERED,
                                                               DELIVERED]
        assert "route_localnet" in off[1].forward.drop.reason
        assert "martian destination 127.0.0.1 arriving on veth0" in off[2].forward.drop.reason
        # the same from the CLI, with a probe of its own
        done = subprocess.run([sys.executable, "-m", "netdiag", "path", names["h"],
                               "127.0.0.1:8080", "--probe", "--format", "json"],
                              capture_output=True, text=True, timeout=120)
        path = json.loads(done.stdout)
        assert path["disposition"] == "denied" and path["probe"]["agrees"], path
        for settings in (f"{ALL}=1", f"{ALL}=0 net.ipv4.conf.veth0.route_localnet=1"):
            on = _case(names, settings)
            assert all(on[n].disposition == DELIVERED for n in on), settings
        sh(f"ip netns exec {names['h']} iptables -t nat -D {MASQUERADE}")
        bare = _case(names, f"{ALL}=1")
        assert bare[1].disposition == DENIED
        assert "martian source 127.0.0.1 arriving on eth0" in bare[1].forward.drop.reason
    finally:
        for server in (server_c, server_h):
            server.kill()
            server.wait()
