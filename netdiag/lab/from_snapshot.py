"""Snapshot of a real host (or of a running lab) → a topology file that reproduces it.

What is recognised:
* bridge networks: a bridge with an IPv4 address whose ports are veths into other namespaces
  (the containers); its subnet, gateway and MTU, and its IPv6 subnet when the bridge also has
  a unique local IPv6 address (dual stack; a global IPv6 prefix is not kept: labs use ULA
  only). Docker's `docker_gwbridge` is left out: the overlay driver makes its own.
* overlay networks: a bridge holding a VXLAN device (one network per VNI), on the hosts that
  own the devices' local addresses; its subnet and MTU, and its IPv6 subnet as a bridge's.
* macvlan networks: the macvlan devices in other namespaces on one lower device of a host
  (one network per lower device and subnet); its parent (none when it is the driver's
  internal `dm-` veth), mode, subnet, gateway (the children's default route), MTU when it is
  not the parent's, and its IPv6 subnet from the children's unique local IPv6 addresses.
* containers: the namespaces on the far side of those veths, with their static addresses;
  published ports from the hosts' DNAT rules.
* hosts: the namespaces that hold the networks (a fleet snapshot's machines by their node
  names); several hosts get an underlay with the subnet and MTU of the link their VTEP address
  is on.
* faults: the anomalies the checks find, written as the inverse of their repairs (the current
  MTU where a repair would set another, the route a repair would delete...), plus processes
  listening in a host namespace (they compete with published ports).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from netdiag import private_files
from netdiag.checks import engine
from netdiag.findings import repair as steps
from netdiag.model import Link, NamespaceState, NsKind, Snapshot
from netdiag.model.index import InterfaceRef, SnapshotIndex, index

GATEWAY_BRIDGE = "docker_gwbridge"
INTERNAL_PARENT = "dm-"  # the macvlan driver's own parent of an internal network (parent.py)
DEFAULT_MTU = 1500


@dataclass
class _Found:
    """What the scan of the snapshot found, keyed by namespace id."""

    hosts: dict[int, str] = field(default_factory=dict)  # host namespace → node name
    containers: dict[int, str] = field(default_factory=dict)
    networks: list[dict] = field(default_factory=list)
    attachments: dict[int, list[dict]] = field(default_factory=lambda: defaultdict(list))
    overlay_host: dict[int, int] = field(default_factory=dict)  # overlay ns → host ns
    vtep_links: dict[int, str] = field(default_factory=dict)  # host ns → its underlay link
    taken: set[str] = field(default_factory=lambda: {"ul"})  # node names; "ul": the underlay


def _unique_name(raw: str, taken: set[str], fallback: str) -> str:
    """`raw` as a topology name (lowercase, 15 characters, starting with a letter), made
    unique against `taken`, which it joins."""
    base = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    base = (base if base[:1].isalpha() else f"n{base}")[:15].rstrip("-") or fallback
    name, n = base, 2
    while name in taken:
        suffix = f"-{n}"
        name, n = base[:15 - len(suffix)] + suffix, n + 1
    taken.add(name)
    return name


def _node_name(found: _Found, nodes: dict[int, str], state: NamespaceState) -> str:
    """The node name of a host or container namespace, given once per namespace (a fleet
    snapshot's machine is named after its node)."""
    ref = state.ref
    if ref.id not in nodes:
        machine = ref.machine if ref.kind is NsKind.HOST else ""
        raw = machine or ref.node or ref.container or ref.name or ref.label or f"ns{ref.id}"
        nodes[ref.id] = _unique_name(raw, found.taken, "node")
    return nodes[ref.id]


def _ipv4(state: NamespaceState, link: str, family: int = 4):
    for address in state.addresses:
        if address.ifname == link and address.family == family and address.scope == "global":
            return address
    return None


def _subnet6(state: NamespaceState, link: str, subnet: str) -> str:
    """The IPv6 subnet of a dual-stack bridge (a bridge network's, or an overlay's br0), when
    a lab can rebuild it: a unique local
    prefix from /64 to /120 with room for the IPv4 subnet's host numbers (the topology's
    subnet6); "" otherwise."""
    address = _ipv4(state, link, family=6)
    if address is None:
        return ""
    net6, net4 = ipaddress.ip_interface(address.cidr).network, ipaddress.ip_network(subnet)
    if not net6.subnet_of(ipaddress.ip_network("fd00::/8")) or not 64 <= net6.prefixlen <= 120 \
            or 128 - net6.prefixlen < 32 - net4.prefixlen:
        return ""
    return str(net6)


def _scan_bridges(idx: SnapshotIndex, found: _Found) -> None:
    for ns_id, state in idx.namespaces.items():
        for bridge in (link for link in state.links if link.kind == "bridge"):
            gateway = _ipv4(state, bridge.name)
            ports = idx.bridge_ports(ns_id, bridge.name)
            vxlans = [p for p in ports if p.kind == "vxlan" and p.vxlan]
            if gateway is None or bridge.name == GATEWAY_BRIDGE:
                continue
            if vxlans:
                _overlay(idx, found, ns_id, gateway, vxlans[0])
                continue
            members = [peer for p in ports if (peer := idx.peer(ns_id, p)) and peer[0] != ns_id]
            if members and not _is_switch(idx, members):
                _bridge(idx, found, ns_id, state, bridge, gateway, members)


def _scan_macvlans(idx: SnapshotIndex, found: _Found) -> None:
    """Macvlan children with an IPv4 address, grouped by their lower device in another
    namespace (a host's) and subnet: one network each."""
    children: dict[tuple, list[tuple[int, Link]]] = defaultdict(list)
    for ns_id, state in idx.namespaces.items():
        for link in (link for link in state.links if link.kind == "macvlan"):
            lower = idx.lower(ns_id, link)
            address = _ipv4(state, link.name)
            if lower is None or lower.namespace == ns_id or address is None or \
                    lower.namespace not in idx.namespaces:
                continue
            subnet = str(ipaddress.ip_interface(address.cidr).network)
            children[lower, subnet].append((ns_id, link))
    for (lower, subnet), members in sorted(children.items(), key=lambda item: (
            item[0][0].namespace, item[0][0].link, item[0][1])):
        _macvlan(idx, found, lower, subnet, members)


def _macvlan(idx: SnapshotIndex, found: _Found, lower, subnet: str, members) -> None:
    host = _node_name(found, found.hosts, idx.namespaces[lower.namespace])
    first_ns, first = members[0]
    child = idx.namespaces[first_ns]
    network = {"name": _network_name(found, f"macvlan{len(found.networks) + 1}"),
               "driver": "macvlan", "subnet": subnet}
    gateways = [r.gateway for ns_id, link in members for r in idx.namespaces[ns_id].routes
                if r.family == 4 and r.dst == "default" and r.dev == link.name and r.gateway]
    if gateways and ipaddress.ip_address(gateways[0]) in ipaddress.ip_network(subnet):
        network["gateway"] = gateways[0]
    network["hosts"] = [host]
    if not lower.link.startswith(INTERNAL_PARENT):
        network["parent"] = lower.link
    if first.macvlan is not None and first.macvlan.mode != "bridge":
        network["mode"] = first.macvlan.mode
    if subnet6 := _subnet6(child, first.name, subnet):
        network["subnet6"] = subnet6
    parent = idx.link(lower.namespace, lower.link)
    if parent is not None and first.mtu != parent.mtu:
        network["mtu"] = first.mtu
    if not gateways and not lower.link.startswith(INTERNAL_PARENT):
        network["internal"] = True  # the driver gives children of an internal network no route
    found.networks.append(network)
    for ns_id, link in members:
        _attach(idx, found, ns_id, link.name, network["name"])


def _is_switch(idx: SnapshotIndex, members) -> bool:
    """An underlay switch: what hangs off it are hosts (they have bridges themselves, VXLAN
    devices, or the lower devices of macvlans)."""
    return all(any(link.kind in ("bridge", "vxlan") or
                   idx.macvlans_on(InterfaceRef(ns, link.name))
                   for link in idx.namespaces[ns].links) for ns, _ in members)


def _bridge(idx: SnapshotIndex, found: _Found, ns_id: int, state, bridge, gateway, members) -> None:
    host = _node_name(found, found.hosts, state)
    name = _network_name(found, bridge.name)
    subnet = str(ipaddress.ip_interface(gateway.cidr).network)
    network = {"name": name, "driver": "bridge", "subnet": subnet, "gateway": gateway.address,
               "hosts": [host]}
    if subnet6 := _subnet6(state, bridge.name, subnet):
        network["subnet6"] = subnet6
    if bridge.mtu != DEFAULT_MTU:
        network["mtu"] = bridge.mtu
    found.networks.append(network)
    for peer_ns, link in members:
        _attach(idx, found, peer_ns, link.name, name)


def _overlay(idx: SnapshotIndex, found: _Found, ns_id: int, gateway, vxlan) -> None:
    host_ns = idx.underlay(ns_id, vxlan)
    if host_ns is None or host_ns == ns_id:
        return
    found.overlay_host[ns_id] = host_ns
    host = _node_name(found, found.hosts, idx.namespaces[host_ns])
    local = vxlan.vxlan.local
    for _, address in idx.owners_of(local) if local else ():
        found.vtep_links[host_ns] = address.ifname
    existing = next((n for n in found.networks if n.get("vni") == vxlan.vxlan.vni), None)
    if existing is None:
        subnet = str(ipaddress.ip_interface(gateway.cidr).network)
        existing = {"name": _network_name(found, f"overlay{len(found.networks) + 1}"),
                    "driver": "overlay", "subnet": subnet, "hosts": [], "vni": vxlan.vxlan.vni,
                    "mtu": vxlan.mtu}
        if subnet6 := _subnet6(idx.namespaces[ns_id], vxlan.master, subnet):
            existing["subnet6"] = subnet6  # br0 holds the IPv6 gateway of a dual-stack overlay
        found.networks.append(existing)
    if host not in existing["hosts"]:
        existing["hosts"].append(host)
    bridge_name = vxlan.master
    for port in idx.bridge_ports(ns_id, bridge_name):
        peer = idx.peer(ns_id, port)
        if peer and peer[0] != ns_id:
            _attach(idx, found, peer[0], peer[1].name, existing["name"], host)


def _network_name(found: _Found, raw: str) -> str:
    return _unique_name(raw, {n["name"] for n in found.networks}, "net")


def _attach(idx: SnapshotIndex, found: _Found, ns_id: int, link: str, network: str,
            host: str = "") -> None:
    state = idx.namespaces[ns_id]
    _node_name(found, found.containers, state)
    address = _ipv4(state, link)
    attachment = {"network": network, "link": link, "host": host}
    if address is not None:
        attachment["ip"] = address.address
    found.attachments[ns_id].append(attachment)


def _published(idx: SnapshotIndex, found: _Found) -> dict[int, list[str]]:
    """container namespace → ["HOST:CONTAINER/proto"] from the hosts' DNAT rules."""
    by_ip = {a["ip"]: ns for ns, atts in found.attachments.items() for a in atts if "ip" in a}
    published: dict[int, list[str]] = defaultdict(list)
    for host_ns in found.hosts:
        for rule in idx.namespaces[host_ns].firewall.iptables_rules:
            dport = rule.match("dport")
            target = rule.target_option("to-destination")
            proto = rule.match("protocol")
            if rule.table != "nat" or rule.target != "DNAT" or not dport or not target:
                continue
            ip, _, port = target.rpartition(":")
            if ip in by_ip and port.isdigit():
                entry = f"{dport.value}:{port}/{proto.value if proto else 'tcp'}"
                if entry not in published[by_ip[ip]]:
                    published[by_ip[ip]].append(entry)
    return published


def _faults(snapshot: Snapshot, found: _Found, idx: SnapshotIndex) -> list[dict]:
    """The anomalies the checks find, as faults (the inverse of their repairs)."""
    nodes = {**found.hosts, **found.containers}
    faults: list[dict] = []
    report = engine.run(snapshot)
    for finding in report.findings:
        for step in finding.repair.steps if finding.repair else ():
            fault = _fault_for(step, nodes, found, idx)
            if fault and fault not in faults:
                faults.append(fault)
    for host_ns, host in found.hosts.items():
        for sock in idx.namespaces[host_ns].sockets:
            if sock.address.startswith("127."):
                continue
            fault = {"kind": "listener", "node": host, "port": sock.port, "protocol": sock.protocol}
            if fault not in faults:
                faults.append(fault)
    return faults


def _fault_for(step, nodes: dict[int, str], found: _Found, idx: SnapshotIndex) -> dict | None:
    if isinstance(step, steps.DeleteFdbEntry) and step.namespace in found.overlay_host:
        host = nodes.get(found.overlay_host[step.namespace])
        network = _overlay_network_of(found, idx, step.namespace)
        if host and network:
            return {"kind": "fdb", "node": host, "network": network, "mac": step.mac,
                    "dst": step.dst}
        return None
    node = nodes.get(step.namespace)
    if node is None:
        return None
    if isinstance(step, steps.SetMtu):
        link = idx.link(step.namespace, step.link)
        return {"kind": "mtu", "node": node, "link": step.link, "mtu": link.mtu} if link else None
    if isinstance(step, steps.SetSysctl):
        value = idx.namespaces[step.namespace].sysctl(step.name)
        return {"kind": "sysctl", "node": node, "name": step.name, "value": value} \
            if value is not None else None
    if isinstance(step, steps.DeleteRoute):
        fault = {"kind": "route", "node": node, "dst": step.dst}
        if step.gateway:
            fault["via"] = step.gateway
        if step.dev:
            fault["dev"] = step.dev
        return fault
    if isinstance(step, steps.DeleteIptablesRule):
        return {"kind": "firewall", "node": node, "table": step.table, "chain": step.chain,
                "rule": shlex.join(step.args)}
    return None


def _overlay_network_of(found: _Found, idx: SnapshotIndex, overlay_ns: int) -> str | None:
    for link in idx.namespaces[overlay_ns].links:
        if link.vxlan:
            for network in found.networks:
                if network.get("vni") == link.vxlan.vni:
                    return network["name"]
    return None


def _underlay(idx: SnapshotIndex, found: _Found) -> dict | None:
    for host_ns, link_name in found.vtep_links.items():
        state = idx.namespaces[host_ns]
        address = _ipv4(state, link_name)
        link = idx.link(host_ns, link_name)
        if address and link:
            return {"subnet": str(ipaddress.ip_interface(address.cidr).network), "mtu": link.mtu}
    return None


def topology_from(snapshot: Snapshot, name: str | None = None) -> dict:
    """The topology (as plain data, ready for YAML) that reproduces `snapshot`."""
    idx = index(snapshot)
    found = _Found()
    _scan_bridges(idx, found)
    _scan_macvlans(idx, found)
    published = _published(idx, found)
    hosts_order = sorted(found.hosts.items(), key=lambda item: _host_order(idx, item[0]))
    lab_names = {state.ref.lab for state in snapshot.namespaces if state.ref.lab}
    topology: dict = {
        "name": name or _lab_name(lab_names),
        "description": f"reproduced from a snapshot of {snapshot.host.hostname or 'a host'} "
                       f"taken {snapshot.created_at}",
        "hosts": [{"name": host} for _, host in hosts_order],
    }
    underlay = _underlay(idx, found)
    if underlay and len(found.hosts) > 1:
        topology["underlay"] = underlay
    topology["networks"] = [{k: v for k, v in n.items() if k != "vni"} for n in found.networks]
    containers = []
    for ns_id, node in found.containers.items():
        container: dict = {"name": node}
        hosts = {a["host"] for a in found.attachments[ns_id] if a["host"]}
        if hosts:
            container["host"] = sorted(hosts)[0]
        else:
            network = next(n for n in found.networks
                           if n["name"] == found.attachments[ns_id][0]["network"])
            container["host"] = network["hosts"][0]
        container["networks"] = [{k: a[k] for k in ("network", "ip") if k in a}
                                 for a in found.attachments[ns_id]]
        if published.get(ns_id):
            container["publish"] = published[ns_id]
        containers.append(container)
    topology["containers"] = containers
    faults = _faults(snapshot, found, idx)
    if faults:
        topology["faults"] = faults
    return topology


def _host_order(idx: SnapshotIndex, ns_id: int) -> tuple:
    """Hosts in the order of their underlay addresses, so they get the same ones again."""
    for address in idx.namespaces[ns_id].addresses:
        if address.family == 4 and address.scope == "global" and address.ifname == "eth0":
            return (0, ipaddress.ip_address(address.address))
    return (1, ns_id)


def _lab_name(lab_names: set[str]) -> str:
    base = (sorted(lab_names)[0] if lab_names else "repro")[:12]
    return f"{base}-2" if lab_names else base


def write_topology(snapshot: Snapshot, path: str | Path, name: str | None = None) -> dict:
    topology = topology_from(snapshot, name)
    private_files.write(path, yaml.safe_dump(topology, sort_keys=False).encode())
    return topology
