"""The overlay driver's typed options, parsed from Docker-style keys.

`com.docker.network.driver.overlay.vxlanid_list` fixes the VNI (otherwise the lowest free from
4096), `com.docker.network.driver.mtu` sets the network MTU (otherwise the underlay's),
`encrypted` asks for ESP between the hosts, and `netdiag.overlay.ipv6_subnet` makes the network
dual stack (Docker's second, IPv6, IPAM config of an `--ipv6` network: the store's network
record has one subnet, so the IPv6 one travels as an option, as the bridge driver's does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from netdiag.drivers.ipam import parse_network6
from netdiag.errors import UsageError
from netdiag.model.facts import VXLAN_OVERHEAD

VNI_KEY = "com.docker.network.driver.overlay.vxlanid_list"
MTU_KEY = "com.docker.network.driver.mtu"
ENCRYPTED_KEY = "encrypted"
SUBNET6_KEY = "netdiag.overlay.ipv6_subnet"
FIRST_VNI, LAST_VNI = 4096, (1 << 24) - 1
KNOWN = (VNI_KEY, MTU_KEY, ENCRYPTED_KEY, SUBNET6_KEY)


@dataclass(frozen=True, slots=True)
class OverlayOptions:
    vni: int = 0  # 0: the lowest free
    mtu: int = 0  # network MTU; 0: the underlay's. Endpoints get mtu - 50.
    encrypted: bool = False
    subnet6: str = ""  # "": IPv4 only; else dual stack, e.g. fd00:9::/64


def _number(options: Mapping[str, str], key: str, low: int, high: int) -> int:
    text = options.get(key, "")
    if not text:
        return 0
    if not text.isdigit() or not low <= int(text) <= high:
        raise UsageError(f"overlay option {key}={text!r}: expected a number {low}-{high}")
    return int(text)


def parse(options: Mapping[str, str]) -> OverlayOptions:
    unknown = sorted(set(options) - set(KNOWN))
    if unknown:
        raise UsageError(f"overlay: unknown option {unknown[0]} (known: {', '.join(KNOWN)})")
    encrypted = options.get(ENCRYPTED_KEY, "false").lower() not in ("false", "0", "no")
    subnet6 = options.get(SUBNET6_KEY, "")
    return OverlayOptions(vni=_number(options, VNI_KEY, 1, LAST_VNI),
                          mtu=_number(options, MTU_KEY, 68 + VXLAN_OVERHEAD[4], 65535),
                          encrypted=encrypted,
                          subnet6=str(parse_network6(subnet6, "overlay: IPv6 subnet"))
                          if subnet6 else "")
