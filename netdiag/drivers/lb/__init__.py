"""Service VIP load balancing: one VIP per service, the service's tasks as backends.

`model` describes services and backends, `store_services` builds them from the store and
records draining, `ipvs` detects whether the kernel has IPVS, `nftables`
renders the fallback (a `numgen inc` DNAT map, which spreads new connections round robin like
IPVS's rr scheduler) and `balancer` programs a namespace: the VIP for clients in it, and the
published port for the routing mesh when it acts as a host.
"""

from netdiag.drivers.lb.balancer import backend_for, clear, program
from netdiag.drivers.lb.model import Backend, ServiceVip

__all__ = ["Backend", "ServiceVip", "backend_for", "clear", "program"]
