"""Docker's "daddr local" (`-m addrtype --dst-type LOCAL`, `fib daddr type local`) on arriving
IPv6 traffic: the kernel asks table local, so an address the namespace holds but has not taken
up — on a bridge without carrier, its local route gone — is not local, and a connection to it
is not DNATed to the published port.

A real Docker 20.10 host with IPv6 (tests/fixtures/docker28_ipv6/healthy-20.10.json): 8080
published on [::] to web; docker0's fd00:20::1 and the idle internal network's fd00:30::1 sit
on bridges without carrier; up0's fd00:19:29::2 is taken up.
"""

from __future__ import annotations

from pathlib import Path

from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine
from netdiag.model.serialize import load

FIXTURE = Path(__file__).parents[1] / "fixtures" / "docker28_ipv6" / "healthy-20.10.json"
CLIENT = "fd00:19:29::1"


def test_an_ipv6_address_without_its_local_route_is_not_local_to_docker_s_dnat():
    snapshot = load(FIXTURE)
    engine = Engine(snapshot)
    host = next(s for s in snapshot.namespaces if s.ref.display.endswith("rec6"))
    web = next(s.ref.id for s in snapshot.namespaces if s.ref.display == "web")
    assert {"fd00:20::1", "fd00:30::1"} <= {a.address for a in host.addresses}
    assert "fd00:20::1" not in engine.local_addresses(host)

    def reached(address: str) -> int | None:
        result = engine.arriving(host.ref.id, "up0", Packet(CLIENT, address, "tcp", 43210,
                                                             8080))
        return result.forward.namespace if result.delivered else None

    assert reached("fd00:19:29::2") == web  # the published port, at a taken-up address
    assert reached("fd00:20::1") is None and reached("fd00:30::1") is None
