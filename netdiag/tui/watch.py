"""Netlink events from one namespace, for live refresh.

`watch` runs in a Textual thread worker: it enters the namespace just long enough to open a
pyroute2 socket (a socket belongs to the namespace it was opened in), binds it to the link,
address, route and neighbour multicast groups, and calls `on_change` whenever something
arrives, until the worker is cancelled. Events are drained in bursts, so one `ip link add`
that sends a dozen messages causes one callback. Why pyroute2 here: it keeps a subscribed
socket and decodes the event stream; netdiag/netlink.py answers requests, it does not listen.
"""

from __future__ import annotations

import select
from collections.abc import Callable

from netdiag import netns

POLL_SECONDS = 0.25


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


def watch(path: str, on_change: Callable[[], None], cancelled: Callable[[], bool]) -> None:
    from pyroute2 import IPRoute

    with netns.entered(path):
        ipr = IPRoute()
    try:
        ipr.bind(groups=_groups())
        while not cancelled():
            ready, _, _ = select.select([ipr.fileno()], [], [], POLL_SECONDS)
            if not ready:
                continue
            while ready:  # drain the burst before telling anyone
                ipr.get()
                ready, _, _ = select.select([ipr.fileno()], [], [], 0.05)
            on_change()
    finally:
        ipr.close()
