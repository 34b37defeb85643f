"""Veth peer resolution from collected links alone (hand-built namespaces, no root)."""

from netdiag.collect.peers import resolve
from netdiag.model import Link, NamespaceRef, NamespaceState, NsKind


def veth(index, name, parent_index, netnsid=0):
    return Link(index=index, name=name, kind="veth", mtu=1500, admin_up=True, oper_state="up",
                parent_index=parent_index, parent_netnsid=netnsid)


def ns(ns_id, *links):
    return NamespaceState(ref=NamespaceRef(id=ns_id, kind=NsKind.NAMED, path=f"/run/netns/{ns_id}",
                                           label=f"ns{ns_id}"), links=links)


def peers_of(states):
    return {(s.ref.id, link.name): (link.peer_namespace, link.peer_name)
            for s in states for link in s.links}


def test_pair_across_namespaces_is_resolved_both_ways():
    hub = ns(1, veth(7, "h0", 2))
    box = ns(2, veth(2, "eth0", 7))
    found = peers_of(resolve([hub, box]))
    assert found[(1, "h0")] == (2, "eth0")
    assert found[(2, "eth0")] == (1, "h0")


def test_equal_indexes_on_both_sides_still_pair():
    # `ip link add a type veth peer b netns B` in fresh namespaces gives both ends index 2.
    found = peers_of(resolve([ns(1, veth(2, "a", 2)), ns(2, veth(2, "b", 2))]))
    assert found == {(1, "a"): (2, "b"), (2, "b"): (1, "a")}


def test_pair_inside_one_namespace_uses_the_parent():
    state = ns(1, veth(4, "x", 5, netnsid=None), veth(5, "y", 4, netnsid=None))
    found = peers_of(resolve([state]))
    assert found == {(1, "x"): (1, "y"), (1, "y"): (1, "x")}


def test_ambiguous_pairs_stay_unresolved():
    # Two hubs each have a veth 7 whose peer is some namespace's 2: the links alone cannot
    # say which container belongs to which hub, so nothing is guessed.
    states = [ns(1, veth(7, "h0", 2)), ns(3, veth(7, "h0", 2)),
              ns(2, veth(2, "eth0", 7)), ns(4, veth(2, "eth0", 7))]
    assert set(peers_of(resolve(states)).values()) == {(None, "")}


def test_unambiguous_pairs_are_resolved_beside_ambiguous_ones():
    states = [ns(1, veth(7, "h0", 2), veth(8, "h1", 2)), ns(3, veth(7, "h0", 2)),
              ns(2, veth(2, "eth0", 7)), ns(4, veth(2, "eth0", 7)), ns(5, veth(2, "eth0", 8))]
    found = peers_of(resolve(states))
    assert found[(1, "h1")] == (5, "eth0")
    assert found[(5, "eth0")] == (1, "h1")
    assert found[(1, "h0")] == (None, "")


def test_peer_in_a_namespace_that_was_not_read_stays_unresolved():
    assert peers_of(resolve([ns(1, veth(7, "h0", 2))])) == {(1, "h0"): (None, "")}


def test_non_veth_links_are_untouched():
    macvlan = Link(index=3, name="mv0", kind="macvlan", mtu=1500, admin_up=True,
                   oper_state="up", parent_index=2, parent_netnsid=None, parent="eth0")
    state = ns(1, veth(2, "eth0", 9), macvlan)
    assert resolve([state])[0].links[1] == macvlan


def test_unchanged_namespaces_are_returned_as_they_were():
    state = ns(1, Link(index=1, name="lo", kind="loopback", mtu=65536, admin_up=True,
                       oper_state="unknown"))
    assert resolve([state])[0] is state


def test_many_namespaces_resolve():
    hub_links = tuple(veth(100 + i, f"h{i}", 2) for i in range(1000))
    boxes = [ns(10 + i, veth(2, "eth0", 100 + i)) for i in range(1000)]
    found = peers_of(resolve([ns(1, *hub_links), *boxes]))
    assert found[(1, "h999")] == (1009, "eth0")
    assert found[(1009, "eth0")] == (1, "h999")
