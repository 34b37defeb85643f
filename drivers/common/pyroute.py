"""pyroute2 helpers the drivers share, and Docker's overlay MAC scheme.

The overlay and macvlan drivers still program links, FDB and neighbour entries through
pyroute2 (the bridge driver and the collectors use netdiag/netlink.py's plain sockets).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager

from pyroute2 import IPRoute

from netdiag import netns
from netdiag.errors import DriverError


def overlay_mac(ip: str) -> str:
    """Docker's overlay MACs: 02:42 followed by the four IPv4 bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


@contextmanager
def netlink_in(path: str) -> Iterator[IPRoute]:
    with netns.entered(path), IPRoute() as ipr:
        yield ipr


def index_of(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise DriverError(f"no link {name}")
    return found[0]
