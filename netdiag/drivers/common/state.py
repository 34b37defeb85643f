"""What the drivers read back from the kernel: the snapshot collectors' own records.

A driver that needs to know what a namespace holds (its links, addresses, routes) asks the
collectors of netdiag/collect, so reading has one netlink stack and one decoding whoever asks,
and a driver's check sees exactly what `netdiag check` sees.
"""

from __future__ import annotations

from netdiag.collect import addresses, collect_namespace, links, routes
from netdiag.drivers.api import namespace_ref
from netdiag.errors import DriverError, NamespaceGone
from netdiag.model import Address, Link, NamespaceState

LINKS = (links,)
LINKS_AND_ADDRESSES = (links, addresses)
ROUTES = (links, routes)
EVERYTHING = (links, addresses, routes)


def read(path: str, collectors=EVERYTHING) -> NamespaceState:
    """The namespace at `path` as the collectors read it; NamespaceGone when it has gone."""
    state, gaps = collect_namespace(namespace_ref(path), collectors)
    for gap in gaps:
        if gap.kind == "gone":
            raise NamespaceGone(gap.message)
        raise DriverError(f"cannot read {path}: {gap.message}")
    assert state is not None  # no gap means it was read
    return state


def link_named(state: NamespaceState, name: str) -> Link | None:
    return next((link for link in state.links if link.name == name), None)


def addresses_of(state: NamespaceState, name: str, family: int = 4) -> list[Address]:
    return [a for a in state.addresses if a.ifname == name and a.family == family]
