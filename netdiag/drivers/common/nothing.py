"""The driver verbs of a driver that builds nothing (host and none)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

from netdiag.drivers.api import Capability
from netdiag.errors import Conflict, UsageError
from netdiag.findings.finding import Finding
from netdiag.store import Store
from netdiag.store.records import Endpoint, Network, Scope


def only_one(store: Store, network: Network) -> None:
    """Refuse a second network of this driver on the same host namespace."""
    for other in store.networks(network.host):
        if other.driver == network.driver and other.id != network.id:
            raise Conflict(f'only one instance of "{network.driver}" network is allowed '
                           f"(have {other.name})")


class NothingToBuild:
    """The verbs of a driver that makes no device, address or rule (host and none)."""

    name = ""
    capability = Capability(Scope.LOCAL)
    uses_ipam = False

    def __init__(self, store: Store):
        self.store = store

    def parse_options(self, options: Mapping[str, str]) -> None:
        if options:
            raise UsageError(f"{self.name}: this driver takes no options "
                             f"(got {', '.join(sorted(options))})")

    def create_network(self, network: Network) -> Network:
        only_one(self.store, network)
        return network

    def delete_network(self, network: Network) -> None:
        return None

    def create_endpoint(self, network: Network, endpoint: Endpoint) -> Endpoint:
        return endpoint

    def delete_endpoint(self, network: Network, endpoint: Endpoint) -> None:
        return None

    def leave(self, network: Network, endpoint: Endpoint) -> Endpoint:
        return replace(endpoint, sandbox="")

    def check(self, network: Network, endpoints: Sequence[Endpoint]) -> Iterator[Finding]:
        return iter(())  # nothing was configured, so nothing can drift
