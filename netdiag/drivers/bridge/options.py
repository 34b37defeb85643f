"""The bridge driver's options: a typed record, parsed from Docker's option keys.

Docker passes driver options as strings (`-o com.docker.network.bridge.name=br0`); they are
parsed once, here, into BridgeOptions, and invalid values are refused with a one-line
UsageError before anything is built. `hairpin` has no Docker key of its own: it stands for
the daemon's `--userland-proxy=false` mode, per network here, since netdiag runs no proxy.
`subnet6` stands for Docker's second (IPv6) IPAM config of an `--ipv6` network: the store's
network record has one subnet, so the IPv6 one travels as an option (ipam.ipv6_companion).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from netdiag.errors import UsageError

NAME = "com.docker.network.bridge.name"
ICC = "com.docker.network.bridge.enable_icc"
MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"
MTU = "com.docker.network.driver.mtu"
INTERNAL = "com.docker.network.internal"
HAIRPIN = "netdiag.bridge.hairpin"
SUBNET6 = "netdiag.bridge.ipv6_subnet"

# Short forms accepted on the command line and in lab files.
ALIASES = {"name": NAME, "bridge": NAME, "icc": ICC, "enable_icc": ICC,
           "masquerade": MASQUERADE, "enable_ip_masquerade": MASQUERADE,
           "host_binding_ipv4": HOST_BINDING, "mtu": MTU, "internal": INTERNAL,
           "hairpin": HAIRPIN, "subnet6": SUBNET6, "ipv6_subnet": SUBNET6}
KNOWN = frozenset(ALIASES.values())

DEFAULT_MTU = 1500  # Docker's default; not inferred from any uplink


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    bridge_name: str = ""  # "" → br-<first 12 hex of the network id>
    icc: bool = True
    masquerade: bool = True
    host_binding_ipv4: str = "0.0.0.0"
    mtu: int = DEFAULT_MTU
    internal: bool = False
    hairpin: bool = False
    subnet6: str = ""  # "": IPv4 only; else dual stack, e.g. fd00:30::/64


def canonical(options: Mapping[str, str]) -> dict[str, str]:
    """Short option names → Docker's keys; unknown keys are refused."""
    out = {}
    for key, value in options.items():
        full = ALIASES.get(key, key)
        if full not in KNOWN:
            raise UsageError(f"bridge: unknown option {key!r} (known: "
                             f"{', '.join(sorted(KNOWN))})")
        out[full] = str(value)
    return out


def parse(options: Mapping[str, str]) -> BridgeOptions:
    opts = canonical(options)
    name = opts.get(NAME, "")
    if len(name) > 15 or any(c in name for c in "/ \t"):
        raise UsageError(f"bridge: invalid bridge name {name!r} (at most 15 characters, "
                         "no slash or space)")
    return BridgeOptions(
        bridge_name=name,
        icc=_bool(opts, ICC, True),
        masquerade=_bool(opts, MASQUERADE, True),
        host_binding_ipv4=opts.get(HOST_BINDING, "0.0.0.0"),
        mtu=_mtu(opts.get(MTU, "")),
        internal=_bool(opts, INTERNAL, False),
        hairpin=_bool(opts, HAIRPIN, False),
        subnet6=_subnet6(opts.get(SUBNET6, "")),
    )


def _bool(opts: Mapping[str, str], key: str, default: bool) -> bool:
    value = opts.get(key)
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"bridge: option {key} must be true or false, not {value!r}")


def _subnet6(value: str) -> str:
    if not value:
        return ""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise UsageError(f"bridge: invalid IPv6 subnet {value!r}") from None
    if net.version != 6:
        raise UsageError(f"bridge: IPv6 subnet {value} is not IPv6")
    return str(net)


def _mtu(value: str) -> int:
    if not value:
        return DEFAULT_MTU
    if not value.isdigit() or not 68 <= int(value) <= 65535:
        raise UsageError(f"bridge: invalid MTU {value!r} (68-65535)")
    return int(value)
