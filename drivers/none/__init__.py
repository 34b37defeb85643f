"""The none driver: the container gets a network namespace with only its loopback.

Joining brings `lo` up in the sandbox and adds nothing else; `check` reports a loopback that
is down. As in Docker, a host namespace has at most one network of this driver.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from pyroute2 import IPRoute

from netdiag.checks.finding import Evidence, Finding
from netdiag.drivers.api import DEVICE_DOWN, Endpoint, Network, namespace_ref
from netdiag.drivers.common.nothing import NothingToBuild
from netdiag.netns import entered
from netdiag.repair.steps import Repair, Safety, SetLinkUp

IFF_UP = 1


class NoneDriver(NothingToBuild):
    name = "none"

    def join(self, network: Network, endpoint: Endpoint, sandbox: str) -> Endpoint:
        with entered(sandbox), IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        return replace(endpoint, sandbox=sandbox)

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
