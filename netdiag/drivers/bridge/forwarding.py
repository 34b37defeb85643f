"""Step: forwarding sysctls of the host namespace.

Docker turns ip_forward on and, only when it had to flip it from 0, also sets the filter
FORWARD policy to DROP (the firewall step does that part, told by `needs_drop_policy`).
Hairpin networks get route_localnet on their bridge, as Docker does without a userland proxy.
The calling thread must be inside the host namespace: /proc/sys/net shows the namespace of the
thread that opens it.
"""

from __future__ import annotations

from pathlib import Path

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def ip_forward_enabled() -> bool:
    return IP_FORWARD.read_text().strip() == "1"


def enable_ip_forward() -> None:
    IP_FORWARD.write_text("1")


def enable_route_localnet(bridge: str) -> None:
    Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").write_text("1")
