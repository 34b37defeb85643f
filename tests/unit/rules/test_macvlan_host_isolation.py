from dataclasses import replace

from netdiag.checks.links import macvlan_host_isolation as rule
from netdiag.findings.finding import Severity
from netdiag.model import MacvlanInfo, NsKind
from tests.fixtures.builder import SnapshotBuilder
from tests.unit.rules.part2_fixtures import run


def macvlan_network(host_address: str = "192.168.1.10/24", shim: bool = False,
                    decoy: bool = False):
    b = SnapshotBuilder()
    if decoy:  # another namespace whose eth0 has the same index as the host's parent
        b.link(b.namespace("other"), "eth0", address="10.9.0.1/24")
    host = b.host()
    b.link(host, "eth0", address=host_address)
    parent_index = 2  # the builder numbers links from 2 after lo
    if shim:
        b.link(host, "mvshim", kind="macvlan", parent="eth0", parent_index=parent_index,
               macvlan=MacvlanInfo("bridge"), address="192.168.1.63/32")
    children = []
    for name, address in (("web", "192.168.1.70/24"), ("api", "192.168.1.71/24")):
        ns = b.container(name)
        b.link(ns, "eth0", kind="macvlan", parent_index=parent_index, parent_netnsid=0,
               macvlan=MacvlanInfo("bridge"), address=address)
        children.append(ns)
    return b.build(), host, children


def test_children_on_a_used_parent_without_shim_fire():
    snapshot, host, children = macvlan_network()
    (finding,) = run(rule, snapshot)
    assert finding.severity is Severity.INFO
    assert finding.namespace.id == host and finding.subject == "eth0"
    assert set(finding.related) == set(children)
    assert ("address", "192.168.1.10/24") in {(e.kind, e.key) for e in finding.evidence}
    assert {e.namespace for e in finding.evidence if e.kind == "link" and e.key == "eth0"} \
        >= set(children)


def test_shim_on_the_parent_passes():
    snapshot, _, _ = macvlan_network(shim=True)
    assert run(rule, snapshot) == []


def test_parent_without_addresses_passes():
    snapshot, _, _ = macvlan_network(host_address="")
    assert run(rule, snapshot) == []


def test_ambiguous_parent_index_resolves_only_to_the_host():
    snapshot, host, _ = macvlan_network(decoy=True)
    assert len([s for s in snapshot.namespaces if s.link("eth0") and s.link("eth0").index == 2
                and s.link("eth0").kind == "device"]) == 2
    (finding,) = run(rule, snapshot)
    assert finding.namespace.id == host
    # Without a host among the candidates, the child stays unresolved: no guess.
    not_host = replace(snapshot, namespaces=tuple(
        replace(s, ref=replace(s.ref, kind=NsKind.NAMED)) if s.ref.id == host else s
        for s in snapshot.namespaces))
    assert run(rule, not_host) == []
