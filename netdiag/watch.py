"""Netlink events from one namespace: the TUI's live refresh and the agent's change trigger.

`watch` enters the namespace just long enough to open a pyroute2 socket (a socket belongs to
the namespace it was opened in), binds it to the link, address, route and neighbour multicast
groups, and calls `on_change` whenever something arrives, until `cancelled()` says yes. Events
are drained in bursts, so one `ip link add` that sends a dozen messages causes one callback.
With `settled_only`, neighbour and forwarding-table events count only for permanent entries
(what a person or a control plane writes): the ARP cache refreshing itself every few seconds
is not a change worth a new snapshot, nor are the NOARP entries the kernel makes and ages out
for multicast groups (ff02::2 on every port of a bridge after its router solicitations), which
the neighbours collector leaves out as `ip neigh` does; a static bridge FDB entry is NOARP.
Why pyroute2 here: it keeps a subscribed socket and decodes the event stream;
netdiag/netlink.py answers requests, it does not listen.
"""

from __future__ import annotations

import select
from collections.abc import Callable

from netdiag import netns

POLL_SECONDS = 0.25
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
AF_BRIDGE = 7


def _groups() -> int:
    from pyroute2.netlink.rtnl import (
        RTMGRP_IPV4_IFADDR,
        RTMGRP_IPV4_ROUTE,
        RTMGRP_IPV6_IFADDR,
        RTMGRP_IPV6_ROUTE,
        RTMGRP_LINK,
        RTMGRP_NEIGH,
    )

    return (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_ROUTE | RTMGRP_NEIGH)


def _counts(message, settled_only: bool) -> bool:
    if not settled_only or message.get("event") not in ("RTM_NEWNEIGH", "RTM_DELNEIGH"):
        return True
    settled = NUD_PERMANENT | NUD_NOARP if message.get("family") == AF_BRIDGE else NUD_PERMANENT
    return bool(message.get("state", 0) & settled)


def watch(path: str, on_change: Callable[[], None], cancelled: Callable[[], bool],
          settled_only: bool = False) -> None:
    from pyroute2 import IPRoute

    with netns.entered(path):
        ipr = IPRoute()
    try:
        ipr.bind(groups=_groups())
        while not cancelled():
            ready, _, _ = select.select([ipr.fileno()], [], [], POLL_SECONDS)
            if not ready:
                continue
            changed = False
            while ready:  # drain the burst before telling anyone
                changed |= any(_counts(m, settled_only) for m in ipr.get())
                ready, _, _ = select.select([ipr.fileno()], [], [], 0.05)
            if changed:
                on_change()
    finally:
        ipr.close()
