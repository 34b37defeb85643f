"""The netlink collectors against what iproute2 says about the same real namespaces.

One module-scoped topology in two namespaces made by the test: a veth pair across them, a
bridge with a veth port and a vxlan port, static VXLAN FDB entries with `dst`, a macvlan on a
veth, policy rules, an extra routing table with metric and MTU, blackhole and multipath
routes, and permanent IPv4 and IPv6 neighbours. Each collector's records are reduced to the
facts `ip -j` / `bridge -j` print and compared as sets.
"""

from __future__ import annotations

import json

import pytest

from netdiag.collect import addresses, collect_snapshot, fdb, links, neighbours, routes, rules
from netdiag.model import NamespaceRef, NsKind
from tests.conftest import NetnsFactory, sh

pytestmark = pytest.mark.integration

COLLECTORS = (links, addresses, routes, rules, neighbours, fdb)
TABLES = {"local": 255, "main": 254, "default": 253}
# `ip link` derives these from other facts (UP without LOWER_UP; lower device down).
IPROUTE2_PSEUDO_FLAGS = frozenset({"NO-CARRIER", "M-DOWN"})


def table_number(name) -> int:
    """iproute2 prints well-known tables by name, the others as numbers."""
    if name in TABLES:
        return TABLES[name]
    return int(name) if name else 0


VXLAN_FLAGS = "learning proxy l2miss l3miss ttl 5"
REMOTE = "vni 5000 port 4790"


def _topology(a: str, b: str) -> None:
    for line in f"""
        ip -n {a} link add va type veth peer name vb netns {b}
        ip -n {a} link add br0 type bridge
        ip -n {a} link add vp1 type veth peer name vp2
        ip -n {a} link set vp1 master br0
        ip -n {a} addr add 10.9.0.1/24 dev va
        ip -n {a} addr add fd00:9::1/64 dev va nodad
        ip -n {b} addr add 10.9.0.2/24 dev vb
        ip -n {a} link add vx0 type vxlan id 4096 local 10.9.0.1 dstport 4789 dev va {VXLAN_FLAGS}
        ip -n {a} link set vx0 master br0
        ip -n {a} link add mv0 link va type macvlan mode private
        ip -n {a} link set va up
        ip -n {b} link set vb up
        ip -n {a} link set br0 up
        ip -n {a} link set vp1 up
        ip -n {a} link set vx0 up
        ip -n {a} link set dev vp2 mtu 1400
        bridge -n {a} fdb append 00:00:00:00:00:00 dev vx0 dst 10.9.0.2 self permanent
        bridge -n {a} fdb append 00:00:00:00:00:00 dev vx0 dst 10.9.0.3 self permanent
        bridge -n {a} fdb add 02:42:0a:00:00:05 dev vx0 dst 10.9.0.2 {REMOTE} self permanent
        bridge -n {a} fdb add 02:42:0a:00:00:06 dev vp1 master static
        ip -n {a} neigh add 10.9.0.7 lladdr 02:42:0a:00:00:07 dev va nud permanent
        ip -n {a} -6 neigh add fd00:9::7 lladdr 02:42:0a:00:00:08 dev va nud permanent
        ip -n {a} route add 10.50.0.0/16 via 10.9.0.2 metric 50 mtu 1400 table 100
        ip -n {a} route add blackhole 10.60.0.0/16
        ip -n {a} route add 10.70.0.0/16 nexthop via 10.9.0.2 dev va nexthop via 10.9.0.3 dev va
        ip -n {a} route add default via 10.9.0.2 proto static
        ip -n {a} -6 route add fd00:77::/64 via fd00:9::2 table 200 metric 7
        ip -n {a} rule add from 10.9.0.0/24 lookup 100 pref 100
        ip -n {a} rule add fwmark 0x10/0xff table 200 pref 200
        ip -n {a} rule add not to 1.2.3.0/24 iif va table 300 pref 300
        ip -n {a} rule add pref 400 prohibit
        ip -n {a} -6 rule add from fd00:9::/64 lookup 200 pref 500
    """.strip().splitlines():
        sh(line.strip())


@pytest.fixture(scope="module")
def world():
    factory = NetnsFactory()
    try:
        a, b = factory("a"), factory("b")
        _topology(a, b)
        refs = [NamespaceRef(id=_inode(name), kind=NsKind.NAMED, path=f"/run/netns/{name}",
                             label=name, name=name) for name in (a, b)]
        snapshot = collect_snapshot(refs, collectors=COLLECTORS)
        yield a, b, snapshot
    finally:
        factory.cleanup()


def _inode(name: str) -> int:
    import os

    return os.stat(f"/run/netns/{name}").st_ino


def ip_json(command: str) -> list[dict]:
    return json.loads(sh(command) or "[]")


def state_of(snapshot, name):
    (state,) = [s for s in snapshot.namespaces if s.ref.name == name]
    return state


def test_no_gaps(world):
    _, _, snapshot = world
    assert snapshot.gaps == ()


def test_links_match_ip_link(world):
    a, _, snapshot = world
    state = state_of(snapshot, a)
    ours = {(link.index, link.name, link.mtu, link.oper_state, link.mac, frozenset(link.flags),
             link.master, link.parent_index, link.parent_netnsid) for link in state.links}
    theirs = {(d["ifindex"], d["ifname"], d["mtu"], d["operstate"].lower(), d.get("address", ""),
               frozenset(d["flags"]) - IPROUTE2_PSEUDO_FLAGS, d.get("master", ""),
               d.get("link_index", 0) or _index_of(state, d.get("link")), d.get("link_netnsid"))
              for d in ip_json(f"ip -n {a} -j -d link show")}
    assert ours == theirs
    kinds = {link.name: link.kind for link in state.links}
    assert kinds == {"lo": "loopback", "va": "veth", "br0": "bridge", "vp1": "veth",
                     "vp2": "veth", "vx0": "vxlan", "mv0": "macvlan"}


def _index_of(state, name):
    link = state.link(name) if name else None
    return link.index if link else 0


def test_vxlan_bridge_and_macvlan_attributes_match_ip_link_details(world):
    a, _, snapshot = world
    state = state_of(snapshot, a)
    details = {d["ifname"]: d for d in ip_json(f"ip -n {a} -j -d link show")}
    vx = state.link("vx0").vxlan
    data = details["vx0"]["linkinfo"]["info_data"]
    assert (vx.vni, vx.local, vx.dstport, vx.dev, vx.learning, vx.proxy, vx.l2miss, vx.l3miss,
            vx.ttl) == (data["id"], data["local"], data["port"], data["link"], data["learning"],
                        data["proxy"], data["l2miss"], data["l3miss"], data["ttl"])
    bridge = details["br0"]["linkinfo"]["info_data"]
    br = state.link("br0").bridge
    assert (br.stp, br.vlan_filtering, br.forward_delay, br.ageing_time) == (
        bool(bridge["stp_state"]), bool(bridge["vlan_filtering"]), bridge["forward_delay"],
        bridge["ageing_time"])
    for port in ("vp1", "vx0"):
        slave = details[port]["linkinfo"]["info_slave_data"]
        info = state.link(port).port
        assert (info.state, info.hairpin, info.learning, info.flood, info.isolated) == (
            slave["state"], slave["hairpin"], slave["learning"], slave["flood"],
            slave["isolated"])
    mv = state.link("mv0")
    assert mv.macvlan.mode == details["mv0"]["linkinfo"]["info_data"]["mode"] == "private"
    assert mv.parent == details["mv0"]["link"] == "va"


def test_veth_peers_are_resolved_across_and_within_namespaces(world):
    a, b, snapshot = world
    sa, sb = state_of(snapshot, a), state_of(snapshot, b)
    assert (sa.link("va").peer_namespace, sa.link("va").peer_name) == (sb.ref.id, "vb")
    assert (sb.link("vb").peer_namespace, sb.link("vb").peer_name) == (sa.ref.id, "va")
    assert (sa.link("vp1").peer_namespace, sa.link("vp1").peer_name) == (sa.ref.id, "vp2")


def test_addresses_match_ip_addr(world):
    a, _, snapshot = world
    ours = {(x.ifname, x.family, x.address, x.prefixlen, x.scope, x.broadcast)
            for x in state_of(snapshot, a).addresses}
    theirs = {(d["ifname"], 4 if i["family"] == "inet" else 6, i["local"], i["prefixlen"],
               i["scope"], i.get("broadcast", ""))
              for d in ip_json(f"ip -n {a} -j addr show") for i in d["addr_info"]}
    assert ours == theirs
    assert ("va", 6, "fd00:9::1", 64, "global", "") in ours


def _route_facts(family: int, d: dict) -> tuple:
    dst = d["dst"]
    if dst != "default" and "/" not in dst:
        dst += "/32" if family == 4 else "/128"
    metrics = {k: v for m in d.get("metrics", []) for k, v in m.items()}
    table = d.get("table", "main")
    hops = tuple((h.get("gateway", ""), h.get("dev", "")) for h in d.get("nexthops", ()))
    return (family, dst, table_number(table),
            d.get("type", "unicast"), d.get("protocol", "boot"), d.get("scope", "global"),
            d.get("dev", ""), d.get("gateway", ""), d.get("prefsrc", ""), d.get("metric", 0),
            metrics.get("mtu", 0), hops)


def test_routes_of_all_tables_match_ip_route(world):
    a, _, snapshot = world
    ours = {(r.family, r.dst, r.table, r.type, r.protocol, r.scope, r.dev, r.gateway, r.prefsrc,
             r.metric, r.mtu, r.nexthops) for r in state_of(snapshot, a).routes}
    theirs = {_route_facts(4, d) for d in ip_json(f"ip -n {a} -j -4 route show table all")}
    theirs |= {_route_facts(6, d) for d in ip_json(f"ip -n {a} -j -6 route show table all")}
    assert ours == theirs
    assert (4, "10.50.0.0/16", 100, "unicast", "boot", "global", "va", "10.9.0.2", "", 50, 1400,
            ()) in ours
    assert (6, "fd00:77::/64", 200) in {r[:3] for r in ours}


def _rule_facts(family: int, d: dict) -> tuple:
    def prefix(key):
        if d.get(key, "all") == "all":
            return ""
        return f"{d[key]}/{d.get(key + 'len', 32 if family == 4 else 128)}"

    table = d.get("table", "")
    return (family, d["priority"], d.get("action", "lookup"),
            table_number(table), prefix("src"), prefix("dst"),
            d.get("iif", ""), int(d.get("fwmark", "0"), 16), int(d.get("fwmask", "0"), 16),
            "not" in d)


def test_rules_match_ip_rule(world):
    a, _, snapshot = world
    ours = {(r.family, r.priority, r.action, r.table, r.src, r.dst, r.iif, r.fwmark, r.fwmask,
             r.invert) for r in state_of(snapshot, a).rules}
    theirs = {_rule_facts(4, d) for d in ip_json(f"ip -n {a} -j -4 rule show")}
    theirs |= {_rule_facts(6, d) for d in ip_json(f"ip -n {a} -j -6 rule show")}
    assert ours == theirs
    assert (4, 300, "lookup", 300, "", "1.2.3.0/24", "va", 0, 0, True) in ours


def test_neighbours_match_ip_neigh(world):
    a, _, snapshot = world
    ours = {(n.ifname, n.address, n.mac, n.state) for n in state_of(snapshot, a).neighbours}
    theirs = {(d["dev"], d["dst"], d.get("lladdr", ""), tuple(s.lower() for s in d["state"]))
              for d in ip_json(f"ip -n {a} -j neigh show")}
    assert ours == theirs
    assert ("va", "fd00:9::7", "02:42:0a:00:00:08", ("permanent",)) in ours


def test_fdb_matches_bridge_fdb_with_vxlan_destinations(world):
    a, _, snapshot = world
    state = state_of(snapshot, a)
    ours = {(e.ifname, e.mac, e.master, e.dst, e.vni, e.port, e.state) for e in state.fdb}
    kinds = {link.name: link.kind for link in state.links}
    theirs = {(d["ifname"], d["mac"], d.get("master", ""), d.get("dst", ""), d.get("vni", 0),
               d.get("port", 0), d.get("state") or "dynamic")
              for d in ip_json(f"bridge -n {a} -j fdb show")
              if d.get("master") or kinds.get(d["ifname"]) == "vxlan"}
    assert ours == theirs
    assert ("vx0", "00:00:00:00:00:00", "", "10.9.0.3", 0, 0, "permanent") in ours
    assert ("vx0", "02:42:0a:00:00:05", "", "10.9.0.2", 5000, 4790, "permanent") in ours
    assert ("vp1", "02:42:0a:00:00:06", "br0", "", 0, 0, "static") in ours


def test_namespace_without_bridge_or_vxlan_has_no_fdb(world):
    _, b, snapshot = world
    assert state_of(snapshot, b).fdb == ()
