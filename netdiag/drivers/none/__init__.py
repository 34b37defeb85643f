"""The none driver: the container gets a network namespace with only its loopback.

Joining brings `lo` up in the sandbox and adds nothing else; `check` reports a loopback that
is down. As in Docker, a host namespace has at most one network of this driver.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from netdiag.drivers.api import namespace_ref
from netdiag.drivers.common import device
from netdiag.drivers.common.nothing import NothingToBuild
from netdiag.findings.driver_rules import DEVICE_DOWN
from netdiag.findings.finding import Evidence, Finding
from netdiag.findings.repair import Repair, Safety, SetLinkUp
from netdiag.netns import entered
from netdiag.rtnl_write import IFF_UP, Rtnl
from netdiag.store.records import Endpoint, Network


class NoneDriver(NothingToBuild):
    name = "none"

    def join(self, network: Network, endpoint: Endpoint, sandbox: str) -> Endpoint:
        with entered(sandbox), Rtnl() as rt:
            device.loopback_up(rt)
        return replace(endpoint, sandbox=sandbox)

    def check(self, network: Network, endpoints: Sequence[Endpoint]) -> Iterator[Finding]:
        for ep in endpoints:
            if not ep.sandbox:
                continue
            with entered(ep.sandbox), Rtnl() as rt:
                up = rt.flags("lo") & IFF_UP
            if up:
                continue
            ref = namespace_ref(ep.sandbox)
            yield DEVICE_DOWN.finding(
                ref, "lo", f"the loopback of {ep.name} is down",
                evidence=[Evidence("lo is not UP", ref.id, "link", "lo")],
                repair=Repair("bring lo up", Safety.SAFE, (SetLinkUp(ref.id, "lo"),)))


DRIVER = NoneDriver
