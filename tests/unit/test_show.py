"""`netdiag show` rendering from hand-built snapshots (and `--from FILE`), no root needed."""

import json

import pytest

from netdiag.cli import main
from netdiag.commands.show import SECTIONS, tables
from netdiag.model import (
    Address,
    BridgePortInfo,
    DnsConfig,
    EmbeddedDns,
    FdbEntry,
    Gap,
    HostInfo,
    IpvsService,
    Link,
    MacvlanInfo,
    NamespaceRef,
    NamespaceState,
    Neighbour,
    NsKind,
    PolicyRule,
    Route,
    Snapshot,
    Sysctl,
    VxlanInfo,
)
from netdiag.model.serialize import save
from netdiag.render import RenderContext

HUB = NamespaceRef(id=11, kind=NsKind.NAMED, path="/run/netns/hub", label="hub", name="hub")
BOX = NamespaceRef(id=22, kind=NsKind.DOCKER, path="/run/docker/netns/x", label="web",
                   container="web")


def hub() -> NamespaceState:
    return NamespaceState(
        ref=HUB,
        links=(Link(index=1, name="lo", kind="loopback", mtu=65536, admin_up=True,
                    oper_state="unknown"),
               Link(index=3, name="br0", kind="bridge", mtu=1500, admin_up=True,
                    oper_state="up"),
               Link(index=7, name="h0", kind="veth", mtu=1500, admin_up=True, oper_state="up",
                    master="br0", master_index=3, parent_index=2, parent_netnsid=0,
                    peer_namespace=22, peer_name="eth0", port=BridgePortInfo("forwarding")),
               Link(index=8, name="vx0", kind="vxlan", mtu=1450, admin_up=True,
                    oper_state="unknown", master="br0",
                    vxlan=VxlanInfo(vni=4096, local="192.0.2.1", dev="eth1", proxy=True)),
               Link(index=9, name="mv0", kind="macvlan", mtu=1500, admin_up=False,
                    oper_state="down", parent_index=3, parent="br0",
                    macvlan=MacvlanInfo("bridge"))),
        addresses=(Address(ifindex=3, ifname="br0", family=4, address="10.1.0.1",
                           prefixlen=24),),
        routes=(Route(family=4, dst="default", gateway="10.1.0.254", dev="br0"),
                Route(family=4, dst="10.7.0.0/16", table=100, nexthops=(("10.1.0.2", "br0"),
                                                                        ("10.1.0.3", "br0")))),
        rules=(PolicyRule(family=4, priority=100, table=100, src="10.1.0.0/24", invert=True),
               PolicyRule(family=4, priority=200, fwmark=0x10, fwmask=0xff, action="blackhole")),
        neighbours=(Neighbour(ifname="br0", family=4, address="10.1.0.2",
                              mac="02:42:0a:01:00:02", state=("permanent",)),),
        fdb=(FdbEntry(ifname="vx0", mac="02:42:0a:00:00:05", dst="192.0.2.7", vni=4096,
                      state="permanent", flags=("self",)),),
        ipvs=(IpvsService(protocol="", fwmark=256),),
        dns=DnsConfig(source="/etc/resolv.conf", nameservers=("127.0.0.11",),
                      embedded=EmbeddedDns(udp_port=41234, tcp_port=37415)),
        sysctls=(Sysctl("net.ipv4.ip_forward", "1"),),
    )


def box() -> NamespaceState:
    return NamespaceState(ref=BOX, links=(
        Link(index=2, name="eth0", kind="veth", mtu=1500, admin_up=True, oper_state="up",
             parent_index=7, parent_netnsid=0, peer_namespace=11, peer_name="h0"),))


def snapshot() -> Snapshot:
    return Snapshot(created_at="2026-01-01T00:00:00+00:00", host=HostInfo(hostname="h"),
                    namespaces=(hub(), box()),
                    gaps=(Gap("ipvs", "feature-missing", "kernel has no IPVS"),
                          Gap("sockets", "error", "sock_diag failed", namespace=22)))


def text(section, names=None):
    lines = []
    for table in tables(hub(), section, RenderContext(names or {})):
        lines.append(" ".join(table.headers))
        lines.extend(" ".join(str(c) for c in row) for row in table.rows)
    return "\n".join(lines)


def test_every_section_renders_rows_of_its_headers_width():
    for section in [None, *SECTIONS]:
        for table in tables(hub(), section):
            assert all(len(row) == len(table.headers) for row in table.rows), section


def test_links_show_veth_peers_by_name_and_lower_devices():
    out = text("links", {22: "web"})
    assert "h0 veth 1500 UP/up eth0@web br0" in out
    assert "mv0 macvlan 1500 DOWN/down br0" in out
    assert "eth0@inode:22" in text("links")  # a namespace the snapshot does not name


def test_routes_with_rules_and_fdb_with_vxlan_devices():
    routes = text("routes")
    assert "main default 10.1.0.254 br0" in " ".join(routes.split())
    assert "10.1.0.2 br0, 10.1.0.3 br0" in routes
    assert "rule 100: not from 10.1.0.0/24 lookup 100" in routes
    assert "rule 200: fwmark 0x10/0xff blackhole" in routes
    assert text("rules") == routes  # the section's other name
    fdb = " ".join(text("fdb").split())
    assert "vx0 vxlan device - 4096 local 192.0.2.1 dev eth1 port 4789 learning,proxy" in fdb
    assert "vx0 02:42:0a:00:00:05 192.0.2.7 4096 permanent,self" in fdb


def test_show_and_the_tui_render_a_section_alike():
    """One renderer: `show SECTION` prints the TUI tab's rows, cell for cell."""
    from netdiag.render import section

    for name, (section_id, _) in SECTIONS.items():
        (table,) = tables(hub(), name, RenderContext({22: "web"}))
        assert table.rows == tuple(row.cells for row in section(section_id).rows(
            hub(), RenderContext({22: "web"}))), name


def test_ipvs_service_without_servers_and_embedded_dns():
    assert "(no real servers)" in text("ipvs")
    assert "127.0.0.11:53 → udp 41234, tcp 37415" in text("dns")


def test_show_from_file_prints_one_block_per_namespace(tmp_path, capsys):
    path = tmp_path / "snap.json"
    save(snapshot(), path)
    assert main(["show", "links", "--from", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "== hub (named) ==" in out and "== web (docker) ==" in out  # names, not numbers
    assert main(["show", "links", "--from", str(path), "-v"]) == 0
    verbose, _ = capsys.readouterr()
    assert "== hub (named, inode 11) ==" in verbose and "== web (docker, inode 22) ==" in verbose
    assert "eth0@web" in out and "h0@hub" in out  # peers by their namespace's label
    assert err == ""  # the IPVS and sockets gaps do not concern links


def test_overview_and_gap_notes(tmp_path, capsys):
    path = tmp_path / "snap.json"
    save(snapshot(), path)
    assert main(["show", "--from", str(path), "--ns", "web"]) == 0
    out, err = capsys.readouterr()
    assert "== hub" not in out and "== web" in out
    assert "-- interfaces" in out and "h0@hub" in out
    assert "kernel has no IPVS" in err and "sock_diag failed" in err


def test_json_section(tmp_path, capsys):
    path = tmp_path / "snap.json"
    save(snapshot(), path)
    assert main(["show", "fdb", "--json", "--from", str(path), "--ns", "hub"]) == 0
    (block,) = json.loads(capsys.readouterr().out)
    assert block["namespace"]["label"] == "hub"
    assert block["fdb"][0]["dst"] == "192.0.2.7"


def test_unknown_namespace_in_file_is_one_line_error(tmp_path, capsys):
    path = tmp_path / "snap.json"
    save(snapshot(), path)
    assert main(["show", "--from", str(path), "--ns", "nothere"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_unknown_section_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["show", "bogus"])
    assert info.value.code == 2
