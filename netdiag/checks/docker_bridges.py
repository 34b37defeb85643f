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
from dataclasses import dataclass

from netdiag.findings.finding import Evidence
from netdiag.model import NamespaceState, NftRule, intent
from netdiag.model.facts import WILDCARD_ADDRESSES


@dataclass(frozen=True, slots=True)
class NftDnat:
    """A DNAT rule of Docker's table that publishes a host port."""

    rule: NftRule
    protocol: str
    port: int
    host_ip: str  # the `ip daddr` it is limited to ("" for every address)
    to_address: str
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
    firewall, table = host.firewall, intent.NFTABLES_BACKEND_TABLE
    name = table_family(family)
    rules: dict[str, list[tuple[NftRule, list[dict]]]] = {}
    for rule in firewall.nft_rules:
        if rule.family == name and rule.table == table:
            rules.setdefault(rule.chain, []).append((rule, _expressions(rule)))
    maps = {s.name: s for s in firewall.nft_sets if s.family == name and s.table == table}
    todo = [c.name for c in firewall.nft_chains
            if c.family == name and c.table == table and c.hook in hooks]
    seen: set[str] = set()
    while todo:
        chain = todo.pop()
        if chain in seen:
            continue
        seen.add(chain)
        for _, expressions in rules.get(chain, ()):
            todo += _targets(expressions, maps)
    return [pair for chain in sorted(seen) for pair in rules.get(chain, ())]


def _expressions(rule: NftRule) -> list[dict]:
    try:
        found = json.loads(rule.expr) if rule.expr else []
    except ValueError:
        return []
    return [e for e in found if isinstance(e, dict) and len(e) == 1] \
        if isinstance(found, list) else []


def _targets(expressions: list[dict], maps: dict) -> list[str]:
    found = []
    for expression in expressions:
        (key, value), = expression.items()
        if key in ("jump", "goto") and isinstance(value, dict):
            found.append(value.get("target", ""))
        elif key == "vmap" and isinstance(value, dict):
            data = value.get("data")
            if isinstance(data, str) and data.startswith("@") and data[1:] in maps:
                try:
                    elements = json.loads(maps[data[1:]].elements or "[]")
                except ValueError:
                    elements = []
            elif isinstance(data, dict):
                elements = data.get("set", [])
            else:
                elements = []
            for element in elements:
                verdict = element[1] if isinstance(element, list) and len(element) == 2 \
                    else None
                for kind in ("jump", "goto"):
                    if isinstance(verdict, dict) and isinstance(verdict.get(kind), dict):
                        found.append(verdict[kind].get("target", ""))
    return found


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


def icc_drops(host: NamespaceState, bridge: str, internal: bool) -> bool:
    """Whether a reachable forward rule drops what goes from `bridge` to itself: Docker's
    `iifname BRIDGE drop` in the bridge's forward-in chain, or, on an internal network (whose
    chain first drops every other interface), an unconditional drop there."""
    chain = f"filter-forward-in__{bridge}"
    for rule, expressions in reachable(host, 4, ("forward",)):
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
    return [found for rule, expressions in reachable(host, family, ("prerouting", "output"))
            if (found := dnat_of(rule, expressions)) is not None]


def dnat_of(rule: NftRule, expressions: list[dict] | None = None) -> NftDnat | None:
    """The host port a rule's `dnat to` publishes: one `tcp`/`udp`/`sctp dport` equal to a
    port, at most one `ip`/`ip6 daddr` address. A rule that matches its ports otherwise (a
    set, a range, `th dport`) is not read: the flow engine still walks it."""
    if expressions is None:
        expressions = _expressions(rule)
    target = next((e["dnat"] for e in expressions if "dnat" in e), None)
    if not isinstance(target, dict) or not isinstance(target.get("addr"), str):
        return None
    matches = _matches(expressions)
    ports = [(what.split()[0], v) for what, op, v in matches
             if what in ("tcp dport", "udp dport", "sctp dport") and op == "=="
             and isinstance(v, int)]
    daddr = [v for what, op, v in matches
             if what in ("ip daddr", "ip6 daddr") and op == "==" and isinstance(v, str)]
    if len(ports) != 1:
        return None
    (protocol, port), = ports
    to_port = target.get("port", port)
    return NftDnat(rule, protocol, port, daddr[0] if daddr else "", target["addr"],
                   to_port if isinstance(to_port, int) else port)
