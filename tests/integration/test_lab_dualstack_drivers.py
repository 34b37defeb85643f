"""Dual stack beyond the bridge, and UDP published ports, in one real lab (issue 29: "the
topology schema takes IPv6 subnets, dual stack per network"): a macvlan and a VXLAN overlay
network with an IPv6 subnet give their containers IPv6 addresses (the host number of the IPv4
one, `nodad`), the overlay's vxlan0 a permanent IPv6 neighbour entry per remote container, the
macvlan children an IPv6 default route. Real IPv6 packets (ICMPv6 and UDP) cross both; the
lab's DNS answers AAAA on the overlay and `path -6` takes the name as it does, agreeing with a
real probe; the overlay driver's check names a missing IPv6 neighbour entry and its repair
restores IPv6; a UDP port published from a dual-stack bridge network answers the underlay over
both families. The lab promises these flows and keeps them (`check` is quiet), `lab
from-snapshot` keeps the overlay's and the macvlan's IPv6 subnets (a lab rebuilt from it gives
the macvlan children the same addresses), and the UDP flow over IPv6 is judged blocked once
its ip6tables DNAT is gone."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from netdiag.collect import collect_snapshot
from netdiag.collect.discovery import discover
from netdiag.drivers.controller import Controller
from netdiag.flows import expected
from netdiag.lab.from_snapshot import topology_from
from netdiag.store import open_store
from netdiag.topology import schema
from tests import real_flows
from tests.conftest import pings, sh
from tests.integration.test_flows_ipv6 import _wait_until_no_address_is_tentative
from tests.integration.test_lab import (  # noqa: F401 (lab: the fixture)
    NETDIAG,
    _check_lab,
    lab,
    lab_name,
)
from tests.integration.test_lab_ipv6 import _resolve6

pytestmark = pytest.mark.integration

TOPOLOGY = """
name: ds-drivers
hosts: [{name: host1}, {name: host2}]
underlay: {subnet: 10.99.0.0/24, subnet6: "fd00:99::/64"}
networks:
  - {name: mv, driver: macvlan, parent: eth0, hosts: [host1],
     subnet: 192.168.77.0/24, subnet6: "fd00:77::/64"}
  - {name: ov, driver: overlay, subnet: 10.0.9.0/24, subnet6: "fd00:9::/64"}
  - {name: br, driver: bridge, hosts: [host1], subnet: 172.28.0.0/24, subnet6: "fd00:28::/64"}
containers:
  - {name: a, host: host1, networks: [ov, mv], command: {app: udp-echo, port: 7}}
  - {name: b, host: host2, networks: [ov], command: {app: udp-echo, port: 7}}
  - {name: c, host: host1, networks: [mv], command: {app: udp-echo, port: 7}}
  - {name: u, host: host1, networks: [br], publish: ["5353:7/udp"],
     command: {app: udp-echo, port: 7}}
"""
HOST6 = "fd00:99::1"  # host1 on the underlay: where u's UDP port 5353 is published


def _udp_echo(ns: str, address: str, port: int) -> bool:
    """Whether one datagram from `ns` to address:port comes back (a lab udp-echo answers)."""
    flow = {"id": 0, "src": "client", "dst": address, "proto": "udp", "port": port, "size": 0}
    return real_flows.send({"client": ns}, [flow])[0] == "ok"


def test_macvlan_and_overlay_are_dual_stack_and_a_udp_port_is_published_over_both(lab):  # noqa: F811
    j = lab(schema.Topology.model_validate(yaml.safe_load(TOPOLOGY)))
    a, b, c, ul = (j.nodes[n] for n in ("a", "b", "c", "ul"))
    # Overlay: eth0 (the overlay leg) holds the IPv6 address beside the IPv4 one; br0 in the
    # overlay namespace the IPv6 gateway; no IPv6 default route (docker_gwbridge is IPv4 only).
    assert "inet6 fd00:9::2/64 scope global nodad" in sh(f"ip -n {a} -6 address show dev eth0")
    assert "inet6 fd00:9::3/64 scope global nodad" in sh(f"ip -n {b} -6 address show dev eth0")
    assert "default" not in sh(f"ip -n {b} -6 route show")
    # ... and host1's vxlan0 a permanent entry for b's IPv6 address beside its IPv4 one (the
    # vxlan proxy answers solicitations from these entries and drops the rest).
    [overlay_ns] = [n for n in sh("ip netns list").split() if n.startswith(f"{j.name}-host1-1-")]
    entries = sh(f"ip -n {overlay_ns} neigh show dev vxlan0")
    assert "10.0.9.3 lladdr 02:42:0a:00:09:03 PERMANENT" in entries
    assert "fd00:9::3 lladdr 02:42:0a:00:09:03 PERMANENT" in entries
    # Macvlan: the child holds its IPv6 address and an IPv6 default route via the gateway.
    assert "inet6 fd00:77::3/64 scope global nodad" in sh(f"ip -n {c} -6 address show dev eth0")
    assert "default via fd00:77::1 dev eth0" in sh(f"ip -n {c} -6 route show")
    # Real IPv6 packets across host1 and host2 over VXLAN, and between macvlan children.
    assert pings(b, "fd00:9::2") and _udp_echo(b, "fd00:9::2", 7)
    assert pings(c, "fd00:77::2") and _udp_echo(c, "fd00:77::2", 7)
    assert _resolve6(b, "a") == ["fd00:9::2"]
    # `path -6` takes the lab's name as its AAAA answer, and agrees with a real probe across
    # the overlay.
    done = subprocess.run([*NETDIAG, "path", a, "-6", "b", "--probe", "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    assert report["flow"]["dst"] == "fd00:9::3" and report["disposition"] == "delivered"
    assert report["probe"]["agrees"], report["probe"]
    # Without b's IPv6 entry on host1's vxlan0, a's solicitation for b finds no answer; the
    # driver's check names the entry, and its repair brings IPv6 back.
    sh(f"ip -n {overlay_ns} neigh del fd00:9::3 dev vxlan0")
    sh(f"ip -n {a} neigh flush all")
    assert not pings(a, "fd00:9::3")
    with open_store(j.store) as store:
        [missing] = Controller(store).check()
    assert "has no neighbour entry for fd00:9::3 on vxlan0" in missing.message, missing.message
    # ... and so does `check`: the lab's promise of a → b over IPv6 ends at vxlan0
    [unreached] = _check_lab(j)
    assert unreached["rule"] == "expected-flow-blocked" and unreached["message"].startswith(
        "a reaches b at fd00:9::3 over IPv6 (ICMPv6) on network ov: it is "
        "neighbour-unreachable in "), unreached
    assert "at vxlan0: vxlan0 answers neighbour solicitations for its overlay from its " \
        "neighbour entries (proxy), and has none for fd00:9::3" in unreached["message"], \
        unreached
    for step in missing.repair.steps:
        sh(f"ip netns exec {overlay_ns} {step.command()}")
    sh(f"ip -n {a} neigh flush all")  # a's cache still holds the failed resolution: forget it
    assert pings(a, "fd00:9::3")
    # A UDP port published from the dual-stack bridge network answers over both families:
    # once host1's new bridge has a usable link-local address, the source of the neighbour
    # solicitations it sends for a packet it forwards (until then the kernel sends none, and
    # a forwarded datagram is lost: TCP would retransmit, one datagram has no second chance).
    _wait_until_no_address_is_tentative({"host1": j.nodes["host1"]})
    assert _udp_echo(ul, "10.99.0.1", 5353) and _udp_echo(ul, HOST6, 5353)
    # The lab promises these flows, and keeps them.
    snapshot = collect_snapshot([ref for ref in discover() if ref.lab == j.name])
    promised = {e.what for e in expected.lab_expectations(snapshot)}
    assert {"c reaches a at fd00:77::2 over IPv6 (ICMPv6) on network mv",
            "a reaches b at fd00:9::3 over IPv6 (ICMPv6) on network ov",
            "a reaches c at fd00:77::3 over IPv6 (ICMPv6) on network mv",
            "the lab's underlay reaches u's published port 10.99.0.1:5353/udp on host1",
            f"the lab's underlay reaches u's published port [{HOST6}]:5353/udp on host1 "
            "over IPv6"} <= promised, sorted(promised)
    assert list(expected.judge(snapshot)) == []
    # `lab from-snapshot` keeps the overlay's IPv6 subnet (from br0's IPv6 gateway).
    rebuilt = {n["driver"]: n for n in topology_from(snapshot, "again")["networks"]}
    assert rebuilt["overlay"]["subnet6"] == "fd00:9::/64"
    assert rebuilt["bridge"]["subnet6"] == "fd00:28::/64"
    assert {k: rebuilt["macvlan"][k] for k in ("subnet", "subnet6", "parent", "hosts")} == \
        {"subnet": "192.168.77.0/24", "subnet6": "fd00:77::/64", "parent": "eth0",
         "hosts": ["host1"]}, rebuilt["macvlan"]
    assert _check_lab(j) == []
    # Without its ip6tables DNAT the UDP port answers over IPv4 only, and `check` says which.
    host = j.nodes["host1"]
    [dnat] = [line for line in sh(f"ip netns exec {host} ip6tables-save -t nat").splitlines()
              if "--dport 5353" in line]
    sh(f"ip netns exec {host} ip6tables -t nat {dnat.replace('-A', '-D', 1)}")
    assert _udp_echo(ul, "10.99.0.1", 5353) and not _udp_echo(ul, HOST6, 5353)
    [blocked] = expected.judge(collect_snapshot([r for r in discover() if r.lab == j.name]))
    assert blocked.expectation.what == \
        f"the lab's underlay reaches u's published port [{HOST6}]:5353/udp on host1 over IPv6"
    assert blocked.result.disposition == "no-listener"  # host1's own port 5353: nobody there
    # A lab rebuilt from the snapshot gives the macvlan children the same addresses.
    again = lab(schema.Topology.model_validate(topology_from(snapshot, lab_name())))
    c_again = again.nodes["c"]
    assert "inet6 fd00:77::3/64 scope global nodad" in sh(f"ip -n {c_again} -6 address show")
    assert "default via fd00:77::1 dev eth0" in sh(f"ip -n {c_again} -6 route show")
    assert pings(c_again, "fd00:77::2")
