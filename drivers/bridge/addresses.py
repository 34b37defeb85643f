"""Step: addresses and routes — the gateway on the bridge, the endpoint's address and route.

The gateway address goes on the bridge (Docker's bridgeIPv4); each endpoint gets its address
with the network's prefix and, unless the network is internal, a default route via the gateway.
Functions take an IPRoute socket opened inside the namespace they act on.
"""

from __future__ import annotations

import ipaddress

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netdiag.errors import Conflict, DriverError

EEXIST = 17
RTPROT_BOOT = 3


def add_address(ipr: IPRoute, index: int, address: str, prefixlen: int) -> None:
    """The address with its broadcast, as Docker sets it (`ip addr` shows `brd`)."""
    broadcast = str(ipaddress.ip_network(f"{address}/{prefixlen}", strict=False)
                    .broadcast_address)
    try:
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen, broadcast=broadcast)
    except NetlinkError as exc:
        if exc.code == EEXIST:
            raise Conflict(f"address {address}/{prefixlen} is already configured") from None
        raise DriverError(f"cannot add address {address}/{prefixlen}: {exc.args[-1]}") from None


def add_default_route(ipr: IPRoute, index: int, gateway: str) -> None:
    try:
        # proto boot (the netlink default, which `ip route` does not print), like Docker's.
        ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index, proto=RTPROT_BOOT)
    except NetlinkError as exc:
        if exc.code == EEXIST:
            raise Conflict("the sandbox already has a default route") from None
        raise DriverError(f"cannot add the default route via {gateway}: {exc.args[-1]}") \
            from None
