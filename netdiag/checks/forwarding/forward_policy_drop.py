"""forward-policy-drop: the FORWARD chain drops by default and nothing lets a bridge through.

What it finds
    A namespace whose filter FORWARD policy is DROP (iptables, either backend, or an
    nftables forward hook with policy drop) where the traffic of some bridge with running
    ports falls through to that policy: out of the bridge, into it, or between its own ports
    (bridged frames pass FORWARD when bridge-nf-call-iptables is 1). A walk through the
    chains decides it, following jumps and RETURNs with the packet's in- and out-interface:
    any ACCEPT the packet can reach counts as a path (even one limited to established
    connections or to published ports), and so does a DROP that names the bridge — that is
    somebody's deliberate policy (Docker's isolation and `--internal` networks). So both
    Docker layouts — classic DOCKER-ISOLATION chains and modern DOCKER-FORWARD — are healthy.
    The bridges of netavark's networks (Podman 4 and 5) are left to podman-forward-dropped, which
    knows what Podman meant for them and how netavark restores its rules.

    IPv6 alike, in ip6tables: a bridge that routes IPv6 (it has a global IPv6 address) whose
    IPv6 traffic falls through to ip6tables' FORWARD policy DROP — Docker sets that policy
    too when it turns IPv6 forwarding on for an IPv6 network, and a KVM bridge beside it
    loses its IPv6 while its IPv4 works. (Between the bridge's ports when
    bridge-nf-call-ip6tables is on.) A bridge without a global IPv6 address routes no IPv6
    and is not judged for it. A native forward chain with policy drop of an `inet` or `ip6`
    table is run on IPv6 probes too for a bridge that routes IPv6: a chain that lets the
    bridge's IPv4 through but not its IPv6 (`meta nfproto ipv4`, `ip saddr` matches) is named
    for IPv6 alone.

    Docker versions: 20.10's chains (DOCKER-USER, DOCKER-ISOLATION-STAGE-1/2, DOCKER) and
    28's (DOCKER-FORWARD, DOCKER-BRIDGE, DOCKER-CT, DOCKER-INTERNAL, the isolation stages),
    and 28.0.0's `-m set --match-set docker-ext-bridges-v4 dst` (the subnets of Docker's
    networks): a set match counts as one that may apply, unless the set was read and holds
    none of the bridge's addresses (its subnets and the routes through it) at the end the
    match looks at — 28.0.0's accept of established traffic into Docker's networks is no
    way into a KVM bridge.
    Docker 29's nftables tables have policy accept on their own forward hook: they settle
    nothing here, and a DROP policy elsewhere (iptables FORWARD, a native forward chain)
    is judged as above. A native forward chain with policy drop is also run in the flow
    model on TCP, UDP and ICMP probes, new and established, so that an accept reached
    through wildcards (`iifname "br-*"`), sets or verdict maps counts, not just a rule
    whose text names the bridge.

Why it matters
    Docker sets the FORWARD policy to DROP when it has to turn forwarding on. Every bridge
    Docker does not manage — a KVM/libvirt bridge, a LXC bridge, a lab — silently loses its
    traffic: VMs cannot reach the network or each other. It is the classic "Docker broke my
    bridge" report.

Example
    ND502 forward-policy-drop  host: br0
      traffic out of br0 and into br0 and between br0's ports falls through to the FORWARD
      policy DROP (iptables nft backend): nothing accepts it
        · filter FORWARD policy DROP (nft backend)
        · traffic out of br0: no ACCEPT on its way, reaches the policy
      repair (unsafe): Accept br0's traffic in DOCKER-USER
        $ iptables -t filter -I DOCKER-USER 1 -i br0 -j ACCEPT
        $ iptables -t filter -I DOCKER-USER 1 -o br0 -j ACCEPT

Repair
    Accept the bridge's traffic where Docker leaves room for it — the DOCKER-USER chain —
    or in FORWARD when Docker is not installed. Unsafe: it opens forwarding for that bridge.
    With Docker, `"ip-forward-no-drop": true` in daemon.json (engine 28+) avoids the DROP.
"""

from __future__ import annotations

from collections.abc import Iterator

from netdiag.checks import netavark
from netdiag.checks.forward_walk import OTHER, Direction, WalkEnd, filter_chains, walk
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import AddIptablesRule, ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.flows import ipsets, nftables
from netdiag.flows.netfilter import PacketPlace
from netdiag.flows.packet import Packet
from netdiag.model import IptablesRule, Link, NamespaceState, Snapshot, intent
from netdiag.model.index import SnapshotIndex, index, network_interval

RULE = Rule(code="ND502", name="forward-policy-drop", severity=Severity.WARNING,
            summary="FORWARD policy DROP with no accept path for a bridge's traffic")

def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    topo = index(snapshot)
    podman = _podman_bridges(snapshot)
    for state in snapshot.namespaces:
        bridges = [link for link in state.links if link.kind == "bridge"
                   and (state.ref.id, link.name) not in podman
                   and any(p.up for p in topo.bridge_ports(state.ref.id, link.name))]
        if not bridges:
            continue
        for backend in _drop_backends(state, 4):
            for bridge in bridges:
                yield from _check_iptables(topo, state, backend, bridge)
        for backend in _drop_backends(state, 6):
            for bridge in (b for b in bridges if _routes_ipv6(state, b)):
                yield from _check_iptables(topo, state, backend, bridge, 6)
        for chain in _nft_drop_chains(state):
            for family in _NFT_FAMILIES[chain.family]:
                for bridge in (b for b in bridges if family == 4 or _routes_ipv6(state, b)):
                    yield from _check_nft(state, chain, bridge, family)


def _podman_bridges(snapshot: Snapshot) -> set[tuple[int, str]]:
    """(namespace, bridge) of netavark's networks (either firewall): podman-forward-dropped
    speaks for them, with netavark's own remedy, and one cause is reported once."""
    return {(host.ref.id, intent.bridge_name(network))
            for engine, host in netavark.all_engines(snapshot) for network in engine.networks}


_BRIDGE_NF = {4: "net.bridge.bridge-nf-call-iptables", 6: "net.bridge.bridge-nf-call-ip6tables"}
_TOOL = {4: "iptables", 6: "ip6tables"}


def _routes_ipv6(state: NamespaceState, bridge: Link) -> bool:
    """Whether the bridge has a global IPv6 address: the host routes IPv6 for its ports."""
    return any(a.ifname == bridge.name and a.family == 6 and a.scope == "global"
               for a in state.addresses)


def _directions(topo: SnapshotIndex, state: NamespaceState, bridge: Link, family: int = 4
                ) -> list[Direction]:
    name = bridge.name
    found = [Direction(f"out of {name}", name, OTHER), Direction(f"into {name}", OTHER, name)]
    ports = topo.bridge_ports(state.ref.id, name)
    # br_netfilter is built in and on in every new namespace here unless turned off.
    if len(ports) > 1 and state.sysctl(_BRIDGE_NF[family]) != "0":
        found.append(Direction(f"between {name}'s ports", name, name))
    return found


# --- iptables ---------------------------------------------------------------------------------


def _drop_backends(state: NamespaceState, family: int) -> list[str]:
    return sorted({c.backend for c in state.firewall.iptables_chains
                   if c.family == family and c.table == "filter" and c.name == "FORWARD"
                   and c.policy == "DROP"})


def _check_iptables(topo: SnapshotIndex, state: NamespaceState, backend: str, bridge: Link,
                    family: int = 4) -> Iterator[Finding]:
    chains = filter_chains(state, backend, family)
    blocked: list[tuple[Direction, WalkEnd]] = []
    for direction in _directions(topo, state, bridge, family):
        end = walk(_without_foreign_sets(chains, state, bridge, direction, family), "FORWARD",
                   direction, bridge.name)
        if end.outcome in ("policy", "drop"):
            blocked.append((direction, end))
    if not blocked:
        return
    ns_id = state.ref.id
    tool = _TOOL[family]
    evidence = [Evidence(f"filter FORWARD policy DROP ({tool} {backend} backend)"
                         if family == 6 else f"filter FORWARD policy DROP ({backend} backend)",
                         ns_id, "firewall", "filter/FORWARD")]
    for direction, end in blocked:
        where = (f"dropped by {end.rule.text or end.rule.chain}" if end.rule
                 else "reaches the policy")
        key = f"filter/{end.rule.chain}/{end.rule.position}" if end.rule else "filter/FORWARD"
        evidence.append(Evidence(f"traffic {direction.name}: no ACCEPT on its way, {where}",
                                 ns_id, "firewall", key))
    chain = "DOCKER-USER" if "DOCKER-USER" in chains else "FORWARD"
    args = []
    if any(d.iif == bridge.name for d, _ in blocked):
        args.append(("-i", bridge.name, "-j", "ACCEPT"))
    if any(d.oif == bridge.name and d.iif != bridge.name for d, _ in blocked):
        args.append(("-o", bridge.name, "-j", "ACCEPT"))
    steps = tuple(AddIptablesRule(ns_id, "filter", chain, a, position=1, family=family)
                  for a in args)
    names = " and ".join(d.name for d, _ in blocked)
    ipv6 = " IPv6" if family == 6 else ""
    what = "IPv6 traffic" if family == 6 else "traffic"
    yield RULE.finding(state.ref, bridge.name if family == 4 else f"{bridge.name} (IPv6)",
                       f"{what} {names} falls through to the FORWARD policy DROP ({tool} "
                       f"{backend} backend): nothing accepts it",
                       evidence=evidence,
                       repair=Repair(f"Accept {bridge.name}'s{ipv6} traffic in {chain}",
                                     Safety.UNSAFE, steps))


def _without_foreign_sets(chains: dict[str, list[IptablesRule]], state: NamespaceState,
                          bridge: Link, direction: Direction, family: int
                          ) -> dict[str, list[IptablesRule]]:
    """The chains without the rules whose `--match-set` cannot hold the direction's packets:
    the set was read, and at an end that is the bridge's (`dst` into it, `src` out of it) its
    members hold none of the bridge's addresses."""
    if not state.firewall.ipsets:
        return chains
    ranges = _bridge_ranges(state, bridge, family)
    ends = {end for end, here in ((True, direction.iif), (False, direction.oif))
            if here == bridge.name}
    sets = {s.name: s for s in state.firewall.ipsets}

    def foreign(rule: IptablesRule) -> bool:
        match = rule.match("match-set")
        if match is None or match.negated or match.value.split()[0] not in sets:
            return False
        name, _, flags = match.value.partition(" ")
        for dimension, flag in enumerate(flags.split(",")):
            held = ipsets.address_ranges(sets[name], dimension) \
                if (flag == "src") in ends else None
            if held is not None and not any(first <= high and low <= last
                                            for first, last in held for low, high in ranges):
                return True
        return False
    return {name: [rule for rule in rules if not foreign(rule)] for name, rules in chains.items()}


def _bridge_ranges(state: NamespaceState, bridge: Link, family: int) -> list[tuple[int, int]]:
    """The addresses behind the bridge: its subnets and the routes through it."""
    cidrs = [a.cidr for a in state.addresses if a.ifname == bridge.name and a.family == family]
    cidrs += [("::/0" if family == 6 else "0.0.0.0/0") if r.dst == "default" else r.dst
              for r in state.routes if r.dev == bridge.name and r.family == family]
    return [network_interval(cidr)[1:3] for cidr in cidrs]


# --- native nftables --------------------------------------------------------------------------


def _nft_drop_chains(state: NamespaceState):
    xtables = {(c.table, c.name) for c in state.firewall.iptables_chains if c.backend == "nft"}
    return [c for c in state.firewall.nft_chains
            if c.hook == "forward" and c.policy == "drop" and c.family in _NFT_FAMILIES
            and (c.table, c.name) not in xtables]


_NFT_FAMILIES = {"ip": (4,), "ip6": (6,), "inet": (4, 6)}  # the packets a chain sees
_FAR = {4: ("192.0.2.1", "198.51.100.1"), 6: ("2001:db8::1", "3fff::1")}  # documentation


def _nft_may_accept(state: NamespaceState, chain, bridge: Link, family: int = 4) -> bool:
    """Whether the chain, run by the flow model, accepts a probe of `family` out of or into
    the bridge: TCP, UDP or ICMP, new or established — rules that name the bridge through a
    wildcard, a set or a verdict map count as a path like those that spell it out."""
    fallback, far = _FAR[family]
    near = next((a.cidr.split("/")[0] for a in state.addresses
                 if a.ifname == bridge.name and a.family == family
                 and (family == 4 or a.scope == "global")), fallback)
    local = frozenset(a.cidr.split("/")[0] for a in state.addresses)
    tables = nftables.index_tables(state)
    for in_if, out_if, src, dst in ((bridge.name, OTHER, near, far),
                                    (OTHER, bridge.name, far, near)):
        where = PacketPlace(in_if=in_if, out_if=out_if, local=local)
        for proto in ("tcp", "udp", "icmp"):
            port = 0 if proto == "icmp" else 9
            for ctstate in ("NEW", "ESTABLISHED"):
                packet = Packet(src, dst, proto, 40000 if port else 0, port, ctstate=ctstate)
                result = nftables.run_chain(state, tables, chain, "FORWARD", packet, where)
                if result.verdict == nftables.ACCEPT:
                    return True
    return False


def _check_nft(state: NamespaceState, chain, bridge: Link, family: int = 4
               ) -> Iterator[Finding]:
    quoted = f'"{bridge.name}"'
    mentions = [r for r in state.firewall.nft_rules
                if r.family == chain.family and r.table == chain.table
                and (quoted in r.text or f" {bridge.name} " in f" {r.text} ")
                and not _other_family_only(r.text, family)]
    if mentions or _nft_may_accept(state, chain, bridge, family):
        return
    ns_id = state.ref.id
    key = f"{chain.family} {chain.table}/{chain.name}"
    six = " IPv6" if family == 6 else ""
    whose = f"{bridge.name}'s IPv6 traffic: it is" if family == 6 else \
        f"{bridge.name}: its traffic is"
    yield RULE.finding(state.ref, bridge.name if family == 4 else f"{bridge.name} (IPv6)",
                       f"nftables chain {key} (hook forward, policy drop) has no rule for "
                       f"{whose} dropped",
                       evidence=(Evidence(f"nft chain {key}: hook forward policy drop", ns_id,
                                          "firewall", key),
                                 Evidence(f"no rule in table {chain.family} {chain.table} "
                                          f"mentions {bridge.name}"
                                          + (" for IPv6" if family == 6 else ""),
                                          ns_id, "firewall", key)),
                       repair=Repair(f"Accept {bridge.name}'s{six} traffic in {key}",
                                     Safety.MANUAL,
                                     (ManualStep(f"nft add rule {chain.family} {chain.table} "
                                                 f"{chain.name} iifname {quoted} accept; nft add "
                                                 f"rule {chain.family} {chain.table} {chain.name} "
                                                 f"oifname {quoted} accept", ns_id),)))


_FAMILY_WORDS = {4: (" ip6 ", "nfproto ipv6", " icmpv6 "), 6: (" ip ", "nfproto ipv4", " icmp ")}


def _other_family_only(text: str, family: int) -> bool:
    """Whether a rule that names the bridge matches only the other family's packets (then it
    settles nothing for this one): `meta nfproto ipv4 iifname "br0" accept` for IPv6."""
    return any(word in f" {text} " for word in _FAMILY_WORDS[family])
