"""Snapshot comparison (netdiag.diff) and `netdiag diff` from hand-built snapshots."""

from dataclasses import replace

import pytest

from netdiag.cli import main
from netdiag.diff import diff
from netdiag.model import (
    Conntrack,
    FdbEntry,
    Firewall,
    HostInfo,
    IptablesChain,
    IptablesRule,
    Link,
    Match,
    NamespaceRef,
    NamespaceState,
    NftRule,
    NsKind,
    Route,
    Snapshot,
    VxlanInfo,
)
from netdiag.model.serialize import save


def ref(ns_id, label):
    return NamespaceRef(id=ns_id, kind=NsKind.NAMED, path=f"/run/netns/{label}", label=label,
                        name=label)


def rule(position, port, packets=0):
    return IptablesRule(backend="nft", family=4, table="filter", chain="INPUT",
                        position=position, matches=(Match("dport", str(port), module="tcp"),),
                        target="ACCEPT", packets=packets, bytes=packets * 60,
                        text=f"-A INPUT -p tcp -m tcp --dport {port} -j ACCEPT")


def state(ns_id=1, label="a", **fields):
    base = dict(
        links=(Link(index=1, name="lo", kind="loopback", mtu=65536, admin_up=True,
                    oper_state="unknown"),
               Link(index=2, name="vx0", kind="vxlan", mtu=1450, admin_up=True, oper_state="up",
                    vxlan=VxlanInfo(vni=42, dstport=4789))),
        routes=(Route(family=4, dst="10.0.0.0/24", dev="vx0", protocol="kernel", scope="link"),),
        fdb=(FdbEntry(ifname="vx0", mac="00:00:00:00:00:00", dst="192.0.2.1",
                      state="permanent", flags=("self",)),),
        firewall=Firewall(
            iptables_chains=(IptablesChain("nft", 4, "filter", "INPUT", "ACCEPT", packets=5),),
            iptables_rules=(rule(1, 22), rule(2, 80))),
        conntrack=Conntrack(count=3, max=65536),
    )
    base.update(fields)
    return NamespaceState(ref=ref(ns_id, label), **base)


def snap(*states, created_at="2026-01-01T00:00:00+00:00"):
    return Snapshot(created_at=created_at, host=HostInfo(hostname="h"), namespaces=states)


def test_equal_snapshots_have_no_changes_despite_counters_and_time():
    before = snap(state())
    fw = before.namespaces[0].firewall
    busy = replace(fw, iptables_chains=(replace(fw.iptables_chains[0], packets=999),),
                   iptables_rules=(rule(1, 22, packets=7), rule(2, 80, packets=9)))
    after = snap(state(firewall=busy, conntrack=Conntrack(count=1000, max=65536)),
                 created_at="2026-06-01T00:00:00+00:00")
    assert diff(before, after) == ()


def test_nft_rule_counters_are_ignored():
    def nft(packets):
        return Firewall(nft_rules=(NftRule("ip", "filter", "INPUT", handle=packets + 3,
                                           text=f"tcp dport 80 counter packets {packets} "
                                                f"bytes {packets * 60} accept",
                                           expr=f'[{{"counter":{{"packets":{packets},'
                                                f'"bytes":{packets * 60}}}}}]'),),)
    assert diff(snap(state(firewall=nft(0))), snap(state(firewall=nft(12)))) == ()


def test_changed_field_is_reported_with_old_and_new_value():
    before = snap(state())
    links = before.namespaces[0].links
    after = snap(state(links=(links[0], replace(links[1], mtu=1400,
                                                vxlan=VxlanInfo(vni=42, dstport=8472)))))
    (change,) = diff(before, after)
    assert (change.namespace, change.section, change.kind, change.key) == (
        "a", "links", "changed", "vx0")
    assert change.details == ("mtu: 1450 → 1400", "vxlan.dstport: 4789 → 8472")


def test_added_and_removed_records():
    before = snap(state())
    second = FdbEntry(ifname="vx0", mac="00:00:00:00:00:00", dst="192.0.2.9",
                      state="permanent", flags=("self",))
    after = snap(state(fdb=(before.namespaces[0].fdb[0], second), routes=()))
    changes = diff(before, after)
    assert {(c.section, c.kind, c.key) for c in changes} == {
        ("routes", "removed", "ipv4 main unicast 10.0.0.0/24 metric 0 dev vx0"),
        ("fdb", "added", "vx0 00:00:00:00:00:00"),
    }
    added = [c for c in changes if c.kind == "added"][0]
    assert "dst=192.0.2.9" in added.details


def test_a_vxlan_entry_pointing_elsewhere_is_a_change_of_dst():
    before = snap(state())
    moved = replace(before.namespaces[0].fdb[0], dst="192.0.2.9")
    (change,) = diff(before, snap(state(fdb=(moved,))))
    assert change.kind == "changed"
    assert change.details == ("dst: 192.0.2.1 → 192.0.2.9",)


def test_inserting_a_rule_reports_that_rule_only():
    before = snap(state())
    after = snap(state(firewall=replace(before.namespaces[0].firewall,
                                        iptables_rules=(rule(1, 443), rule(2, 22),
                                                        rule(3, 80)))))
    changes = diff(before, after)
    assert [(c.section, c.kind) for c in changes] == [("firewall.iptables_rules", "added")]
    assert "443" in changes[0].key


def test_reordered_rules_are_reported():
    before = snap(state())
    after = snap(state(firewall=replace(before.namespaces[0].firewall,
                                        iptables_rules=(rule(1, 80), rule(2, 22)))))
    changes = diff(before, after)
    assert [(c.kind, c.details) for c in changes] == [("changed", ("rule order changed",))]


def test_namespaces_added_removed_and_matched_by_label_when_the_inode_changed():
    before = snap(state(1, "a"), state(2, "gone"), state(3, "renumbered"))
    after = snap(state(1, "a"), state(9, "renumbered"), state(4, "new"))
    changes = {(c.section, c.kind, c.key) for c in diff(before, after)}
    assert changes == {("namespace", "removed", "gone"), ("namespace", "added", "new")}


def test_command_exit_codes_and_output(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    save(snap(state()), a)
    save(snap(state(routes=())), b)
    assert main(["diff", str(a), str(a)]) == 0
    assert "no differences" in capsys.readouterr().out
    assert main(["diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "== a ==" in out and "- routes ipv4 main unicast 10.0.0.0/24" in out


def test_command_json(tmp_path, capsys):
    import json

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    save(snap(state()), a)
    save(snap(state(routes=())), b)
    assert main(["diff", "--json", str(a), str(b)]) == 1
    (change,) = json.loads(capsys.readouterr().out)
    assert change["section"] == "routes" and change["kind"] == "removed"


@pytest.mark.parametrize("content", ["{", '{"namespaces": [], "schema_version": 99}'])
def test_unreadable_snapshot_gives_one_line_and_exit_2(tmp_path, capsys, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    good = tmp_path / "good.json"
    save(snap(state()), good)
    assert main(["diff", str(bad), str(good)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json" in err


def test_what_the_kernel_learns_by_itself_is_no_difference_unless_all_fields():
    """A neighbour going from delay to reachable, a learned forwarding entry, the local
    table's kernel routes: no change by default (the diff exited 1 for them); --all-fields
    shows them. A permanent neighbour entry that changes is always a change."""
    from netdiag.model import Neighbour

    def neighbours(*states):
        return tuple(Neighbour("vx0", 4, f"10.0.0.{i}", f"02:42:0a:00:00:0{i}", (s,))
                     for i, s in enumerate(states, 2))

    learned = FdbEntry(ifname="vx0", mac="02:42:0a:00:00:09", dst="192.0.2.1")
    local = Route(family=4, dst="10.0.0.1/32", table=255, type="local", dev="vx0",
                  protocol="kernel", scope="host")
    before = snap(state(neighbours=neighbours("permanent", "delay")))
    after = snap(state(neighbours=neighbours("permanent", "reachable", "stale"),
                       fdb=(before.namespaces[0].fdb[0], learned),
                       routes=(*before.namespaces[0].routes, local)))
    assert diff(before, after) == ()
    every = diff(before, after, all_fields=True)
    assert {(c.section, c.kind) for c in every} == {("neighbours", "changed"),
                                                   ("neighbours", "added"), ("fdb", "added"),
                                                   ("routes", "added")}
    moved = snap(state(neighbours=(replace(neighbours("permanent")[0],
                                           mac="02:42:0a:00:00:99"),)))
    (change,) = diff(before, moved)
    assert change.section == "neighbours" and "mac:" in change.details[0]


def test_the_command_takes_all_fields(tmp_path, capsys):
    from netdiag.model import Neighbour

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    save(snap(state(neighbours=(Neighbour("vx0", 4, "10.0.0.2", "02:42:0a:00:00:02",
                                          ("delay",)),))), a)
    save(snap(state(neighbours=(Neighbour("vx0", 4, "10.0.0.2", "02:42:0a:00:00:02",
                                          ("reachable",)),))), b)
    assert main(["diff", str(a), str(b)]) == 0
    assert main(["diff", str(a), str(b), "--all-fields"]) == 1
    assert "state: (delay) → (reachable)" in capsys.readouterr().out
