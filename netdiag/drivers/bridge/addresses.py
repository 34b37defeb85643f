"""Step: addresses and routes — the gateway on the bridge, the endpoint's address and route.

The gateway address goes on the bridge (Docker's bridgeIPv4); each endpoint gets its address
with the network's prefix and broadcast and, unless the network is internal, a default route
via the gateway (protocol boot, the netlink default, as Docker's). A dual-stack network does
the same in IPv6: the IPv6 gateway on the bridge, each endpoint its IPv6 address and an IPv6
default route. IPv6 addresses are added `nodad`, as Docker's are (it sets IFA_F_NODAD on the
addresses it assigns): they answer at once and the route via the gateway is usable at once.
Functions take an Rtnl socket opened inside the namespace they act on.
"""

from __future__ import annotations

import errno
import ipaddress

from netdiag.errors import Conflict, DriverError
from netdiag.rtnl_write import Rtnl, RtnlError


def add_address(rt: Rtnl, index: int, address: str, prefixlen: int) -> None:
    network = ipaddress.ip_network(f"{address}/{prefixlen}", strict=False)
    broadcast = str(network.broadcast_address) if network.version == 4 else ""
    try:
        rt.add_address(index, address, prefixlen, broadcast)
    except RtnlError as exc:
        if exc.code == errno.EEXIST:
            raise Conflict(f"address {address}/{prefixlen} is already configured") from None
        raise DriverError(f"cannot add address {address}/{prefixlen}: {exc}") from None


def add_default_route(rt: Rtnl, index: int, gateway: str) -> None:
    try:
        if ipaddress.ip_address(gateway).version == 6:
            rt.route(True, "::/0", oif=index, gateway=gateway)
        else:
            rt.add_default_route(index, gateway)
    except RtnlError as exc:
        if exc.code == errno.EEXIST:
            raise Conflict("the sandbox already has a default route") from None
        raise DriverError(f"cannot add the default route via {gateway}: {exc}") from None
