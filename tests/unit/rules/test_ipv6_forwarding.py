"""forward-policy-drop over IPv6, on the snapshot of a real dual-stack Docker 20.10 host with
its experimental ip6tables on (tests/fixtures/docker28_ipv6/README.md): Docker set ip6tables'
FORWARD policy to DROP and accepts its own bridges' traffic — quiet; a KVM-like bridge beside
them, routing IPv6, loses its IPv6 to that policy as it loses its IPv4 to iptables' (two
causes: two findings, each with its own tool's repair)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netdiag.model import Address, Link
from netdiag.model.serialize import load
from tests.fixtures.rules import run_rule

HEALTHY = Path(__file__).parents[2] / "fixtures" / "docker28_ipv6" / "healthy-20.10.json"


def _with_kvm_bridge(snapshot, ipv6: bool = True):
    """virbr0 (192.168.122.1/24, and fd00:122::1/64 with `ipv6`) with a VM's tap on it."""
    host_id = snapshot.docker[0].namespace
    links = (Link(index=90, name="virbr0", kind="bridge", mtu=1500, admin_up=True,
                  oper_state="up"),
             Link(index=91, name="vnet0", kind="tun", mtu=1500, admin_up=True,
                  oper_state="unknown", master="virbr0", master_index=90))
    addresses = (Address(90, "virbr0", 4, "192.168.122.1", 24),) + \
        ((Address(90, "virbr0", 6, "fd00:122::1", 64),) if ipv6 else ())
    return replace(snapshot, namespaces=tuple(
        replace(s, links=s.links + links, addresses=s.addresses + addresses)
        if s.ref.id == host_id else s for s in snapshot.namespaces))


def test_dockers_ip6tables_forward_drop_with_its_own_accepts_is_quiet():
    snapshot = load(HEALTHY)
    host = snapshot.namespace(snapshot.docker[0].namespace)
    assert host.firewall.chain("filter", "FORWARD", 6).policy == "DROP"
    assert run_rule("forward-policy-drop", snapshot) == []


def test_a_kvm_bridge_loses_ipv6_to_ip6tables_forward_drop():
    found = {f.subject: f for f in run_rule("forward-policy-drop",
                                            _with_kvm_bridge(load(HEALTHY)))}
    assert set(found) == {"virbr0", "virbr0 (IPv6)"}
    six = found["virbr0 (IPv6)"]
    assert six.message == ("IPv6 traffic out of virbr0 and into virbr0 falls through to the "
                           "FORWARD policy DROP (ip6tables nft backend): nothing accepts it")
    assert [s.command() for s in six.repair.steps] == [
        "ip6tables -t filter -I FORWARD 1 -i virbr0 -j ACCEPT",
        "ip6tables -t filter -I FORWARD 1 -o virbr0 -j ACCEPT"]
    assert found["virbr0"].message.startswith("traffic out of virbr0")  # IPv4's, unchanged


def test_a_bridge_without_a_global_ipv6_address_routes_no_ipv6():
    found = run_rule("forward-policy-drop", _with_kvm_bridge(load(HEALTHY), ipv6=False))
    assert [f.subject for f in found] == ["virbr0"]
