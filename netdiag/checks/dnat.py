"""DNAT rules that publish a host port (Docker's `-p`, a hand-written port forward), parsed once
for the rules that reason about them (port-contention, docker-port-unpublished).
"""

from __future__ import annotations

from dataclasses import dataclass

from netdiag.findings.finding import Evidence
from netdiag.model import IptablesRule, Match, NamespaceState
from netdiag.model.facts import WILDCARD_ADDRESSES


@dataclass(frozen=True, slots=True)
class Publish:
    """A DNAT rule that takes a host port somewhere else."""

    rule: IptablesRule
    protocol: str
    port: int
    destination: Match | None
    in_interface: Match | None
    to_address: str
    to_port: int

    @property
    def key(self) -> str:
        return f"{self.rule.table}/{self.rule.chain}/{self.rule.position}"

    @property
    def target(self) -> str:
        host = f"[{self.to_address}]" if ":" in self.to_address else self.to_address
        return f"{host}:{self.to_port}"

    def covers(self, host_ip: str) -> bool:
        """Whether the rule's destination match covers a binding's host address (a binding
        on every address, "" or 0.0.0.0 or ::, is covered by any)."""
        if self.destination is None or host_ip in WILDCARD_ADDRESSES:
            return True
        return self.destination.value.split("/")[0] == host_ip

    def evidence(self, ns_id: int) -> Evidence:
        text = self.rule.text or \
            f"{self.rule.chain} DNAT {self.protocol}/{self.port} → {self.target}"
        return Evidence(f"{self.rule.backend} {self.key}: {text}", ns_id, "firewall", self.key)


def publishes(state: NamespaceState) -> list[Publish]:
    found = []
    for rule in state.firewall.iptables_rules:
        if rule.table != "nat" or rule.target != "DNAT":
            continue
        parsed = publish(rule)
        if parsed is not None:
            found.append(parsed)
    return found


def publish(rule: IptablesRule) -> Publish | None:
    protocol, dport = rule.match("protocol"), rule.match("dport")
    if protocol is None or dport is None or protocol.negated or dport.negated \
            or not dport.value.isdigit():
        return None
    destination = rule.match("destination")
    to = rule.target_option("to-destination")
    address, port = _split_target(to, int(dport.value))
    if not address or address.startswith("127."):
        return None  # Docker's embedded DNS: dns-unreachable looks after it
    return Publish(rule, protocol.value, int(dport.value), destination,
                   rule.match("in-interface"), address, port)


def _split_target(to: str, default_port: int) -> tuple[str, int]:
    """"172.18.0.2:80" / "172.18.0.2" / "[fd00::2]:80" → (address, port)."""
    if to.startswith("["):
        address, _, rest = to[1:].partition("]")
        port = rest.lstrip(":")
    elif to.count(":") == 1:
        address, port = to.split(":")
    else:
        address, port = to, ""
    address = address.split("-")[0]  # a range: its first address is enough to locate it
    port = port.split("-")[0]
    return address, int(port) if port.isdigit() else default_port
