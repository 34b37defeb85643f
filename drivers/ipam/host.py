"""What a new pool must not overlap in its host namespace: on-link routes and nameservers.

Modern Docker skips predefined pools that overlap the host's on-link (scope link) routes and
its nameservers; routes through a gateway, such as a VPN's 0.0.0.0/1, do not count. Here the
"host" is the namespace a network is created in; its nameservers come from
/etc/netns/NAME/resolv.conf when it has one (that is what `ip netns exec` would show a process
there), else from /etc/resolv.conf.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pyroute2 import IPRoute

from netdiag.netns import entered

RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254


def networks_to_avoid(host: str) -> list[str]:
    return onlink_routes(host) + [f"{ns}/32" for ns in nameservers(host)]


def onlink_routes(host: str) -> list[str]:
    with entered(host), IPRoute() as ipr:
        routes = ipr.get_routes(family=2, table=RT_TABLE_MAIN)
    found = []
    for route in routes:
        if route["scope"] != RT_SCOPE_LINK or not route["dst_len"]:
            continue
        found.append(f"{route.get('dst')}/{route['dst_len']}")
    return found


def resolv_conf_for(host: str) -> Path:
    if host.startswith("/run/netns/"):
        own = Path("/etc/netns") / Path(host).name / "resolv.conf"
        if own.is_file():
            return own
    return Path("/etc/resolv.conf")


def nameservers(host: str) -> list[str]:
    try:
        text = resolv_conf_for(host).read_text()
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                if ipaddress.ip_address(parts[1]).version == 4:
                    found.append(parts[1])
            except ValueError:
                continue
    return found
