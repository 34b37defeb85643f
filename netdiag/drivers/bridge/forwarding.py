"""Step: forwarding sysctls of the host namespace.

Docker turns ip_forward on and, only when it had to flip it from 0, also sets the filter
FORWARD policy to DROP (the firewall step does that part, told by `needs_drop_policy`).
A dual-stack network also needs `net.ipv6.conf.all.forwarding` (Docker 28 sets it, and the
ip6tables FORWARD policy to DROP when it flipped it, the same way).
Hairpin networks get route_localnet on their bridge, as Docker does without a userland proxy.
The calling thread must be inside the host namespace: /proc/sys/net shows the namespace of the
thread that opens it.
"""

from __future__ import annotations

from pathlib import Path

IP_FORWARD = {4: Path("/proc/sys/net/ipv4/ip_forward"),
              6: Path("/proc/sys/net/ipv6/conf/all/forwarding")}


def ip_forward_enabled(family: int = 4) -> bool:
    return IP_FORWARD[family].read_text().strip() == "1"


def enable_ip_forward(family: int = 4) -> None:
    IP_FORWARD[family].write_text("1")


def enable_route_localnet(bridge: str) -> None:
    Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").write_text("1")
