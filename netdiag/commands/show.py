"""`netdiag show [SECTION] [--ns REF] [--json] [--from FILE]`: a namespace's state as tables.

One block per namespace, headed by its label, with one aligned table per section (links,
addrs, routes, rules, neigh, fdb, vxlan, ipvs, firewall, dns, sockets, sysctls); without a
section, a compact overview: each interface with its state and addresses, the default routes
and how many records each other section holds. Rendering is pure (`tables(state, section)`)
so it is tested from hand-built snapshots; reading live or from a file is common.py's job.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from netdiag import netns
from netdiag.commands.common import (
    add_namespace_args,
    get_snapshot,
    print_json,
    print_table,
    timed_out,
)
from netdiag.errors import EXIT_COLLECT, NotFound
from netdiag.model import Gap, Link, NamespaceState, Snapshot
from netdiag.model.serialize import to_data

TABLE_NAMES = {255: "local", 254: "main", 253: "default"}


@dataclass(frozen=True, slots=True)
class Table:
    title: str  # "" when the block has a single table
    headers: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]


# --- one function per section ---------------------------------------------------------------


def _links(state: NamespaceState) -> list[Table]:
    rows = tuple((link.index, link.name, link.kind, link.mtu, _state(link), link.mac,
                  link.master, _wiring(link)) for link in state.links)
    return [Table("", ("IDX", "NAME", "KIND", "MTU", "STATE", "MAC", "MASTER", "LINK"), rows)]


def _state(link: Link) -> str:
    if not link.admin_up:
        return "down"
    return "up" if link.oper_state in ("up", "unknown") else f"up/{link.oper_state}"


def _wiring(link: Link) -> str:
    """Where a link leads: veth peer, lower device, vxlan id, bridge/macvlan details."""
    if link.kind == "veth":
        if link.peer_name and link.peer_namespace is not None:
            return f"peer {link.peer_name} in ns {link.peer_namespace}"
        if link.parent:
            return f"peer {link.parent}"
        if link.parent_index:
            return f"peer if{link.parent_index}" + (
                f" (netnsid {link.parent_netnsid})" if link.parent_netnsid is not None else "")
        return ""
    if link.vxlan:
        return f"vni {link.vxlan.vni}" + (f" dev {link.vxlan.dev}" if link.vxlan.dev else "")
    if link.macvlan:
        return f"{link.macvlan.mode} on {link.parent or f'if{link.parent_index}'}"
    if link.bridge:
        return "stp" if link.bridge.stp else ""
    if link.parent:
        return f"on {link.parent}"
    return ""


def _addresses(state: NamespaceState) -> list[Table]:
    rows = tuple((a.ifname, f"ipv{a.family}", a.cidr, a.scope, a.broadcast, a.label)
                 for a in state.addresses)
    return [Table("", ("IFACE", "FAMILY", "ADDRESS", "SCOPE", "BROADCAST", "LABEL"), rows)]


def _table_name(table: int) -> str:
    return TABLE_NAMES.get(table, str(table))


def _routes(state: NamespaceState) -> list[Table]:
    rows = tuple((_table_name(r.table), r.type, r.dst, _via(r), r.dev, r.protocol, r.scope,
                  r.metric or "", r.prefsrc, r.mtu or "") for r in state.routes)
    return [Table("", ("TABLE", "TYPE", "DESTINATION", "VIA", "DEV", "PROTO", "SCOPE", "METRIC",
                       "SRC", "MTU"), rows)]


def _via(route) -> str:
    if route.nexthops:  # multipath: every hop with its device, as the DEV column holds one
        return "; ".join(f"{gw or '-'} dev {dev}" if dev else gw for gw, dev in route.nexthops)
    return route.gateway


def _rules(state: NamespaceState) -> list[Table]:
    rows = tuple((r.priority, f"ipv{r.family}", _selector(r),
                  f"lookup {_table_name(r.table)}" if r.action == "lookup" else r.action)
                 for r in state.rules)
    return [Table("", ("PRIO", "FAMILY", "SELECTOR", "ACTION"), rows)]


def _selector(rule) -> str:
    parts = ["not"] if rule.invert else []
    parts.append(f"from {rule.src or 'all'}")
    if rule.dst:
        parts.append(f"to {rule.dst}")
    if rule.iif:
        parts.append(f"iif {rule.iif}")
    if rule.oif:
        parts.append(f"oif {rule.oif}")
    if rule.fwmark or rule.fwmask:
        parts.append(f"fwmark {rule.fwmark:#x}" + (f"/{rule.fwmask:#x}" if rule.fwmask else ""))
    return " ".join(parts)


def _neighbours(state: NamespaceState) -> list[Table]:
    rows = tuple((n.ifname, n.address, n.mac, ",".join(n.state),
                  " ".join(f for f, on in (("router", n.router), ("proxy", n.proxy)) if on))
                 for n in state.neighbours)
    return [Table("", ("IFACE", "ADDRESS", "MAC", "STATE", "FLAGS"), rows)]


def _fdb(state: NamespaceState) -> list[Table]:
    rows = tuple((e.ifname, e.mac, e.master, e.dst, e.vni or "", e.port or "", e.vlan or "",
                  e.state, ",".join(e.flags)) for e in state.fdb)
    return [Table("", ("IFACE", "MAC", "MASTER", "DST", "VNI", "PORT", "VLAN", "STATE", "FLAGS"),
                  rows)]


def _vxlan(state: NamespaceState) -> list[Table]:
    remote_entries: dict[str, int] = {}
    for entry in state.fdb:
        if entry.dst:
            remote_entries[entry.ifname] = remote_entries.get(entry.ifname, 0) + 1
    rows = []
    for link in state.links:
        if link.vxlan is None:
            continue
        v = link.vxlan
        options = " ".join(name for name, on in (("learning", v.learning), ("proxy", v.proxy),
                                                 ("l2miss", v.l2miss), ("l3miss", v.l3miss))
                           if on)
        remote = v.remote or (f"group {v.group}" if v.group else "")
        rows.append((link.name, v.vni, v.local, remote, v.dstport, v.dev, link.mtu, link.master,
                     options, remote_entries.get(link.name, 0)))
    return [Table("", ("NAME", "VNI", "LOCAL", "REMOTE", "DSTPORT", "DEV", "MTU", "MASTER",
                       "OPTIONS", "REMOTE FDB"), tuple(rows))]


def _ipvs(state: NamespaceState) -> list[Table]:
    rows = []
    for service in state.ipvs:
        name = (f"fwmark {service.fwmark}" if service.fwmark
                else f"{service.protocol} {service.address}:{service.port}")
        if not service.destinations:
            rows.append((name, service.scheduler, "(no real servers)", "", "", "", ""))
        for d in service.destinations:
            rows.append((name, service.scheduler, f"{d.address}:{d.port}", d.weight, d.forward,
                         d.active, d.inactive))
    return [Table("", ("SERVICE", "SCHED", "REAL SERVER", "WEIGHT", "FORWARD", "ACTIVE",
                       "INACTIVE"), tuple(rows))]


def _firewall(state: NamespaceState) -> list[Table]:
    fw = state.firewall
    chains = tuple((c.backend, f"ipv{c.family}", c.table, c.name, c.policy or "-")
                   for c in fw.iptables_chains)
    rules = tuple((r.backend, f"ipv{r.family}", r.table, r.chain, r.position,
                   r.text or _rule_text(r)) for r in fw.iptables_rules)
    nft = tuple((r.family, r.table, r.chain, r.handle, r.text) for r in fw.nft_rules)
    return [Table("iptables chains", ("BACKEND", "FAMILY", "TABLE", "CHAIN", "POLICY"), chains),
            Table("iptables rules", ("BACKEND", "FAMILY", "TABLE", "CHAIN", "#", "RULE"), rules),
            Table("nftables rules", ("FAMILY", "TABLE", "CHAIN", "HANDLE", "RULE"), nft)]


def _rule_text(rule) -> str:
    matches = " ".join(("! " if m.negated else "") + f"--{m.option} {m.value}"
                       for m in rule.matches)
    target = f"{'-g' if rule.goto else '-j'} {rule.target}" if rule.target else ""
    options = " ".join(f"--{k} {v}" for k, v in rule.target_options)
    return " ".join(part for part in (matches, target, options) if part)


def _dns(state: NamespaceState) -> list[Table]:
    dns = state.dns
    embedded = ""
    if dns.embedded:
        embedded = (f"{dns.embedded.address}:53 → udp {dns.embedded.udp_port or '-'}, "
                    f"tcp {dns.embedded.tcp_port or '-'}")
    rows = (("source", dns.source or "(none found)"),
            ("nameservers", " ".join(dns.nameservers)),
            ("search", " ".join(dns.search)),
            ("options", " ".join(dns.options)),
            ("embedded", embedded))
    return [Table("", ("KEY", "VALUE"), rows)]


def _sockets(state: NamespaceState) -> list[Table]:
    rows = tuple((s.protocol, f"ipv{s.family}", s.address, s.port, s.state,
                  f"{s.process}[{s.pid}]" if s.pid else s.process) for s in state.sockets)
    return [Table("", ("PROTO", "FAMILY", "ADDRESS", "PORT", "STATE", "PROCESS"), rows)]


def _sysctls(state: NamespaceState) -> list[Table]:
    return [Table("", ("NAME", "VALUE"), tuple((s.name, s.value) for s in state.sysctls))]


# Section name → (renderer, the NamespaceState fields it shows, for --json).
SECTIONS: dict[str, tuple[Callable[[NamespaceState], list[Table]], tuple[str, ...]]] = {
    "links": (_links, ("links",)),
    "addrs": (_addresses, ("addresses",)),
    "routes": (_routes, ("routes",)),
    "rules": (_rules, ("rules",)),
    "neigh": (_neighbours, ("neighbours",)),
    "fdb": (_fdb, ("fdb",)),
    "vxlan": (_vxlan, ("links", "fdb")),
    "ipvs": (_ipvs, ("ipvs",)),
    "firewall": (_firewall, ("firewall",)),
    "dns": (_dns, ("dns",)),
    "sockets": (_sockets, ("sockets",)),
    "sysctls": (_sysctls, ("sysctls",)),
}


def _overview(state: NamespaceState) -> list[Table]:
    addresses: dict[str, list[str]] = {}
    for a in state.addresses:
        addresses.setdefault(a.ifname, []).append(a.cidr)
    interfaces = tuple((link.name, link.kind, _state(link), link.mtu,
                        " ".join(addresses.get(link.name, ())), _wiring(link))
                       for link in state.links)
    defaults = tuple((f"ipv{r.family}", _table_name(r.table), _via(r), r.dev)
                     for r in state.routes if r.dst == "default")
    fw = state.firewall
    counts = ((("routes", len(state.routes)), ("rules", len(state.rules)),
               ("neighbours", len(state.neighbours)), ("fdb", len(state.fdb)),
               ("iptables rules", len(fw.iptables_rules)), ("nft rules", len(fw.nft_rules)),
               ("ipvs services", len(state.ipvs)), ("listening sockets", len(state.sockets))))
    return [Table("interfaces", ("NAME", "KIND", "STATE", "MTU", "ADDRESSES", "LINK"),
                  interfaces),
            Table("default routes", ("FAMILY", "TABLE", "VIA", "DEV"), defaults),
            Table("counts", ("WHAT", "COUNT"), counts)]


def tables(state: NamespaceState, section: str | None) -> list[Table]:
    """The tables `netdiag show` prints for one namespace (overview when section is None)."""
    if section is None:
        return _overview(state)
    return SECTIONS[section][0](state)


def heading(state: NamespaceState) -> str:
    ref = state.ref
    return f"== {ref.display} ({ref.kind.value}, inode {ref.id}) =="


# --- the command ------------------------------------------------------------------------------


def register(subparsers) -> None:
    parser = subparsers.add_parser("show", help="show namespaces' network state as tables")
    parser.add_argument("section", nargs="?", choices=tuple(SECTIONS), metavar="SECTION",
                        help=f"one of: {', '.join(SECTIONS)} (default: an overview)")
    add_namespace_args(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    snapshot = get_snapshot(args)
    states = _chosen(snapshot, args.ns) if args.from_file else list(snapshot.namespaces)
    if args.json:
        print_json(as_json(states, args.section))
    else:
        render(states, args.section)
    _report_gaps(snapshot, {state.ref.id for state in states}, args.section)
    return EXIT_COLLECT if timed_out(snapshot) else 0


def _chosen(snapshot: Snapshot, refs: Sequence[str]) -> list[NamespaceState]:
    """With --from, --ns picks namespaces from the file (by name, label, path or inode:N)."""
    if not refs:
        return list(snapshot.namespaces)
    known = [state.ref for state in snapshot.namespaces]
    wanted = {ref.id for ref in netns.resolve_all(refs, known)}
    states = [state for state in snapshot.namespaces if state.ref.id in wanted]
    if not states:
        raise NotFound(f"the snapshot holds none of {', '.join(refs)}")
    return states


def render(states: Sequence[NamespaceState], section: str | None) -> None:
    for number, state in enumerate(states):
        if number:
            print()
        print(heading(state))
        for table in tables(state, section):
            if table.title:
                print(f"-- {table.title}")
            if table.rows:
                print_table(table.headers, table.rows)
            else:
                print("(none)")


def as_json(states: Sequence[NamespaceState], section: str | None) -> list[dict]:
    if section is None:
        return [to_data(state) for state in states]
    fields = SECTIONS[section][1]
    return [{"namespace": to_data(state.ref), **{f: to_data(getattr(state, f)) for f in fields}}
            for state in states]


def _relevant(gap: Gap, section: str | None) -> bool:
    """Whether a gap concerns what is shown: a section's own collectors, or the namespace."""
    if section is None or gap.collector == "namespace":
        return True
    collectors = set(SECTIONS[section][1]) | ({"nftables"} if section == "firewall" else set())
    return gap.collector in collectors


def _report_gaps(snapshot: Snapshot, shown: set[int], section: str | None) -> None:
    # On stderr, so that the tables on stdout stay clean for grep and pipes.
    labels = {state.ref.id: state.ref.display for state in snapshot.namespaces}
    for gap in snapshot.gaps:
        if not _relevant(gap, section):
            continue
        if gap.namespace is None or gap.namespace in shown:
            where = f" in {labels.get(gap.namespace, gap.namespace)}" if gap.namespace else ""
            print(f"netdiag: note: {gap.collector}{where} not read ({gap.kind}): {gap.message}",
                  file=sys.stderr)
