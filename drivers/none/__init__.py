"""The none driver: the container gets a network namespace with only its loopback.

Joining brings `lo` up in the sandbox and adds nothing else; `check` reports a loopback that
is down. As in Docker, a host namespace has at most one network of this driver.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

from pyroute2 import IPRoute

from netdiag.checks.api import Evidence, Finding, Repair, Safety, SetLinkUp
from netdiag.drivers.api import DEVICE_DOWN, Capability, Endpoint, Network, Scope, namespace_ref
from netdiag.drivers.host import no_options, only_one
from netdiag.drivers.store import Store
from netdiag.netns import entered

IFF_UP = 1


class NoneDriver:
    name = "none"
    capability = Capability(Scope.LOCAL)
    uses_ipam = False

    def __init__(self, store: Store):
        self.store = store

    def parse_options(self, options: Mapping[str, str]) -> None:
        no_options(self.name, options)

    def create_network(self, network: Network) -> Network:
        only_one(self.store, network)
        return network

    def delete_network(self, network: Network) -> None:
        return None

    def create_endpoint(self, network: Network, endpoint: Endpoint) -> Endpoint:
        return endpoint

    def delete_endpoint(self, network: Network, endpoint: Endpoint) -> None:
        return None

    def join(self, network: Network, endpoint: Endpoint, sandbox: str) -> Endpoint:
        with entered(sandbox), IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        return replace(endpoint, sandbox=sandbox)

    def leave(self, network: Network, endpoint: Endpoint) -> Endpoint:
        return replace(endpoint, sandbox="")

    def check(self, network: Network, endpoints: Sequence[Endpoint]) -> Iterator[Finding]:
        for ep in endpoints:
            if not ep.sandbox:
                continue
            with entered(ep.sandbox), IPRoute() as ipr:
                lo = ipr.get_links(ipr.link_lookup(ifname="lo")[0])[0]
            if lo["flags"] & IFF_UP:
                continue
            ref = namespace_ref(ep.sandbox)
            yield DEVICE_DOWN.finding(
                ref, "lo", f"the loopback of {ep.name} is down",
                evidence=[Evidence("lo is not UP", ref.id, "link", "lo")],
                repair=Repair("bring lo up", Safety.SAFE, (SetLinkUp(ref.id, "lo"),)))


DRIVER = NoneDriver
