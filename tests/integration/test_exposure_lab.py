"""The exposure table of a netdiag lab against a real scan: the lab's host node counts as a
host (its veth to the lab's underlay switch is its uplink), so its containers get their ways
in from the underlay.

The bundled `pets-bridge` lab (renamed): host1 (10.99.0.1 on the underlay) with the bridge
network petnet, db on 6379 and web on 5000, web's 5000 published as 8080 (the lab's bridge
driver writes Docker's classic iptables rules). The underlay switch's namespace routes
petnet to host1, as a router with a static route would. Then the switch connects to (TCP)
and sends a datagram to (UDP) every address of host1 and its containers × every port the
table names and the test's own, and host1 does the same to every address (127.0.0.1 too):
what answered must be the table's rows from the uplink and from the host, port for port.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from netdiag.checks.exposure_model import FROM_HOST, UPLINK, exposures
from netdiag.lab import build, teardown
from netdiag.topology import schema
from tests.conftest import sh
from tests.integration.test_exposure import agree, scan_tcp_udp
from tests.real_flows import snapshot_of

pytestmark = [pytest.mark.integration]

EXAMPLE = Path(__file__).resolve().parents[2] / "netdiag" / "lab" / "examples" / \
    "pets-bridge.yaml"
PORTS = (22, 80, 5000, 6379, 8080, 9999)


def test_a_labs_published_port_matches_a_real_scan_from_its_underlay():
    topology = schema.load(EXAMPLE).model_copy(update={"name": f"ndt-{secrets.token_hex(3)}"})
    lab = build.up(topology)
    try:
        nodes = lab.nodes
        sh(f"ip -n {nodes['ul']} route add 172.28.0.0/24 via 10.99.0.1")
        snapshot, ids = snapshot_of(nodes)
        table = exposures(snapshot)  # no hosts named: the lab's host node is found
        addresses = {a.address for role in ("host1", "db", "web")
                     for a in snapshot.namespace(ids[role]).addresses
                     if a.family == 4 and not a.address.startswith("127.")}
        assert {"10.99.0.1", "172.28.0.1", "172.28.0.2", "172.28.0.3"} <= addresses

        def says(source: str, targets: set) -> set:
            return {(d.address, d.port, d.protocol) for e in table for d in e.doors
                    if (d.source, d.host) == (source, ids["host1"]) and d.address in targets}

        ports = set(PORTS) | {d.port for e in table for d in e.doors}
        froms = (("ul", UPLINK, addresses), ("host1", FROM_HOST, addresses | {"127.0.0.1"}))
        silent: dict[str, list] = {role: [] for role, *_ in froms}
        with ThreadPoolExecutor(len(froms)) as pool:
            scans = list(pool.map(lambda each: scan_tcp_udp(
                nodes[each[0]], each[2], ports, silent[each[0]]), froms))
        for (role, source, targets), scanned in zip(froms, scans):
            agree(f"lab pets-bridge from {role}", scanned, says(source, targets),
                  len(targets) * len(ports) * 2, silent[role])
        # What the lab means: web's published port answers the underlay at host1's address.
        assert ("10.99.0.1", 8080, "tcp") in scans[0]
        web = next(e for e in table if e.namespace.id == ids["web"] and e.socket.port == 5000)
        assert web.risk == "public"
    finally:
        teardown.down(topology.name)
