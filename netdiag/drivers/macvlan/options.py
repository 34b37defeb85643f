"""The macvlan driver's typed options, from Docker's keys: `parent`, `macvlan_mode`, MTU; and
`netdiag.macvlan.ipv6_subnet`, Docker's second (IPv6) IPAM config of an `--ipv6` network (the
store's network record has one subnet, so the IPv6 one travels as an option, as the bridge
driver's does)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from netdiag.drivers.ipam import parse_network6
from netdiag.errors import UsageError

PARENT_KEY = "parent"
MODE_KEY = "macvlan_mode"
MTU_KEY = "com.docker.network.driver.mtu"
SUBNET6_KEY = "netdiag.macvlan.ipv6_subnet"
MODES = ("bridge", "private", "vepa", "passthru")
KNOWN = (PARENT_KEY, MODE_KEY, MTU_KEY, SUBNET6_KEY)


@dataclass(frozen=True, slots=True)
class MacvlanOptions:
    parent: str = ""  # "" → an internal network on a parent the driver makes
    mode: str = "bridge"
    mtu: int = 0  # 0: the parent's
    subnet6: str = ""  # "": IPv4 only; else dual stack, e.g. fd00:77::/64

    @property
    def vlan(self) -> tuple[str, int] | None:
        """("eth1", 10) for an 802.1q parent like eth1.10, else None."""
        base, dot, tag = self.parent.rpartition(".")
        return (base, int(tag)) if dot and base and tag.isdigit() else None


def parse(options: Mapping[str, str]) -> MacvlanOptions:
    unknown = sorted(set(options) - set(KNOWN))
    if unknown:
        raise UsageError(f"macvlan: unknown option {unknown[0]} (known: {', '.join(KNOWN)})")
    mode = options.get(MODE_KEY, "bridge") or "bridge"
    if mode not in MODES:
        raise UsageError(f"macvlan: mode {mode!r} is not one of {', '.join(MODES)}")
    parent = options.get(PARENT_KEY, "")
    if len(parent) > 15:
        raise UsageError(f"macvlan: parent {parent!r} is longer than 15 characters")
    mtu = options.get(MTU_KEY, "")
    if mtu and not (mtu.isdigit() and 68 <= int(mtu) <= 65535):
        raise UsageError(f"macvlan: {MTU_KEY}={mtu!r}: expected a number 68-65535")
    subnet6 = options.get(SUBNET6_KEY, "")
    if subnet6:
        subnet6 = str(parse_network6(subnet6, "macvlan: IPv6 subnet"))
    options_ = MacvlanOptions(parent, mode, int(mtu or 0), subnet6)
    if options_.vlan and not 1 <= options_.vlan[1] <= 4094:
        raise UsageError(f"macvlan: VLAN id {options_.vlan[1]} of {parent} is not 1-4094")
    return options_
