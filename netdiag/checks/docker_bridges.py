"""Docker 29's nftables backend as the intent rules (docker-network-rules-missing,
docker-port-unpublished) read it: the rules of its `docker-bridges` tables (`table ip
docker-bridges`, and `table ip6 docker-bridges` where ip6tables is on) that a packet can
reach from a hook's base chain.

The layout, as moby writes it (moby/moby, daemon/libnetwork/drivers/bridge/internal/nftabler/
network.go and port.go; its generated documents in integration/network/bridge/nftablesdoc/):
the base chain `nat-POSTROUTING` jumps through the verdict maps `nat-postrouting-out-jumps` /
`-in-jumps` (keyed by the bridge's name) to `nat-postrouting-out__BRIDGE`, which holds
`oifname != BRIDGE ip saddr SUBNET masquerade`; `filter-FORWARD` jumps through
`filter-forward-in-jumps` to `filter-forward-in__BRIDGE`, which holds the ICC rule (`iifname
BRIDGE drop` when icc is off; on an internal network an unconditional `drop` after the drop of
every other interface); `nat-PREROUTING` and `nat-OUTPUT` jump to `nat-prerouting-and-output`,
which holds one rule per published port: `[iifname != BRIDGE] [ip daddr HOST_IP] tcp dport
HOST_PORT dnat to ADDRESS:PORT`. A rule counts only where a packet can reach it: a map element
or a jump that was cut leaves its chain's rules unreachable, and the rule counts as missing.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product

from netdiag.findings.finding import Evidence
from netdiag.model import NamespaceState, NftRule, intent
from netdiag.model.facts import WILDCARD_ADDRESSES


@dataclass(frozen=True, slots=True)
class NftDnat:
    """A DNAT rule that publishes a host port (Docker's table's, or any nftables table's)."""

    rule: NftRule
    protocol: str
    port: int
    host_ip: str  # the `ip daddr` it is limited to ("" for every address)
    to_address: str  # "" for the host itself (`redirect`)
    to_port: int

    def covers(self, host_ip: str) -> bool:
        """As Publish.covers (checks/dnat.py): a binding on every address is covered by
        any rule, one on an address by a rule without `daddr` or with that address."""
        return not self.host_ip or host_ip in WILDCARD_ADDRESSES or self.host_ip == host_ip

    @property
    def target(self) -> str:
        host = f"[{self.to_address}]" if ":" in self.to_address else self.to_address
        return f"{host}:{self.to_port}"

    def evidence(self, ns_id: int) -> Evidence:
        where = f"nft {self.rule.family} {self.rule.table} {self.rule.chain}"
        return Evidence(f"{where}: {self.rule.text or f'dnat to {self.target}'}", ns_id,
                        "firewall", where)


def table_family(family: int) -> str:
    return "ip" if family == 4 else "ip6"


def reachable(host: NamespaceState, family: int, hooks: tuple[str, ...]
              ) -> list[tuple[NftRule, list[dict]]]:
    """The rules of Docker's table of `family`, with their expressions, in the chains a packet
    can reach from the table's base chains at `hooks` (jumps, gotos and verdict maps)."""
    family_name, table = table_family(family), intent.NFTABLES_BACKEND_TABLE
    chains = {way.chain for way, *_ in _walk(host, family_name, table, hooks)}
    rules, _ = _table(host, family_name, table)
    return [pair for chain in sorted(chains) for pair in rules[chain]]


def table_dnats(host: NamespaceState, family: str, table: str
                ) -> list[tuple[NftDnat, frozenset[str]]]:
    """The host ports the DNATs of a table (`family` "ip", "ip6", "inet") publish, reached
    from its prerouting and output base chains, each read with what the rules on its way
    matched: a jump's or goto's own matches, a verdict map's key (kube-proxy's `ip daddr
    @nodeport-ips meta l4proto . th dport vmap @service-nodeports` to an endpoint chain whose
    `dnat` names no port). With each, the hooks ("prerouting", "output") that take it for
    any address: no rule on the way from there is bound to some destinations (Docker's,
    netavark's and Incus's `fib daddr type local`), so prerouting takes what is forwarded
    through the host too — a client's connection to a container's address (Debian's nat
    example, firewalld's forward-port) — and output what the host itself sends anywhere."""
    sets = host.firewall.nft_sets
    found: dict[NftDnat, set[str]] = {}
    for way, rule, expressions, given, open_here in _walk(
            host, family, table, ("prerouting", "output"), narrow=True):
        for dnat in dnat_of(rule, expressions, sets, given):
            hooks = found.setdefault(dnat, set())
            if open_here and not dnat.host_ip:
                hooks.add(way.hook)
    return [(dnat, frozenset(hooks)) for dnat, hooks in found.items()]


@dataclass(frozen=True, slots=True)
class _Way:
    """Where a packet's way through a table has got to: the chain, the hook it entered by,
    what the rules on the way matched (walked with `narrow`; each () for any), and whether
    none of them bound it to some destinations."""

    chain: str
    hook: str
    given: _Given = ((), (), ())
    open: bool = True


def _walk(host: NamespaceState, family: str, table: str, hooks: tuple[str, ...],
          narrow: bool = False) -> Iterator[tuple[_Way, NftRule, list[dict], _Given, bool]]:
    """Each rule of a table that a packet can reach from the table's base chains at `hooks`
    (jumps, gotos and verdict maps), as (way, rule, expressions, what the way and the rule
    matched, whether it is still open to any destination) — the one walker of a table's
    chains. With `narrow`, what each rule and verdict map key matches narrows the way: a
    rule no packet of the way matches is passed over, with the chains it leads to."""
    rules, maps = _table(host, family, table)
    todo = [_Way(c.name, c.hook) for c in host.firewall.nft_chains
            if c.family == family and c.table == table and c.hook in hooks]
    seen: set[_Way] = set()
    while todo:
        way = todo.pop()
        if way in seen:
            continue
        seen.add(way)
        for rule, expressions in rules.get(way.chain, ()):
            given = _narrow(way.given, _keys_matched(_matches(expressions), maps)) \
                if narrow else way.given
            if given is None:
                continue  # no packet the way here matches this rule
            open_here = way.open and not destination_bound(expressions)
            yield way, rule, expressions, given, open_here
            todo += [_Way(chain, way.hook, *rest) if narrow else _Way(chain, way.hook)
                     for chain, *rest in _ways(expressions, maps, given, open_here, narrow)]


def _ways(expressions: list[dict], maps: dict, given: _Given, open_here: bool, narrow: bool
          ) -> list[tuple[str, _Given, bool]]:
    """(chain, what the way there matched, still open) for each jump or goto of a rule, its
    own or a verdict map's. With `narrow`, a map keyed by a destination port narrows each of
    its elements' ways by the element's key; an element whose key is not read (an address
    prefix) keeps the way as it came, bound to a destination if the map's key names one."""
    found = []
    for expression in expressions:
        (key, value), = expression.items()
        if key in ("jump", "goto") and isinstance(value, dict):
            found.append((value.get("target", ""), given, open_here))
        elif key == "vmap" and isinstance(value, dict):
            names = _key_names(value) if narrow else None
            for element, verdict in _elements(value.get("data"), maps):
                targets = [verdict[kind].get("target", "") for kind in ("jump", "goto")
                           if isinstance(verdict, dict) and isinstance(verdict.get(kind), dict)]
                keys = _element_keys(names, element) if names else None
                for target in targets:
                    if keys is None:
                        found.append((target, given, open_here and not (
                            names and any(n.endswith(" daddr") for n in names))))
                        continue
                    for protocol, port, host_ip in keys:
                        here = _narrow(given, ((protocol,), (port,),
                                               (host_ip,) if host_ip else ()))
                        if here is not None:
                            found.append((target, here, open_here and not host_ip))
    return found


def _narrow(given: _Given, more: _Given) -> _Given | None:
    """Both limits at once (each () for any); None when they exclude each other."""
    both = []
    for had, new in zip(given, more):
        if had and new:
            wanted = set(new)
            kept = tuple(v for v in had if v in wanted)
            if not kept:
                return None
            both.append(kept)
        else:
            both.append(had or new)
    protocols, ports, hosts = both
    return protocols, ports, hosts


def destination_bound(expressions: list[dict]) -> bool:
    """Whether a rule holds only for some destinations: `fib daddr type local`, or an `ip`/
    `ip6 daddr` equal to an address or a set of them."""
    for expression in expressions:
        match = expression.get("match")
        if not isinstance(match, dict) or match.get("op", "==") != "==":
            continue
        left = match.get("left")
        fib = left.get("fib") if isinstance(left, dict) else None
        if isinstance(fib, dict) and fib.get("result") == "type" and \
                fib.get("flags") == ["daddr"] and match.get("right") == "local":
            return True
        payload = left.get("payload") if isinstance(left, dict) else None
        if isinstance(payload, dict) and payload.get("field") == "daddr" and \
                payload.get("protocol") in ("ip", "ip6"):
            return True
    return False


def _table(host: NamespaceState, family: str, table: str
           ) -> tuple[dict[str, list[tuple[NftRule, list[dict]]]], dict]:
    """A table's rules by chain, with their expressions, and its named sets and maps."""
    firewall = host.firewall
    rules: dict[str, list[tuple[NftRule, list[dict]]]] = {}
    for rule in firewall.nft_rules:
        if rule.family == family and rule.table == table:
            rules.setdefault(rule.chain, []).append((rule, expressions_of(rule)))
    maps = {s.name: s for s in firewall.nft_sets if s.family == family and s.table == table}
    return rules, maps


def expressions_of(rule: NftRule) -> list[dict]:
    """A rule's expressions as `nft -j` gives them (of one key each); [] when unreadable."""
    try:
        found = json.loads(rule.expr) if rule.expr else []
    except ValueError:
        return []
    return [e for e in found if isinstance(e, dict) and len(e) == 1] \
        if isinstance(found, list) else []


def _matches(expressions: list[dict]) -> list[tuple[str, str, object]]:
    """(what, operator, value) of each match: what is "iifname", "ip saddr", "tcp dport"..."""
    found = []
    for expression in expressions:
        match = expression.get("match")
        if not isinstance(match, dict):
            continue
        left, op = match.get("left"), match.get("op", "==")
        if isinstance(left, dict) and isinstance(left.get("meta"), dict):
            what = left["meta"].get("key", "")
        elif isinstance(left, dict) and isinstance(left.get("payload"), dict):
            what = f"{left['payload'].get('protocol', '')} {left['payload'].get('field', '')}"
        else:
            what = json.dumps(left)
        found.append((what, op, match.get("right")))
    return found


def _verdict(expressions: list[dict]) -> str:
    return next((key for e in expressions for key in e
                 if key in ("accept", "drop", "masquerade", "dnat", "snat")), "")


def _network(value) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if isinstance(value, dict) and isinstance(value.get("prefix"), dict):
        value = f"{value['prefix'].get('addr')}/{value['prefix'].get('len')}"
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return None


def masquerades(host: NamespaceState, family: int, subnet: str, bridge: str) -> bool:
    """Whether a reachable postrouting rule masquerades `subnet` leaving other than by its
    bridge (Docker's `oifname != BRIDGE ip saddr SUBNET masquerade`, or `snat to HOST_IP`
    where the network's `com.docker.network.host_ipv4` is set)."""
    want = ipaddress.ip_network(subnet, strict=False)
    for _, expressions in reachable(host, family, ("postrouting",)):
        if _verdict(expressions) not in ("masquerade", "snat"):  # snat: with host_ipv4
            continue
        matches = _matches(expressions)
        sources = [_network(v) for what, op, v in matches
                   if what == f"{table_family(family)} saddr" and op == "=="]
        out = [(op, v) for what, op, v in matches if what == "oifname"]
        if sources == [want] and all(op == "!=" and v == bridge for op, v in out):
            return True
    return False


def icc_drops(host: NamespaceState, bridge: str, internal: bool, family: int = 4) -> bool:
    """Whether a reachable forward rule drops what goes from `bridge` to itself: Docker's
    `iifname BRIDGE drop` in the bridge's forward-in chain, or, on an internal network (whose
    chain first drops every other interface), an unconditional drop there."""
    chain = f"filter-forward-in__{bridge}"
    for rule, expressions in reachable(host, family, ("forward",)):
        if _verdict(expressions) != "drop":
            continue
        matches = _matches(expressions)
        if matches == [("iifname", "==", bridge)]:
            return True
        if internal and not matches and rule.chain == chain:
            return True
    return False


def dnats(host: NamespaceState, family: int) -> list[NftDnat]:
    """The DNAT rules of Docker's table of `family` that prerouting or output reach."""
    sets = host.firewall.nft_sets
    return [found for rule, expressions in reachable(host, family, ("prerouting", "output"))
            for found in dnat_of(rule, expressions, sets)]


# The transports a `th dport` without a `meta l4proto` publishes: those netdiag reads sockets of.
TRANSPORTS = ("tcp", "udp")
# A key of a published port: (protocol, port, the address it is limited to or "").
_Key = tuple[str, int, str]
# What the rules on the way to a DNAT matched: (protocols, ports, addresses), each () for any.
_Given = tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]


def dnat_of(rule: NftRule, expressions: list[dict] | None = None, sets: tuple = (),
            given: _Given = ((), (), ())) -> tuple[NftDnat, ...]:
    """The host ports a rule's `dnat to` (or `redirect to`) publishes, one NftDnat each. The
    ports come from the rule's `tcp`/`udp`/`sctp dport` or `th dport` (with `meta l4proto`,
    else TCP and UDP) equal to a port, a set of ports or a range (a range wider than
    RANGE_READ as its first RANGE_READ ports and its last), and from a map keyed by the
    destination port
    (anonymous or named in `sets`; `dnat to tcp dport map { 8080 : 10.0.0.2 . 80 }`, Debian's
    `dnat tcp dport map {…} : tcp dport map {…}`), alone or concatenated with `ip`/`ip6
    daddr`; the address from `ip`/`ip6 daddr` equal to an address or a set of them. A rule
    that names its ports otherwise (a `!=`, only a `meta l4proto` — kube-proxy's endpoint
    chains, whose ports an earlier chain matched) publishes none that this reads (the flow
    engine still walks it), unless `given` names what the rules on the way matched
    (table_dnats). A target port range keeps a port it holds and takes its first for the
    others, as the kernel does for a new connection."""
    if expressions is None:
        expressions = expressions_of(rule)
    target = next((e["dnat"] for e in expressions if "dnat" in e), None)
    if target is None:  # `redirect to :22`: a DNAT to the host's own address
        target = next(({"addr": "", **(e["redirect"] or {})} for e in expressions
                       if "redirect" in e and isinstance(e["redirect"] or {}, dict)), None)
    if not isinstance(target, dict):
        return ()
    maps = {s.name: s for s in sets if (s.family, s.table) == (rule.family, rule.table)}
    narrowed = _narrow(given, _keys_matched(_matches(expressions), maps))
    if narrowed is None:
        return ()
    protocols, ports, hosts = narrowed
    port_set = frozenset(ports)
    address, port = target.get("addr"), target.get("port")
    found: dict[_Key, tuple] = {}
    if _is_map(address):  # the keys are the map's
        for (protocol, host_port, keyed), value in _map_keys(address["map"], maps):
            for host_ip in (keyed,) if keyed else hosts or ("",):
                found[(protocol, host_port, host_ip)] = _split(value)
    elif isinstance(address, str) and ports:
        for key in product(protocols or TRANSPORTS, ports, hosts or ("",)):
            found[key] = (address, None)
    if _is_map(port):  # the port by its own map, keyed as the address's
        by_key = dict(_map_keys(port["map"], maps))
        found = {key: (to_address, by_key.get(key, by_key.get((*key[:2], ""))))
                 for key, (to_address, _) in found.items()}
    elif port is not None:
        found = {key: (to_address, to_port if to_port is not None else port)
                 for key, (to_address, to_port) in found.items()}
    published = []
    for (protocol, host_port, host_ip), (to_address, to_port) in found.items():
        if isinstance(to_port, dict) and isinstance(to_port.get("range"), list):
            # the kernel keeps a port the range holds, else takes its first (nf_nat_core.c)
            low, high = to_port["range"]
            to_port = host_port if low <= host_port <= high else low
        if (protocols and protocol not in protocols) or (ports and host_port not in port_set) \
                or (hosts and host_ip not in hosts):
            continue  # the rule's own matches narrow its map
        if isinstance(to_address, str) and isinstance(to_port or 0, int):
            published.append(NftDnat(rule, protocol, host_port, host_ip, to_address,
                                     to_port or host_port))
    return tuple(published)


def _keys_matched(matches: list[tuple[str, str, object]], maps: dict | None = None) -> _Given:
    """(protocols, ports, addresses) the rule's `==` matches limit a DNAT to (empty: any),
    a named set's (`ip daddr @nodeport-ips`) read from `maps`."""
    protocols: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    hosts: tuple[str, ...] = ()
    for what, op, value in matches:
        if op != "==":
            continue
        if what in ("tcp dport", "udp dport", "sctp dport", "th dport"):
            ports = _ports(value)
            if not what.startswith("th"):
                protocols = (what.split()[0],)
        elif what == "l4proto" and not protocols:
            protocols = tuple(v for v in _values(value) if isinstance(v, str))
        elif what in ("ip daddr", "ip6 daddr"):
            hosts = tuple(v for v in _values(value, maps) if isinstance(v, str))
    return protocols, ports, hosts


def _values(value, maps: dict | None = None) -> list:
    """A match's right side as a list: one value, or a set's elements (anonymous, or named
    and in `maps`)."""
    if isinstance(value, str) and value.startswith("@") and maps and value[1:] in maps:
        try:
            found = json.loads(maps[value[1:]].elements or "[]")
        except ValueError:
            return []
        return [e["elem"].get("val") if isinstance(e, dict) and "elem" in e else e
                for e in found] if isinstance(found, list) else []
    return value["set"] if isinstance(value, dict) and isinstance(value.get("set"), list) \
        else [value]


RANGE_READ = 1024  # ports of one range read one by one


def _ports(value) -> tuple[int, ...]:
    """The ports of a port match or a map's key: a port, a range, a set of either."""
    found: list[int] = []
    for item in _values(value):
        if isinstance(item, int):
            found.append(item)
        elif isinstance(item, dict) and isinstance(item.get("range"), list) and \
                all(isinstance(p, int) for p in item["range"]):
            low, high = item["range"]
            # A wide range (an RTP range, 1024-65535) is read as its first ports and its
            # last: the table names it without walking tens of thousands of flows.
            found += range(low, min(high, low + RANGE_READ - 1) + 1)
            if high >= low + RANGE_READ:
                found.append(high)
    return tuple(found)


def _is_map(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("map"), dict)


def _elements(data, maps: dict) -> list:
    """A map's elements, of an anonymous map or a named one (`@name`)."""
    if isinstance(data, str) and data.startswith("@") and data[1:] in maps:
        try:
            found = json.loads(maps[data[1:]].elements or "[]")
        except ValueError:
            return []
    elif isinstance(data, dict):
        found = data.get("set", [])
    else:
        return []
    return [e for e in found if isinstance(e, list) and len(e) == 2] \
        if isinstance(found, list) else []


def _map_keys(found: dict, maps: dict) -> list[tuple[_Key, object]]:
    """The (protocol, port, address) keys of a map keyed by a destination port (alone or
    concatenated with the destination address), each with its data."""
    names = _key_names(found)
    return [(key, data) for element, data in (_elements(found.get("data"), maps) if names
                                              else ())
            for key in _element_keys(names, element) or ()]


def _key_names(found: dict) -> list[str] | None:
    """What a map's key is made of ("tcp dport", "ip daddr", "l4proto"), when it is keyed
    by a destination port (None: by something else, a source, a mark, an interface)."""
    lookup = found.get("key")
    fields = lookup["concat"] if isinstance(lookup, dict) and "concat" in lookup else [lookup]
    names = [f"{f['payload'].get('protocol')} {f['payload'].get('field')}"
             if isinstance(f, dict) and isinstance(f.get("payload"), dict) else
             "l4proto" if f == {"meta": {"key": "l4proto"}} else "" for f in fields]
    if not any(n.endswith(" dport") for n in names) or not all(
            n.endswith(" dport") or n in ("ip daddr", "ip6 daddr", "l4proto") for n in names):
        return None
    return names


def _element_keys(names: list[str], key) -> list[_Key] | None:
    """The (protocol, port, address) keys one element's key stands for (None: a key not
    read, an address prefix or range)."""
    if isinstance(key, dict) and "elem" in key:
        key = key["elem"].get("val")  # an element with a timeout or a counter
    parts = key["concat"] if isinstance(key, dict) and "concat" in key else [key]
    if len(parts) != len(names):
        return None
    ports, protocols, host, l4proto = (), TRANSPORTS, "", ()
    for name, part in zip(names, parts):
        if name.endswith(" dport"):
            ports = _ports(part)
            protocols = TRANSPORTS if name.startswith("th ") else (name.split()[0],)
        elif name == "l4proto":
            l4proto = (part,)  # kube-proxy's `meta l4proto . th dport`
        elif isinstance(part, str):
            host = part
        else:
            return None  # an address prefix or range: not read
    if not ports:
        return None
    protocols = tuple(p for p in protocols if not l4proto or p in l4proto)
    return [(protocol, port, host) for protocol in protocols for port in ports]


def _split(value) -> tuple:
    """A DNAT map's data: (address, port or None)."""
    if isinstance(value, dict) and isinstance(value.get("concat"), list) and \
            len(value["concat"]) == 2:
        return tuple(value["concat"])
    return value, None
