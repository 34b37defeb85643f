"""Program a namespace's service load balancing: IPVS where the kernel has it, else nftables.

`program` is declarative — it takes every service the namespace should serve and makes the
kernel match — so callers keep the truth in the store and never patch rules incrementally.
This kernel has no IPVS, so only the nftables backend is implemented and verified; on a kernel
with IPVS netdiag still uses nftables and says so through `backend_for`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from netdiag import netns
from netdiag.drivers.common.namespaces import namespace_path
from netdiag.drivers.lb import nftables
from netdiag.drivers.lb.ipvs import kernel_has_ipvs
from netdiag.drivers.lb.model import ServiceVip
from netdiag.errors import Conflict

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def backend_for(path: str) -> str:
    """Which load balancer the namespace at `path` gets: "nftables" (and why, when not IPVS)."""
    with netns.entered(path):
        return "nftables" if not kernel_has_ipvs() else "nftables (IPVS present, not used yet)"


def _check_unique(services: Sequence[ServiceVip]) -> None:
    seen: dict[object, str] = {}
    for svc in services:
        for key in (("mark", svc.mark, svc.protocol, svc.port),
                    ("vip", svc.vip, svc.protocol, svc.port),
                    ("published", svc.protocol, svc.published_port or svc.name)):
            if key in seen:
                raise Conflict(f"services {seen[key]} and {svc.name} share {key[0]} "
                               f"{' '.join(map(str, key[1:]))}")
            seen[key] = svc.name


def program(path: str, services: Sequence[ServiceVip]) -> None:
    """Make the namespace at `path` balance exactly `services` (an empty list removes all)."""
    _check_unique(services)
    with netns.entered(namespace_path(path)):  # never the root namespace
        nftables.apply(services)
        if any(s.published_port for s in services):
            IP_FORWARD.write_text("1\n")  # the mesh forwards to backends behind this host


def clear(path: str) -> None:
    program(path, ())
