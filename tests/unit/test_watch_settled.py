"""The agent's change trigger (watch.py with settled_only): which neighbour events count.

Neighbour events are decoded by pyroute2 into messages read with .get(); plain dicts stand in
for them here (the event stream itself is exercised by the TUI's live tests and the fleet
integration tests)."""

from __future__ import annotations

import pytest

from netdiag.watch import _counts

AF_INET, AF_INET6, AF_BRIDGE = 2, 10, 7
REACHABLE, STALE, NOARP, PERMANENT = 0x02, 0x04, 0x40, 0x80


@pytest.mark.parametrize(("family", "state", "counts"), [
    (AF_INET6, NOARP, False),  # ff02::2 after a router solicitation, aged out by the kernel
    (AF_INET, NOARP, False),  # a multicast group's entry: left out of snapshots as by `ip neigh`
    (AF_INET, REACHABLE, False),  # the ARP cache refreshing itself
    (AF_INET6, STALE, False),
    (AF_INET, PERMANENT, True),  # written by a person or a control plane (Docker's overlay)
    (AF_INET6, PERMANENT, True),
    (AF_BRIDGE, NOARP, True),  # `bridge fdb add ... static`
    (AF_BRIDGE, PERMANENT, True),
    (AF_BRIDGE, REACHABLE, False),  # a learnt MAC address
])
@pytest.mark.parametrize("event", ["RTM_NEWNEIGH", "RTM_DELNEIGH"])
def test_settled_neighbour_events(event, family, state, counts):
    message = {"event": event, "family": family, "state": state}
    assert _counts(message, settled_only=True) is counts
    assert _counts(message, settled_only=False) is True  # the TUI sees every change


@pytest.mark.parametrize("event", ["RTM_NEWLINK", "RTM_NEWADDR", "RTM_DELROUTE"])
def test_other_events_always_count(event):
    assert _counts({"event": event, "family": AF_INET6}, settled_only=True) is True
