"""The Snapshot: everything netdiag read about a host, as frozen, slotted records.

A Snapshot is the only currency of the project: collectors produce it, rules read it, the TUI
shows it, and it is saved to and loaded from JSON (see serialize.py). Every record is immutable
and every collection a tuple, so a Snapshot can be shared between threads and compared with ==.

Addresses are kept as strings in their canonical text form ("10.0.0.1", "fe80::1"), networks as
"address/prefixlen"; the ipaddress module is used where arithmetic is needed, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from netdiag.model.docker import DockerEngine
from netdiag.model.fleet import Machine
from netdiag.model.lab import LabIntent

# 2: the `docker` section (each engine's intent). Version-1 files still load (without it).
# 3: nftables named sets (Firewall.nft_sets) and the `labs` section (each lab's intent).
#    Older files still load (without them).
# 4: fleet snapshots: `machines` (the nodes merged, model/fleet.py) and NamespaceRef.machine.
#    Older files still load (a single machine's).
# 6: NftTable.origin (iptables-nft's tables told from native ones by the collector) and
#    nftables maps (NftSet.map). Older files still load (origin "": judged by the table's name).
# 7: Address.flags (dadfailed). Older files still load (no flags).
# 8: the runtime of each engine in the `docker` section (DockerEngine.runtime, "docker" or
#    "podman"), a network's embedded DNS (DockerNetwork.dns) and a container's pod
#    (DockerContainer.pod), and NsKind "podman". Older files still load (every engine Docker).
# 9: each namespace's connections (NamespaceState.connections: TCP in any state but listen,
#    connected UDP) and what was counted but not kept (connections_omitted); the devices a
#    netdev chain is bound to (NftChain.devices). Older files still load (no connections
#    read; a netdev chain's devices unknown).
# 10: a lab's published ports (LabIntent.published, from the drivers' store), which the
#    expected flows promise. Older files still load (no published ports: no such flows).
# 11: each namespace's ipsets (Firewall.ipsets), which iptables' `-m set` rules match. Older
#    files still load (no sets: a rule that matches one ends a path in `unknown`).
SCHEMA_VERSION = 11  # 5: Gap.needs
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


class NsKind(str, Enum):
    """How a namespace was found."""

    HOST = "host"  # the namespace of pid 1
    NAMED = "named"  # /run/netns/NAME (ip netns)
    DOCKER = "docker"  # a Docker sandbox (container or Docker's own network namespace)
    PODMAN = "podman"  # a Podman container's or pod's namespace
    LAB = "lab"  # a netdiag lab node
    PID = "pid"  # only known through a process


@dataclass(frozen=True, slots=True)
class NamespaceRef:
    """A stable reference to one network namespace.

    `id` is the inode of its nsfs file and is unique on a running host. `path` can be opened
    and entered. `label` is the best human name: container, lab node, namespace name or process.
    """

    id: int
    kind: NsKind
    path: str
    label: str = ""
    name: str = ""  # /run/netns name, Docker sandbox file name
    container: str = ""  # Docker container name
    docker_networks: tuple[str, ...] = ()
    lab: str = ""  # lab name and node, for namespaces a netdiag lab made
    node: str = ""
    pids: tuple[int, ...] = ()  # a few processes living in it (sorted, capped)
    process: str = ""  # name of the first such process
    machine: str = ""  # in a fleet snapshot: the node it was read on (its label says it too)

    @property
    def display(self) -> str:
        return self.label or self.name or f"inode:{self.id}"


@dataclass(frozen=True, slots=True)
class BridgeInfo:
    stp: bool = False
    vlan_filtering: bool = False
    forward_delay: int = 0
    ageing_time: int = 0


@dataclass(frozen=True, slots=True)
class BridgePortInfo:
    state: str = ""  # forwarding, blocking, disabled...
    hairpin: bool = False
    learning: bool = True
    flood: bool = True
    isolated: bool = False


@dataclass(frozen=True, slots=True)
class VxlanInfo:
    vni: int
    local: str = ""
    remote: str = ""  # unicast remote, if any
    group: str = ""  # multicast group, if any
    dstport: int = 4789
    dev: str = ""  # underlying device name (in the same namespace)
    dev_index: int = 0
    learning: bool = True
    proxy: bool = False
    l2miss: bool = False
    l3miss: bool = False
    ttl: int = 0


@dataclass(frozen=True, slots=True)
class MacvlanInfo:
    mode: str  # bridge, private, vepa, passthru, source


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    kind: str  # veth, bridge, vxlan, macvlan, loopback, device (a plain NIC), tun...
    mtu: int
    admin_up: bool
    oper_state: str  # up, down, unknown, lowerlayerdown, dormant, notpresent
    mac: str = ""
    flags: tuple[str, ...] = ()  # UP, BROADCAST, LOWER_UP...
    master: str = ""  # bridge (or bond) this link is enslaved to
    master_index: int = 0
    parent_index: int = 0  # IFLA_LINK: veth peer index, macvlan/vxlan lower device
    parent_netnsid: int | None = None  # IFLA_LINK_NETNSID, when parent_index is in another ns
    parent: str = ""  # resolved name of the lower device (macvlan parent) in the same ns
    peer_namespace: int | None = None  # veth: id of the namespace holding the peer, resolved
    peer_name: str = ""  # veth: name of the peer, resolved
    bridge: BridgeInfo | None = None
    port: BridgePortInfo | None = None
    vxlan: VxlanInfo | None = None
    macvlan: MacvlanInfo | None = None
    alias: str = ""

    @property
    def up(self) -> bool:
        return self.admin_up and self.oper_state in ("up", "unknown")


@dataclass(frozen=True, slots=True)
class Address:
    ifindex: int
    ifname: str
    family: int  # 4 or 6
    address: str
    prefixlen: int
    scope: str = "global"
    broadcast: str = ""
    label: str = ""
    flags: tuple[str, ...] = ()  # of the IFA_F_* flags, those rules read: dadfailed

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True, slots=True)
class Route:
    family: int
    dst: str  # "a.b.c.d/len", or "default"
    table: int = 254
    type: str = "unicast"  # unicast, local, broadcast, blackhole, unreachable, prohibit...
    protocol: str = ""  # kernel, boot, static, dhcp...
    scope: str = "global"  # global, link, host
    dev: str = ""
    gateway: str = ""
    prefsrc: str = ""
    metric: int = 0
    mtu: int = 0  # the route's MTU metric, 0 when unset
    nexthops: tuple[tuple[str, str], ...] = ()  # multipath (gateway, dev)


@dataclass(frozen=True, slots=True)
class PolicyRule:
    family: int
    priority: int
    action: str = "lookup"  # lookup, blackhole, unreachable, prohibit, goto
    table: int = 0
    src: str = ""
    dst: str = ""
    iif: str = ""
    oif: str = ""
    fwmark: int = 0
    fwmask: int = 0
    invert: bool = False


@dataclass(frozen=True, slots=True)
class Neighbour:
    ifname: str
    family: int
    address: str
    mac: str = ""
    state: tuple[str, ...] = ()  # permanent, reachable, stale, noarp, failed...
    router: bool = False
    proxy: bool = False


@dataclass(frozen=True, slots=True)
class FdbEntry:
    ifname: str  # the port (or vxlan device) the entry is on
    mac: str
    master: str = ""  # the bridge, for entries in the bridge's table
    dst: str = ""  # vxlan remote VTEP
    vni: int = 0
    port: int = 0
    vlan: int = 0
    state: str = ""  # permanent, static, dynamic (reachable/stale), noarp
    flags: tuple[str, ...] = ()  # self, master, extern_learn, router...


@dataclass(frozen=True, slots=True)
class IpvsDestination:
    address: str
    port: int
    weight: int
    forward: str = "masq"  # masq, tunnel, route
    active: int = 0
    inactive: int = 0


@dataclass(frozen=True, slots=True)
class IpvsService:
    protocol: str  # tcp, udp, sctp or "" for fwmark services
    address: str = ""
    port: int = 0
    fwmark: int = 0
    scheduler: str = "rr"
    destinations: tuple[IpvsDestination, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """One iptables match option, long-named: -p tcp is Match("protocol", "tcp")."""

    option: str  # protocol, source, destination, in-interface, out-interface, dport, ctstate...
    value: str
    negated: bool = False
    module: str = ""  # the -m module that provides it ("tcp", "conntrack", "addrtype")


@dataclass(frozen=True, slots=True)
class IptablesChain:
    backend: str  # nft or legacy
    family: int  # 4 or 6
    table: str
    name: str
    policy: str = ""  # ACCEPT/DROP for built-in chains, "" for user chains
    packets: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class IptablesRule:
    backend: str
    family: int
    table: str
    chain: str
    position: int  # 1-based, as iptables -L --line-numbers shows
    matches: tuple[Match, ...]
    target: str = ""  # ACCEPT, DROP, DNAT, a user chain, or "" (no -j)
    target_options: tuple[tuple[str, str], ...] = ()  # (("to-destination", "172.18.0.2:80"),)
    goto: bool = False  # -g instead of -j
    packets: int = 0
    bytes: int = 0
    text: str = ""  # the rule as iptables-save prints it, without counters

    def match(self, option: str) -> Match | None:
        for m in self.matches:
            if m.option == option:
                return m
        return None

    def target_option(self, name: str) -> str:
        for key, value in self.target_options:
            if key == name:
                return value
        return ""


@dataclass(frozen=True, slots=True)
class NftTable:
    family: str  # ip, ip6, inet, arp, bridge, netdev
    name: str
    handle: int = 0
    # "iptables-nft": written by iptables-nft, its rules are the iptables records (backend
    # nft); "nft": native, its chains and rules are the Nft* records; "": not told (a file
    # older than schema 6, where a table named like an iptables table counts as iptables-nft's)
    origin: str = ""


@dataclass(frozen=True, slots=True)
class NftChain:
    family: str
    table: str
    name: str
    handle: int = 0
    type: str = ""  # filter, nat, route; "" for regular chains
    hook: str = ""
    priority: int = 0
    policy: str = ""
    devices: tuple[str, ...] = ()  # those a `netdev` (or `inet` ingress) chain is bound to


@dataclass(frozen=True, slots=True)
class NftRule:
    family: str
    table: str
    chain: str
    handle: int
    text: str  # human-readable form of the rule
    expr: str = ""  # the rule's expressions as nft -j prints them, as a JSON string
    comment: str = ""


@dataclass(frozen=True, slots=True)
class NftSet:
    """A named set or map of a native nftables table (`@name` in its rules)."""

    family: str
    table: str
    name: str
    type: str  # "ipv4_addr", "inet_service"; a concatenation as "ipv4_addr . inet_service"
    elements: str = ""  # the elements as nft -j prints them, as a JSON string
    flags: tuple[str, ...] = ()  # interval, timeout, dynamic, constant
    map: str = ""  # a map's data type ("verdict", "ipv4_addr . inet_service"); "" for a set


@dataclass(frozen=True, slots=True)
class IpsetMember:
    """One element of an ipset, written as `ipset list` writes it: its parts in the order of
    the set type's name, joined by commas ("192.0.2.0/24", "192.0.2.2,tcp:80",
    "10.0.0.0/8,eth0", "22"; a member set's name in a list:set)."""

    value: str
    nomatch: bool = False  # an exception carved out of a wider element (hash:net types)


@dataclass(frozen=True, slots=True)
class Ipset:
    """A set of the kernel's ipset (`-m set --match-set NAME` in iptables rules of both
    backends and families). Elements' timeouts, counters and comments are not kept."""

    name: str
    type: str  # hash:net, hash:ip,port, hash:net,iface, bitmap:port, list:set...
    family: int = 0  # 4, 6, or 0: both (bitmap:port; a list:set made without a family)
    members: tuple[IpsetMember, ...] = ()


@dataclass(frozen=True, slots=True)
class Firewall:
    iptables_chains: tuple[IptablesChain, ...] = ()
    iptables_rules: tuple[IptablesRule, ...] = ()
    nft_tables: tuple[NftTable, ...] = ()
    nft_chains: tuple[NftChain, ...] = ()
    nft_rules: tuple[NftRule, ...] = ()
    nft_sets: tuple[NftSet, ...] = ()
    ipsets: tuple[Ipset, ...] = ()  # read only where an iptables rule names a set

    def chain(self, table: str, name: str, family: int = 4) -> IptablesChain | None:
        for c in self.iptables_chains:
            if c.table == table and c.name == name and c.family == family:
                return c
        return None

    def rules(self, table: str, chain: str, family: int = 4) -> tuple[IptablesRule, ...]:
        return tuple(r for r in self.iptables_rules
                     if r.table == table and r.chain == chain and r.family == family)


@dataclass(frozen=True, slots=True)
class EmbeddedDns:
    """Docker's embedded resolver as the namespace's NAT rules show it (127.0.0.11:53 → port)."""

    address: str = "127.0.0.11"
    udp_port: int = 0
    tcp_port: int = 0


@dataclass(frozen=True, slots=True)
class DnsConfig:
    source: str = ""  # the resolv.conf path that was read ("" if none was found)
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    embedded: EmbeddedDns | None = None


@dataclass(frozen=True, slots=True)
class Socket:
    protocol: str  # tcp or udp
    family: int
    address: str
    port: int
    state: str = "listen"  # listen for tcp, unconn for udp
    inode: int = 0
    uid: int = 0
    pid: int | None = None
    process: str = ""
    # IPV6_V6ONLY of an IPv6 socket: bound to :: it takes IPv6 only, not IPv4 too (Docker
    # 28's docker-proxy on [::]). Snapshots before schema 11 did not read it (False).
    v6only: bool = False


@dataclass(frozen=True, slots=True)
class Connection:
    """A socket with a peer, as `ss -tuna` lists it: TCP in any state but listen (time-wait
    ones only counted, in NamespaceState.connections_omitted), or a connected UDP socket."""

    protocol: str  # tcp or udp
    family: int
    address: str  # the local end, as the kernel holds it (an IPv6 socket's ::ffff:a.b.c.d)
    port: int
    peer: str
    peer_port: int
    state: str = "established"  # ss's names in lower case (syn-sent...); "connected" for udp
    inode: int = 0  # 0: no process holds it (a request not yet accepted, an orphan closing)
    uid: int = 0
    pid: int | None = None
    process: str = ""


@dataclass(frozen=True, slots=True)
class Sysctl:
    name: str  # dotted: net.ipv4.ip_forward, net.ipv4.conf.eth0.rp_filter
    value: str


@dataclass(frozen=True, slots=True)
class Conntrack:
    count: int
    max: int


@dataclass(frozen=True, slots=True)
class XfrmState:
    src: str
    dst: str
    proto: str  # esp, ah, comp
    spi: int
    mode: str = "transport"
    reqid: int = 0
    mark: int = 0
    algorithms: tuple[str, ...] = ()  # names only; keys are never stored


@dataclass(frozen=True, slots=True)
class XfrmPolicy:
    src: str
    dst: str
    direction: str  # in, out, fwd
    action: str = "allow"
    proto: int = 0
    mark: int = 0
    templates: tuple[str, ...] = ()  # "esp src->dst reqid N mode transport"


@dataclass(frozen=True, slots=True)
class NamespaceState:
    """Everything read from one namespace."""

    ref: NamespaceRef
    links: tuple[Link, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[PolicyRule, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    ipvs: tuple[IpvsService, ...] = ()
    firewall: Firewall = field(default_factory=Firewall)
    dns: DnsConfig = field(default_factory=DnsConfig)
    sockets: tuple[Socket, ...] = ()  # listening (tcp) and unconnected (udp) only
    # Bounded (collect/sockets.py's CONNECTIONS_KEPT): what was left out, and every
    # time-wait socket, is counted per state in connections_omitted ("time-wait", 5000).
    connections: tuple[Connection, ...] = ()
    connections_omitted: tuple[tuple[str, int], ...] = ()
    sysctls: tuple[Sysctl, ...] = ()
    conntrack: Conntrack | None = None
    xfrm_states: tuple[XfrmState, ...] = ()
    xfrm_policies: tuple[XfrmPolicy, ...] = ()

    def link(self, name: str) -> Link | None:
        for link in self.links:
            if link.name == name:
                return link
        return None

    def link_by_index(self, index: int) -> Link | None:
        for link in self.links:
            if link.index == index:
                return link
        return None

    def sysctl(self, name: str) -> str | None:
        for s in self.sysctls:
            if s.name == name:
                return s.value
        return None


@dataclass(frozen=True, slots=True)
class Gap:
    """Something netdiag could not read, and why. Shown to the user; never aborts a run."""

    collector: str  # links, firewall, ipvs, discovery...
    kind: str  # gone, permission, feature-missing, timeout, error
    message: str
    namespace: int | None = None
    needs: str = ""  # permission gaps of root in a container: the capability it lacked


@dataclass(frozen=True, slots=True)
class HostInfo:
    hostname: str = ""
    kernel: str = ""
    netdiag_version: str = ""


@dataclass(frozen=True, slots=True)
class PathMtuProbe:
    """A DF ping sweep from one namespace to an address: the largest packet that got through."""

    namespace: int  # where the pings were sent from
    destination: str
    mtu: int = 0  # largest IPv4 packet size that was answered; 0 when nothing was
    answered: bool = False
    limited_by: str = ""  # the router that reported "fragmentation needed", if one did
    attempts: tuple[tuple[int, str], ...] = ()  # (packet size, outcome) in the order sent


@dataclass(frozen=True, slots=True)
class PortProbe:
    """A TCP connect from a namespace to an address and port (a published port or its target)."""

    namespace: int
    address: str
    port: int
    protocol: str = "tcp"
    open: bool = False
    error: str = ""  # refused, timeout, unreachable...
    purpose: str = ""  # "published" (the host port) or "target" (the DNAT destination)


@dataclass(frozen=True, slots=True)
class DnsProbe:
    """One DNS query from a namespace to one of its configured nameservers."""

    namespace: int
    server: str
    query: str = ""
    answered: bool = False
    rcode: str = ""  # NOERROR, NXDOMAIN, SERVFAIL... when answered
    error: str = ""  # timeout, unreachable... when not


@dataclass(frozen=True, slots=True)
class Probes:
    """What the opt-in active probes (`check --probe`) measured; rules use it as evidence."""

    path_mtu: tuple[PathMtuProbe, ...] = ()
    ports: tuple[PortProbe, ...] = ()
    dns: tuple[DnsProbe, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    created_at: str  # ISO 8601, UTC
    host: HostInfo
    namespaces: tuple[NamespaceState, ...]
    gaps: tuple[Gap, ...] = ()
    schema_version: int = SCHEMA_VERSION
    probes: Probes | None = None  # None: nothing was probed (the default: probing is opt-in)
    docker: tuple[DockerEngine, ...] = ()  # each Docker or Podman engine's intent (model/docker.py)
    labs: tuple[LabIntent, ...] = ()  # each netdiag lab's intent (model/lab.py)
    machines: tuple[Machine, ...] = ()  # a fleet snapshot's nodes (model/fleet.py); else ()

    def namespace(self, ns_id: int) -> NamespaceState | None:
        for ns in self.namespaces:
            if ns.ref.id == ns_id:
                return ns
        return None
