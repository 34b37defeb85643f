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

from netdiag.drivers.common import state

RT_TABLE_MAIN = 254


def networks_to_avoid(host: str) -> list[str]:
    return onlink_routes(host) + [f"{ns}/32" for ns in nameservers(host)]


def onlink_routes(host: str) -> list[str]:
    return [route.dst for route in state.read(host, state.ROUTES).routes
            if route.family == 4 and route.table == RT_TABLE_MAIN and route.scope == "link"
            and route.type == "unicast" and route.dst != "default"]


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
