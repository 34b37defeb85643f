"""Embedded DNS: the resolver every sandbox on a user network reaches at 127.0.0.11.

`records` builds the name table a sandbox sees (container names, aliases, services, tasks, PTR)
and `store_names` builds it from the driver store; `answer` turns a query into a local answer,
`forward` asks the upstream servers, `sandbox` installs Docker's NAT rules and resolv.conf
inside a sandbox, `server` serves any number of sandboxes from one asyncio loop with sockets
opened inside each sandbox's namespace, and `daemon` keeps the store's sandboxes served
(`python -m netdiag.drivers.dns`).
"""

from netdiag.drivers.dns.records import NamedEndpoint, NamedService, NameTable, build_table
from netdiag.drivers.dns.server import EmbeddedDnsServer

__all__ = ["EmbeddedDnsServer", "NameTable", "NamedEndpoint", "NamedService", "build_table"]
