"""exposure-firewall-bypass: a published port is open on an uplink that the host's firewall closes.

What it finds
    A port published on every address of the host (Docker's `-p 5432:5432`, or any DNAT rule
    without a destination address, of iptables or native nftables: Docker 29's nftables
    backend, a hand-written `dnat to`) that a client beyond the host reaches on an uplink — the
    flow engine follows the connection through PREROUTING's DNAT, FORWARD and the container's
    socket, and the reply back — while the host's INPUT hook (iptables of either backend, or
    nftables: ufw, firewalld, a hand-written policy DROP) would drop the same connection had
    it been for the host. DNAT sends it through FORWARD, never INPUT: the admin's rule for the
    port does not apply to it. A port forward in the same nftables table as the input chain
    that would drop it (firewalld's forward-port) is that firewall's author's intent, not a
    bypass. Uplinks are the host's interfaces with its default route or an address outside
    the Docker networks (see docs/exposure.md); `netdiag exposure` lists every way in to
    every socket, this rule only the bypasses.

Why it matters
    The admin believes the port is closed — `ufw status` shows it denied, firewalld's zone does
    not list it — yet every machine on the uplink's network connects to the database. It is
    the most common security surprise on a Docker host (CIS Docker Benchmark 5.14, OWASP CSVS
    7.8: bind published ports to one interface).

Example
    ND931 exposure-firewall-bypass  dk-host: tcp/5432
      tcp 198.19.7.2:5432 is open to up0's network: nat/DOCKER/1 sends it to db
      (172.18.0.2:5432) through FORWARD, while the host's INPUT would drop it (filter/INPUT
      policy DROP)
        · DNAT: -A DOCKER ! -i br-1a2b3c -p tcp -m tcp --dport 5432 -j DNAT --to-destination
          172.18.0.2:5432
        · INPUT: filter/INPUT policy DROP
        · CIS Docker Benchmark v1.6.0 5.14: Ensure that incoming container traffic is bound to
          a specific host interface
      repair (manual): Publish on one address, or filter the port in DOCKER-USER
        $ docker run -p 127.0.0.1:5432:5432 ...   (or: iptables -I DOCKER-USER -i up0 -p tcp
          -m conntrack --ctorigdstport 5432 -j DROP)

Repair
    Publish the port on the address it is meant for (`-p 127.0.0.1:5432:5432`, or the
    internal interface's address), or, when it must stay on every address, filter it where
    forwarded traffic passes: a rule in DOCKER-USER matching the original port
    (`-m conntrack --ctorigdstport 5432`) with the uplink as in-interface; with Docker 29's
    nftables backend, which has no DOCKER-USER, a forward chain in a table of one's own
    (`iifname "up0" ct original proto-dst 5432 drop`: a drop in any base chain of the hook
    is final, Docker's accept does not undo it); firewalld users put the port's policy in a
    firewalld policy for forwarded traffic. Printed only: netdiag does
    not change firewalls.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from netdiag.checks.exposure_model import CONTROLS, Door, bypasses
from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import ManualStep, Repair, Safety
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import Snapshot

RULE = Rule(code="ND931", name="exposure-firewall-bypass", severity=Severity.WARNING,
            summary="a port published on every address is reachable on an uplink while the "
                    "host's INPUT firewall would drop it")
WALKS_FLOWS = True  # on a big snapshot, run beside the other rules (checks/engine.py)


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    seen = set()
    for uplink, door, ns_id in bypasses(snapshot):
        key = (uplink.host, uplink.link, door.protocol, door.port, door.rule)
        if key in seen:
            continue  # one finding per port and uplink, whichever of its addresses
        seen.add(key)
        host = snapshot.namespace(uplink.host).ref
        target = snapshot.namespace(ns_id).ref.display
        to = re.search(r"(?:--to-destination |dnat (?:ip6? )?to )(\S+)", door.rule)
        where = f"{target} ({to[1]})" if to else target
        subject = f"{door.protocol}/{door.port}"
        yield RULE.finding(
            host, subject,
            f"{door.protocol} {door.address}:{door.port} is open to {uplink.link}'s network: "
            f"{door.rule_name} sends it to {where} through FORWARD, while the host's INPUT would "
            f"drop it ({door.input_drop})",
            evidence=[*door.evidence(),
                      Evidence(f"uplink {uplink.link} ({', '.join(uplink.addresses)}), client "
                               f"{uplink.client}", host.id, "link", uplink.link),
                      CONTROLS["bound-interface"].evidence(), CONTROLS["csvs-bound"].evidence()],
            related=(ns_id,) if ns_id != host.id else (),
            repair=_repair(door, uplink.link, host.id))


def _repair(door: Door, uplink: str, host: int) -> Repair:
    """Where forwarded traffic is filtered: DOCKER-USER with iptables; with Docker 29's
    nftables backend (no DOCKER-USER) a forward chain of the admin's own table that runs
    before Docker's (docs.docker.com/engine/network/firewall-nftables/)."""
    publish = f"publish it as -p 127.0.0.1:{door.port}:... (or another single address)"
    if door.rule_name.startswith("nft "):
        return Repair("Publish on one address, or filter the port in a forward chain of "
                      "your own", Safety.MANUAL, (ManualStep(
                          f"{publish}; or, in a table of your own, a chain `type filter hook "
                          f"forward priority filter` with: iifname \"{uplink}\" ct "
                          f"original proto-dst {door.port} drop", host),))
    return Repair("Publish on one address, or filter the port in DOCKER-USER", Safety.MANUAL,
                  (ManualStep(f"{publish}; or: iptables -I DOCKER-USER -i {uplink} -p "
                              f"{door.protocol} -m conntrack --ctorigdstport {door.port} -j "
                              "DROP", host),))
