"""Does this kernel have IPVS? Asked through generic netlink in the current namespace.

Kernels without the ip_vs module (like the one netdiag's CI runs on) have no IPVS generic
netlink family, and pyroute2 fails to resolve it; that answer selects the nftables fallback.
"""

from __future__ import annotations


def kernel_has_ipvs() -> bool:
    try:
        from pyroute2 import IPVS

        IPVS().close()
    except Exception:  # noqa: BLE001 - pyroute2 raises NetlinkError (ENOENT) or its own error
        return False
    return True
