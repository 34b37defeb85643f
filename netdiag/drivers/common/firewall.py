"""Docker's classic (engine ≤ 27) iptables layout for bridge networks, as rule lists.

The lists are in the order libnetwork 20.10 applies them, with its insert/append choices, so
that applying them one after another (iptables.batch_add) leaves the same iptables-save output
as a Docker host: FORWARD → DOCKER-USER → DOCKER-ISOLATION-STAGE-1, then per bridge the
RELATED,ESTABLISHED accept, the jump to DOCKER, the outgoing accept and the icc rule; nat
PREROUTING/OUTPUT addrtype jumps to DOCKER, a MASQUERADE per subnet, and per published port a
DNAT in nat DOCKER, an ACCEPT in filter DOCKER and a hairpin MASQUERADE in POSTROUTING.

A dual-stack network has the same rules again in ip6tables, with its IPv6 subnet (`family=6`):
Docker since 27 mirrors its IPv4 layout there, MASQUERADE (NAT66) included, and so do a
dual-stack endpoint's published ports (DNAT to `[address]:port`).

These functions are pure: the same lists drive building (firewall step), tearing down, and
the driver's check, which reports the rules that are missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from netdiag.drivers.common.iptables import FwRule, RulePlacement
from netdiag.store.records import PortBinding

DOCKER = "DOCKER"
USER = "DOCKER-USER"
STAGE1 = "DOCKER-ISOLATION-STAGE-1"
STAGE2 = "DOCKER-ISOLATION-STAGE-2"

CHAINS = (("filter", DOCKER), ("filter", STAGE1), ("filter", STAGE2), ("filter", USER),
          ("nat", DOCKER))


LOOPBACK = {4: "127.0.0.0/8", 6: "::1/128"}


def of_family(rules: list[FwRule], family: int) -> list[FwRule]:
    return rules if family == 4 else [replace(rule, family=family) for rule in rules]


def host_rules(hairpin: bool, family: int = 4) -> list[FwRule]:
    """What every Docker host has once, whatever its networks (the daemon's start-up rules)."""
    output = ("-m addrtype --dst-type LOCAL -j DOCKER" if hairpin
              else f"! -d {LOOPBACK[family]} -m addrtype --dst-type LOCAL -j DOCKER")
    return of_family([
        FwRule("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER"),
        FwRule("nat", "OUTPUT", output),
    ], family)


def jump_rules(family: int = 4) -> list[FwRule]:
    """Re-asserted after every network change so that they stay first in FORWARD."""
    return of_family([
        FwRule("filter", "FORWARD", f"-j {STAGE1}", RulePlacement.FIRST),
        FwRule("filter", STAGE1, "-j RETURN"),
        FwRule("filter", STAGE2, "-j RETURN"),
        FwRule("filter", "FORWARD", f"-j {USER}", RulePlacement.FIRST),
        FwRule("filter", USER, "-j RETURN"),
    ], family)


def network_rules(bridge: str, subnet: str, *, icc: bool, masquerade: bool, internal: bool,
                  hairpin: bool) -> list[FwRule]:
    """The rules one bridge network owns (removed with it), in Docker's order; ip6tables
    rules when `subnet` is IPv6."""
    if internal:
        rules = [
            FwRule("filter", STAGE1, f"! -d {subnet} -i {bridge} -j DROP", RulePlacement.INSERT),
            FwRule("filter", STAGE1, f"! -s {subnet} -o {bridge} -j DROP", RulePlacement.INSERT),
            icc_rule(bridge, icc),
        ]
    else:
        rules = []
        if masquerade:
            rules.append(FwRule("nat", "POSTROUTING", f"-s {subnet} ! -o {bridge} -j MASQUERADE",
                                RulePlacement.INSERT))
        if masquerade and not hairpin:
            rules.append(FwRule("nat", DOCKER, f"-i {bridge} -j RETURN", RulePlacement.INSERT))
        if hairpin:
            rules.append(FwRule("nat", "POSTROUTING",
                                f"-o {bridge} -m addrtype --src-type LOCAL -j MASQUERADE",
                                RulePlacement.INSERT))
        rules += [
            icc_rule(bridge, icc),
            FwRule("filter", "FORWARD", f"-i {bridge} ! -o {bridge} -j ACCEPT",
                   RulePlacement.INSERT),
            FwRule("filter", "FORWARD", f"-o {bridge} -j DOCKER", RulePlacement.INSERT),
            FwRule("filter", "FORWARD",
                   f"-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                   RulePlacement.INSERT),
        ]
    rules += [
        FwRule("filter", STAGE1, f"-i {bridge} ! -o {bridge} -j {STAGE2}", RulePlacement.INSERT),
        FwRule("filter", STAGE2, f"-o {bridge} -j DROP", RulePlacement.INSERT),
    ]
    return of_family(rules, 6 if ":" in subnet else 4)


def icc_rule(bridge: str, icc: bool) -> FwRule:
    # Docker inserts the accept at the top but appends the drop at the end of FORWARD.
    if icc:
        return FwRule("filter", "FORWARD", f"-i {bridge} -o {bridge} -j ACCEPT",
                      RulePlacement.INSERT)
    return FwRule("filter", "FORWARD", f"-i {bridge} -o {bridge} -j DROP")


def port_rules(bridge: str, ip: str, ports: Sequence[PortBinding], *,
               hairpin: bool, ip6: str = "") -> list[FwRule]:
    """DNAT, accept and hairpin-masquerade rules for an endpoint's published ports; with the
    endpoint's IPv6 address `ip6`, the same in ip6tables for each port bound on every address
    (Docker binds `-p 8080:80` on 0.0.0.0 and ::, and DNATs the IPv6 one to the container's
    IPv6 address: `--to-destination [fd00:28::3]:80`)."""
    rules = []
    for port in ports:
        targets = [(4, ip, f"{ip}:{port.container_port}", 32)]
        if ip6 and port.host_ip == "0.0.0.0":
            targets.append((6, ip6, f"[{ip6}]:{port.container_port}", 128))
        for family, address, destination, bits in targets:
            rules += of_family(_port_rules(bridge, port, address, destination, bits,
                                           hairpin=hairpin), family)
    return rules


def _port_rules(bridge: str, port: PortBinding, address: str, destination: str, bits: int, *,
                hairpin: bool) -> list[FwRule]:
    proto = f"-p {port.proto} -m {port.proto}"
    dst = "" if port.host_ip == "0.0.0.0" else f"-d {port.host_ip}/32 "
    not_in = "" if hairpin else f"! -i {bridge} "
    return [
        FwRule("nat", DOCKER, f"{dst}{not_in}{proto} --dport {port.host_port} -j DNAT "
                              f"--to-destination {destination}"),
        FwRule("filter", DOCKER, f"-d {address}/{bits} ! -i {bridge} -o {bridge} {proto} "
                                 f"--dport {port.container_port} -j ACCEPT"),
        FwRule("nat", "POSTROUTING", f"-s {address}/{bits} -d {address}/{bits} {proto} "
                                     f"--dport {port.container_port} -j MASQUERADE"),
    ]
