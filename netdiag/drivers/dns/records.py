"""The names one sandbox can resolve, as an immutable table built from endpoints and services.

Names are scoped like Docker's: a sandbox resolves the endpoints and services of the networks it
is attached to — by container name, alias, `name.network`, service name (the VIP, or every task
in DNS round-robin mode) and `tasks.<service>` — and reverse-resolves their addresses to
`name.network`. An endpoint of a dual-stack network also has an IPv6 address: its names
answer AAAA with it (forward6) and it reverse-resolves too; services stay IPv4 (their VIPs and
tasks). Lookups are case-insensitive and ignore the trailing dot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class NamedEndpoint:
    """A container's endpoint on a network: what its name and aliases resolve to."""

    network: str  # network name
    name: str  # container name
    address: str  # IPv4 address on that network
    aliases: tuple[str, ...] = ()
    address6: str = ""  # its IPv6 address on a dual-stack network


@dataclass(frozen=True, slots=True)
class NamedService:
    """A service on a network: its name resolves to `vip`, or to every task when vip is ""."""

    network: str
    name: str
    vip: str = ""  # "" means DNS round-robin mode
    tasks: tuple[str, ...] = ()  # task addresses
    aliases: tuple[str, ...] = ()


def _key(name: str) -> str:
    return name.rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class NameTable:
    """Forward (name → addresses) and reverse (address → name) records, read-only."""

    forward: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    reverse: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    forward6: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def addresses(self, name: str) -> tuple[str, ...]:
        return self.forward.get(_key(name), ())

    def addresses6(self, name: str) -> tuple[str, ...]:
        return self.forward6.get(_key(name), ())

    def knows(self, name: str) -> bool:
        return _key(name) in self.forward or _key(name) in self.forward6

    def name_of(self, address: str) -> str:
        return self.reverse.get(address, "")


# What the server asks for on every query, so it sees live changes: sandbox key → its table.
TableSource = Callable[[str], NameTable]


def build_table(endpoints: Iterable[NamedEndpoint],
                services: Iterable[NamedService] = ()) -> NameTable:
    """The table for a sandbox, from the endpoints and services of the networks it is on."""
    forward: dict[str, list[str]] = {}
    forward6: dict[str, list[str]] = {}
    reverse: dict[str, str] = {}

    def add(name: str, addresses: Iterable[str], table: dict[str, list[str]] = forward) -> None:
        have = table.setdefault(_key(name), [])
        have.extend(a for a in addresses if a not in have)

    for ep in endpoints:
        for name in (ep.name, *ep.aliases, f"{ep.name}.{ep.network}"):
            add(name, (ep.address,))
            if ep.address6:
                add(name, (ep.address6,), forward6)
        reverse.setdefault(ep.address, f"{ep.name}.{ep.network}")
        if ep.address6:
            reverse.setdefault(ep.address6, f"{ep.name}.{ep.network}")
    for svc in services:
        answer = (svc.vip,) if svc.vip else svc.tasks
        for name in (svc.name, *svc.aliases):
            add(name, answer)
        add(f"tasks.{svc.name}", svc.tasks)
        if svc.vip:
            reverse.setdefault(svc.vip, f"{svc.name}.{svc.network}")
    return NameTable(MappingProxyType({k: tuple(v) for k, v in forward.items()}),
                     MappingProxyType(reverse),
                     MappingProxyType({k: tuple(v) for k, v in forward6.items()}))
