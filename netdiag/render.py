"""netdiag's one renderer of a namespace's state: sections of rows of plain text.

`netdiag show SECTION` prints a section as a table and the TUI shows each as a tab, from the
same functions, so the two never describe one object differently. Every Section has its title,
its columns, the Evidence kinds it can highlight and a pure function that turns one namespace
into Rows, given the snapshot's RenderContext: veth peers in other namespaces are named by their
namespace's label, and the Docker section shows what the engines say about the namespace. A
Row carries, besides its cells, the keys a rule's Evidence may use for the same object (a link
name, a route's dst, an iptables "table/chain/position"), so that selecting a finding can mark
its evidence without knowing anything about the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from netdiag.model import Link, NamespaceState, Route, Snapshot
from netdiag.model.docker import DockerContainer, DockerEngine, DockerNetwork, DockerPort
from netdiag.model.index import TABLE_NAMES
from netdiag.model.intent import bridge_name, overlay_namespaces


@dataclass(frozen=True, slots=True)
class Row:
    cells: tuple[str, ...]
    keys: frozenset[str] = frozenset()

    def matches(self, words: tuple[str, ...]) -> bool:
        """True when every filter word occurs in some cell (case-insensitive)."""
        text = " ".join(self.cells).lower()
        return all(word in text for word in words)


Names = Mapping[int, str]  # namespace id → human label, for veth peers in other namespaces


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a section needs beside the namespace itself: the other namespaces' labels, and
    the intent of the Docker engines of the snapshot."""

    names: Names = field(default_factory=dict)
    docker: tuple[DockerEngine, ...] = ()
    overlays: Mapping[int, tuple[DockerEngine, DockerNetwork]] = field(default_factory=dict)
    snapshot: Snapshot | None = None  # the whole: a connection's other end may be anywhere


def context(snapshot: Snapshot) -> RenderContext:
    return RenderContext({ns.ref.id: ns.ref.display for ns in snapshot.namespaces}, snapshot.docker,
                   overlay_namespaces(snapshot), snapshot)


RowFunction = Callable[[NamespaceState, RenderContext], list[Row]]


@dataclass(frozen=True, slots=True)
class Section:
    id: str
    title: str
    columns: tuple[str, ...]
    evidence_kinds: tuple[str, ...]
    rows: RowFunction


def _row(*cells: object, keys: tuple[str, ...] = ()) -> Row:
    return Row(tuple("" if c is None else str(c) for c in cells), frozenset(k for k in keys if k))


def link_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    rows = []
    for link in ns.links:
        state = ("UP" if link.admin_up else "DOWN") + f"/{link.oper_state}"
        rows.append(_row(link.name, link.kind, link.mtu, state, peer_text(ns, link, ctx.names),
                         link.master, keys=(link.name, str(link.index))))
    return rows


def peer_text(ns: NamespaceState, link: Link, names: Names) -> str:
    """Where a link leads: `PEER@NAMESPACE` (the namespace's label) for a veth into another
    namespace, its peer or lower device otherwise."""
    peer = link.peer_name or (f"if{link.parent_index}" if link.kind == "veth" and
                              link.parent_index else "")
    if peer and link.peer_namespace is not None and link.peer_namespace != ns.ref.id:
        return f"{peer}@{names.get(link.peer_namespace, f'inode:{link.peer_namespace}')}"
    if link.parent and link.kind != "veth":
        return link.parent
    return peer


def address_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    return [_row(a.ifname, a.cidr, f"ipv{a.family}", a.scope, a.label,
                 keys=(a.cidr, a.address, f"{a.ifname}/{a.cidr}"))
            for a in ns.addresses]


def _route_via(route: Route) -> str:
    if route.nexthops:
        return ", ".join(f"{gw or '-'} {dev}" for gw, dev in route.nexthops)
    return route.gateway


def route_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    rows = []
    for r in sorted(ns.routes, key=lambda r: (r.table != 254, r.table, r.family, r.dst)):
        table = TABLE_NAMES.get(r.table, str(r.table))
        dst = r.dst if r.type == "unicast" else f"{r.type} {r.dst}"
        rows.append(_row(table, dst, _route_via(r), r.dev, r.protocol, r.scope,
                         r.metric or "", r.mtu or "",
                         keys=(r.dst, f"{table}/{r.dst}", f"{r.table}/{r.dst}")))
    for rule in ns.rules:
        what = " ".join(part for part in (
            f"from {rule.src}" if rule.src else "", f"to {rule.dst}" if rule.dst else "",
            f"iif {rule.iif}" if rule.iif else "", f"oif {rule.oif}" if rule.oif else "",
            f"fwmark {rule.fwmark:#x}" + (f"/{rule.fwmask:#x}" if rule.fwmask else "")
            if rule.fwmark else "") if part) or "all"
        target = TABLE_NAMES.get(rule.table, str(rule.table)) if rule.action == "lookup" else ""
        rows.append(_row("rule", f"{rule.priority}: {'not ' if rule.invert else ''}{what}",
                         f"{rule.action} {target}".strip(), "", "", "", "", "",
                         keys=(f"rule/{rule.priority}", str(rule.priority))))
    return rows


def neighbour_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    return [_row(n.ifname, n.address, n.mac, ",".join(n.state),
                 " ".join(f for f, on in (("router", n.router), ("proxy", n.proxy)) if on),
                 keys=(n.address, f"{n.ifname}/{n.address}"))
            for n in ns.neighbours]


def fdb_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    rows = []
    for link in ns.links:
        if link.vxlan is None:
            continue
        v = link.vxlan
        remote = v.remote or v.group or "-"
        flags = ",".join(f for f, on in (("learning", v.learning), ("proxy", v.proxy),
                                         ("l2miss", v.l2miss), ("l3miss", v.l3miss)) if on)
        local = f"local {v.local} " if v.local else ""
        rows.append(_row(link.name, "vxlan device", remote, v.vni,
                         f"{local}dev {v.dev or '-'} port {v.dstport}", flags,
                         keys=(link.name,)))
    for e in ns.fdb:
        rows.append(_row(e.ifname, e.mac, e.dst, e.vni or "", e.master or "",
                         ",".join((e.state, *e.flags)).strip(","),
                         keys=(e.mac, f"{e.ifname}/{e.mac}", f"{e.ifname}/{e.mac}/{e.dst}")))
    return rows


def ipvs_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    rows = []
    for s in ns.ipvs:
        service = f"fwmark {s.fwmark}" if s.fwmark else f"{s.protocol} {s.address}:{s.port}"
        keys = (f"fwmark:{s.fwmark}" if s.fwmark else f"{s.protocol}/{s.address}:{s.port}",
                f"{s.address}:{s.port}" if s.address else "")
        if not s.destinations:
            rows.append(_row(service, s.scheduler, "(no real servers)", "", "", "", keys=keys))
        for d in s.destinations:
            rows.append(_row(service, s.scheduler, f"{d.address}:{d.port}", d.weight, d.forward,
                             f"{d.active}/{d.inactive}", keys=keys))
    return rows


def firewall_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    fw = ns.firewall
    rows = []
    for c in fw.iptables_chains:
        source = f"{c.backend}/ipv{c.family}"
        if c.policy:
            rows.append(_row(source, c.table, c.name, "", f"policy {c.policy}",
                             keys=(f"{c.table}/{c.name}",)))
        for r in fw.iptables_rules:
            if (r.backend, r.family, r.table, r.chain) == (c.backend, c.family, c.table, c.name):
                rows.append(_row(source, r.table, r.chain, r.position, r.text or r.target,
                                 keys=(f"{r.table}/{r.chain}/{r.position}",)))
    for c in fw.nft_chains:
        bound = f" devices {{ {', '.join(c.devices)} }}" if c.devices else ""
        hook = f"type {c.type} hook {c.hook}{bound} priority {c.priority}" if c.hook else ""
        policy = f"policy {c.policy}" if c.policy else ""
        rows.append(_row(f"nft/{c.family}", c.table, c.name, "", f"{hook} {policy}".strip(),
                         keys=(f"{c.family}/{c.table}/{c.name}", f"{c.table}/{c.name}")))
        for r in fw.nft_rules:
            if (r.family, r.table, r.chain) == (c.family, c.table, c.name):
                rows.append(_row(f"nft/{r.family}", r.table, r.chain, r.handle, r.text,
                                 keys=(f"{r.family}/{r.table}/{r.chain}/{r.handle}",
                                       f"{r.table}/{r.chain}/{r.handle}")))
    for s in fw.ipsets:  # one row a set: a blocklist may hold a hundred thousand members
        shown = [m.value + (" nomatch" if m.nomatch else "") for m in s.members[:_SET_SHOWN]]
        more = len(s.members) - len(shown)
        rows.append(_row(f"ipset/ipv{s.family}" if s.family else "ipset", s.type, s.name,
                         len(s.members), ", ".join(shown) + (f", … ({more} more)" if more else ""),
                         keys=(f"ipset/{s.name}", s.name)))
    return rows


_SET_SHOWN = 8  # members of an ipset `show` lists


def dns_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    d = ns.dns
    rows = [_row("resolv.conf", d.source or "(none found)", keys=("resolv.conf", d.source))]
    rows += [_row("nameserver", s, keys=(s, "nameserver")) for s in d.nameservers]
    if d.search:
        rows.append(_row("search", " ".join(d.search), keys=("search",)))
    if d.options:
        rows.append(_row("options", " ".join(d.options), keys=("options",)))
    if d.embedded:
        e = d.embedded
        rows.append(_row("embedded DNS", f"{e.address}:53 → udp {e.udp_port or '-'}, "
                                          f"tcp {e.tcp_port or '-'}",
                         keys=(e.address, "embedded")))
    return rows


def socket_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    rows = []
    for s in sorted(ns.sockets, key=lambda s: (s.protocol, s.port, s.address)):
        owner = f"{s.process}[{s.pid}]" if s.pid else s.process
        rows.append(_row(s.protocol, s.address, s.port, s.state, owner,
                         keys=(f"{s.protocol}/{s.address}:{s.port}", f"{s.address}:{s.port}",
                               f"{s.protocol}/{s.port}")))
    return rows


CONNECTION_COLUMNS = ("Proto", "Local", "Peer", "State", "Process", "Other end")


def connection_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    """`show connections`: each connection with its process and the other end named
    (netdiag/model/connections.py); without the snapshot, the other end is left blank."""
    from netdiag.collect.conntrack import endpoint  # conntrack -L's ADDRESS:PORT, [V6]:PORT
    from netdiag.model.connections import peer_finder

    finder = peer_finder(ctx.snapshot) if ctx.snapshot is not None else None
    rows = []
    for c in ns.connections:
        owner = f"{c.process}[{c.pid}]" if c.pid else c.process
        other = finder.peer_end(ns, c).text if finder else ""
        rows.append(_row(c.protocol, endpoint(c.address, c.port), endpoint(c.peer, c.peer_port),
                         c.state, owner, other,
                         keys=(f"{c.protocol}/{c.address}:{c.port}", f"{c.peer}:{c.peer_port}")))
    return rows


def sysctl_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    return [_row(s.name, s.value, keys=(s.name,)) for s in sorted(ns.sysctls, key=lambda s: s.name)]


def docker_rows(ns: NamespaceState, ctx: RenderContext) -> list[Row]:
    """Docker's intent for this namespace: in an engine's own namespace the engine, its
    networks and the containers that have no namespace of their own (stopped, failed, or on
    the host's); in a container's namespace the containers in it and their endpoints; in an
    overlay's namespace its network and peers."""
    rows = []
    for engine in ctx.docker:
        if engine.namespace == ns.ref.id:
            rows.append(_row("engine", engine.name, _swarm_text(engine), "", engine.url,
                             f"{engine.runtime.capitalize()} {engine.version}",
                             keys=(engine.url,)))
            rows += [_network_row(network) for network in engine.networks]
            rows += [_container_row(c) for c in engine.containers
                     if not c.running or c.network_mode == "host"]
        for container in engine.containers:
            if container.running and container.netns == ns.ref.id and \
                    container.network_mode != "host":
                rows.append(_container_row(container))
                rows += [_row("  endpoint", e.aliases[0] if e.aliases else "", "", e.network,
                              f"{e.ip}/{e.prefixlen}" if e.ip else "",
                              " ".join(part for part in (e.mac, f"gw {e.gateway}" if e.gateway
                                                         else "") if part),
                              keys=(e.network, e.network_id, e.ip))
                         for e in container.endpoints]
    if ns.ref.id in ctx.overlays:
        engine, network = ctx.overlays[ns.ref.id]
        rows.append(_network_row(network))
        rows += [_row("  peer", p.name, "self" if p.address == engine.swarm.node_addr else "",
                      network.name, p.address, "", keys=(p.address,)) for p in network.peers]
    return rows


def _swarm_text(engine: DockerEngine) -> str:
    swarm = engine.swarm
    if swarm.state != "active":
        return f"swarm {swarm.state}"
    return f"swarm {swarm.role} {swarm.node_addr}".rstrip()


def _subnets_text(network: DockerNetwork) -> str:
    return " ".join(f"{i.subnet} gw {i.gateway}" if i.gateway else i.subnet
                    for i in network.ipam)


def _ports_text(ports: tuple[DockerPort, ...]) -> str:
    return " ".join(f"{p.host_ip + ':' if p.host_ip else ''}{p.host_port or '*'}"
                    f"->{p.container_port}/{p.protocol}" for p in ports)


def _network_row(network: DockerNetwork) -> Row:
    flags = [flag for flag, on in (("internal", network.internal),
                                   ("attachable", network.attachable),
                                   ("ingress", network.ingress)) if on]
    if network.driver == "bridge":
        flags.insert(0, f"bridge {bridge_name(network)}")
    return _row("network", network.name, network.driver, network.scope, _subnets_text(network),
                " ".join(flags), keys=(network.name, network.id))


def _container_row(container: DockerContainer) -> Row:
    state = container.state if container.state != "exited" else \
        f"exited ({container.exit_code})"
    ports = _ports_text(container.ports)
    detail = "; ".join(part for part in (ports, container.error) if part)
    return _row("container", container.name, state, container.network_mode, "", detail,
                keys=(container.name, container.id))


SECTIONS: tuple[Section, ...] = (
    Section("links", "Links", ("Name", "Kind", "MTU", "State", "Peer/parent", "Master"),
            ("link",), link_rows),
    Section("addresses", "Addrs", ("Interface", "Address", "Family", "Scope", "Label"),
            ("address",), address_rows),
    Section("routes", "Routes", ("Table", "Destination", "Via", "Dev", "Proto", "Scope",
                                 "Metric", "MTU"), ("route", "rule"), route_rows),
    Section("neighbours", "Neigh", ("Interface", "Address", "MAC", "State", "Flags"),
            ("neighbour",), neighbour_rows),
    Section("fdb", "FDB/VXLAN", ("Device", "MAC", "Dst", "VNI", "Master", "State"),
            ("fdb", "vxlan"), fdb_rows),
    Section("ipvs", "IPVS", ("Service", "Sched", "Real server", "Weight", "Fwd", "Act/Inact"),
            ("ipvs",), ipvs_rows),
    Section("firewall", "Firewall", ("Source", "Table", "Chain", "#", "Rule"),
            ("firewall", "iptables", "nft"), firewall_rows),
    Section("dns", "DNS", ("Setting", "Value"), ("dns",), dns_rows),
    Section("sockets", "Sockets", ("Proto", "Address", "Port", "State", "Process"),
            ("socket",), socket_rows),
    Section("sysctls", "Sysctl", ("Name", "Value"), ("sysctl",), sysctl_rows),
    Section("connections", "Conns", CONNECTION_COLUMNS, ("connection",), connection_rows),
    Section("docker", "Docker", ("Object", "Name", "State", "Network", "Address", "Detail"),
            ("docker",), docker_rows),
)


def section(section_id: str) -> Section:
    return next(found for found in SECTIONS if found.id == section_id)


def section_for_evidence_kind(kind: str) -> Section | None:
    for found in SECTIONS:
        if kind in found.evidence_kinds:
            return found
    return None


# --- Docker's intent: per engine, not per namespace (`show docker`) ----------------------------


@dataclass(frozen=True, slots=True)
class DockerTable:
    title: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]


def docker_heading(engine: DockerEngine) -> str:
    return f"Docker {engine.version or '?'} at {engine.url} ({engine.name or 'unnamed'}; " \
        f"{_swarm_text(engine)})"


def docker_tables(engine: DockerEngine, labels: Mapping[str, str]) -> list[DockerTable]:
    """Daemon configuration, networks, containers and services of one engine; `labels`
    names the namespaces of sandbox paths (sandbox key → label)."""
    daemon = engine.daemon
    settings: list[tuple[str, object]] = [
                ("iptables", daemon.iptables), ("ip-forward", daemon.ip_forward),
                ("ip-masq", daemon.ip_masq), ("icc", daemon.icc),
                ("userland-proxy", daemon.userland_proxy), ("live-restore", daemon.live_restore),
                ("ip6tables", "-" if daemon.ip6tables is None else daemon.ip6tables),
                ("firewall-backend", daemon.firewall_backend or "-"),
                ("bip", daemon.bip or "-"), ("mtu", daemon.mtu or "-"),
                ("default-address-pools", " ".join(daemon.default_address_pools) or "-"),
                ("read from", ", ".join(daemon.sources) or "-")]
    settings = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in settings]
    networks = [_row(n.name, n.driver, n.scope,
                     _subnets_text(n),
                     ("internal " if n.internal else "") + ("attachable" if n.attachable else ""),
                     " ".join(f"{p.name}={p.address}" for p in n.peers),
                     keys=(n.name, n.id)) for n in engine.networks]
    containers = []
    for c in engine.containers:
        state = c.state if c.state != "exited" else f"exited ({c.exit_code})"
        endpoints = " ".join(f"{e.network}={e.ip}" if e.ip else e.network for e in c.endpoints)
        ports = _ports_text(c.ports)
        where = labels.get(c.sandbox_key, "") if c.running else ""
        if c.shares:
            shared = engine.container(c.shares)
            where = f"shares {shared.name if shared else c.shares[:12]}"
        containers.append(_row(c.name, state, c.network_mode, endpoints, ports,
                               where, c.error, keys=(c.name, c.id)))
    tables = [DockerTable("daemon", ("Setting", "Value"),
                          tuple(_row(k, v) for k, v in settings)),
              DockerTable("networks", ("Name", "Driver", "Scope", "Subnets", "Flags", "Peers"),
                          tuple(networks)),
              DockerTable("containers", ("Name", "State", "Network mode", "Endpoints",
                                         "Ports", "Namespace", "Error"), tuple(containers))]
    if engine.services:
        tables.append(DockerTable("services", ("Name", "Mode", "Replicas", "Ports", "VIPs"), tuple(
            _row(s.name, s.mode, s.replicas if s.mode == "replicated" else "-",
                 " ".join(f"{p.host_port}->{p.container_port}/{p.protocol}" for p in s.ports),
                 " ".join(address for _, address in s.vips)) for s in engine.services)))
    return tables
