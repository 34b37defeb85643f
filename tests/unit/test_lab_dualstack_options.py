"""Dual stack per network beyond the bridge, and UDP published ports, without root: the
topology's `subnet6` on macvlan and overlay networks reaches each driver as its own option
(netdiag/lab/build.py), each driver's options read it, and a lab's published UDP port is a
promised flow — over IPv6 too only where the driver publishes it there (netdiag/flows/expected.py,
on the snapshot of the real dual-stack lab: tests/fixtures/lab_dual_stack/README.md). The real
lab: tests/integration/test_lab_dualstack_drivers.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netdiag.drivers.ipam import IPV6_ADDRESS, with_ipv6
from netdiag.drivers.macvlan import options as macvlan
from netdiag.drivers.overlay import options as overlay
from netdiag.errors import UsageError
from netdiag.flows import expected, names
from netdiag.lab.build import _options
from netdiag.model.lab import LabPort
from netdiag.model.serialize import load
from netdiag.store.records import Endpoint
from netdiag.topology.schema import NetworkSpec

HEALTHY = Path(__file__).parents[1] / "fixtures" / "lab_dual_stack" / "healthy.json"


@pytest.mark.parametrize("driver, parse", [("macvlan", macvlan.parse), ("overlay", overlay.parse)])
def test_a_macvlan_or_overlay_network_takes_an_ipv6_subnet(driver, parse):
    spec = NetworkSpec(name="n", driver=driver, subnet="10.0.9.0/24", subnet6="fd00:9::/64")
    options = _options(spec)
    assert options[f"netdiag.{driver}.ipv6_subnet"] == "fd00:9::/64"
    assert parse(options).subnet6 == "fd00:9::/64"
    assert parse({}).subnet6 == ""
    with pytest.raises(UsageError, match="IPv6 subnet 10.0.0.0/24 is not IPv6"):
        parse({f"netdiag.{driver}.ipv6_subnet": "10.0.0.0/24"})


def test_an_endpoint_on_a_dual_stack_network_gets_the_host_number_of_its_ipv4_address():
    endpoint = Endpoint(id="e" * 64, network_id="n" * 64, name="a", host="/run/netns/h",
                        address="10.0.9.7/24")
    assert with_ipv6(endpoint, "10.0.9.0/24", "fd00:9::/64").datum(IPV6_ADDRESS) == \
        "fd00:9::7/64"
    assert with_ipv6(endpoint, "10.0.9.0/24", "") is endpoint


def _published(port: LabPort) -> dict[str, object]:
    snapshot = load(HEALTHY)
    [lab] = snapshot.labs
    snapshot = replace(snapshot, labs=(replace(lab, published=(port,)),))
    return {e.what: e.packet for e in expected.lab_expectations(snapshot)
            if "published port" in e.what}


def test_a_published_udp_port_is_promised_over_both_families_where_the_driver_publishes_both():
    promised = _published(LabPort("web", "petnet", "host1", 5353, 7, "udp", ipv6=True))
    assert {what: (p.proto, p.dst, p.dport) for what, p in promised.items()} == {
        "the lab's underlay reaches web's published port 10.99.0.1:5353/udp on host1":
            ("udp", "10.99.0.1", 5353),
        "the lab's underlay reaches web's published port [fd00:99::1]:5353/udp on host1 over "
        "IPv6": ("udp", "fd00:99::1", 5353)}


def test_a_port_the_driver_publishes_over_ipv4_only_is_promised_over_ipv4_only():
    # An overlay publishes through docker_gwbridge, IPv4 only, whatever its own subnets.
    promised = _published(LabPort("web", "petnet", "host1", 8080, 5000, "tcp", ipv6=False))
    assert list(promised) == [
        "the lab's underlay reaches web's published port 10.99.0.1:8080 on host1"]


def test_a_lab_name_asked_for_over_ipv6_is_its_aaaa_answer():
    # `path web -6 db` in a dual-stack lab: the lab's DNS answers AAAA with db's IPv6 address.
    snapshot = load(HEALTHY)
    web = next(s.ref.id for s in snapshot.namespaces if s.ref.node == "web")
    assert names.resolve(snapshot, web, "db") == ("172.28.0.2", "lab ndt-rec6: db on petnet")
    assert names.resolve(snapshot, web, "db", family=6) == \
        ("fd00:28::2", "lab ndt-rec6: db on petnet")
