"""docker-bridge-broken: a Docker bridge network's bridge is missing, down, or lacks its gateway
address.

What it finds
    For every network of the bridge driver, in the namespace its engine runs in: the bridge
    (`docker0`, `br-<id>` or the `com.docker.network.bridge.name` option) is missing or set
    down; it does not hold the gateway address Docker gave the network (a network manager
    that "manages" docker0 flushed it; someone ran `ip addr flush`). MTUs are left to
    mtu-mismatch: Docker 20.10 sets the network's MTU on the veths, not on the bridge, whose
    own MTU then follows its ports.

    Docker versions: every layout alike (20.10, 28, 29's nftables backend): it reads links
    and addresses, never the firewall. A network in Docker 28's `isolated` gateway mode has
    no gateway address on its bridge by design and is not asked for one.

Why it matters
    The bridge is the containers' default gateway and their switch. Without its address
    nothing leaves the network (no ARP answer for the gateway); down, containers on it cannot
    even reach each other. Docker does not notice: `docker network inspect` keeps showing
    the network as it was.

Example
    ND911 docker-bridge-broken  host: br-5e1c9a2f3b4d
      network web (172.18.0.0/16): br-5e1c9a2f3b4d does not hold the gateway 172.18.0.1
      that Docker gave the network: containers on it cannot leave it
      repair (unsafe): Give the bridge its gateway address back
        $ ip address add 172.18.0.1/16 dev br-5e1c9a2f3b4d

Repair
    Give the address back (unsafe: it changes a shared device) or set the bridge up; then
    find what removed it — a NetworkManager or systemd-networkd profile matching docker0 or
    br-* should leave those devices unmanaged. A missing bridge comes back when the daemon
    restarts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from netdiag.findings.finding import Evidence, Finding, Severity
from netdiag.findings.repair import AddAddress, ManualStep, Repair, Safety, SetLinkUp
from netdiag.findings.rule import CheckConfig, Rule
from netdiag.model import NamespaceState, Snapshot, intent
from netdiag.model.docker import DockerEngine, DockerNetwork

RULE = Rule(code="ND911", name="docker-bridge-broken", severity=Severity.ERROR,
            summary="a Docker bridge network's bridge is missing, down or lacks its gateway "
                    "address")


def check(snapshot: Snapshot, config: CheckConfig) -> Iterator[Finding]:
    for engine, host in intent.engines(snapshot):
        for network in intent.bridge_networks(engine):
            yield from _bridge(engine, host, network)


def _bridge(engine: DockerEngine, host: NamespaceState, network: DockerNetwork
            ) -> Iterator[Finding]:
    name = intent.bridge_name(network)
    ns_id = host.ref.id
    said = Evidence(f"{intent.who(engine)}: network {network.name} ({network.id[:12]}) uses "
                    f"bridge {name}, {', '.join(_ipam_text(network))}", ns_id, "docker",
                    network.name)
    link = host.link(name)
    where = f"network {network.name} ({', '.join(i.subnet for i in network.ipam)})"
    if link is None:
        yield RULE.finding(
            host.ref, name, f"{where}: its bridge {name} is missing from {host.ref.display}: "
                            "containers on it have no switch and no gateway",
            evidence=[said, Evidence(f"no device {name}", ns_id, "link", name)],
            repair=Repair("Let Docker make the bridge again", Safety.MANUAL, (ManualStep(
                "restart the Docker daemon (it creates the bridges of its networks)", ns_id),)))
        return
    if not link.admin_up:
        yield RULE.finding(
            host.ref, name, f"{where}: its bridge {name} is down: containers on it cannot "
                            "reach each other or leave the network",
            evidence=[said, Evidence(f"{name} is DOWN", ns_id, "link", name)],
            repair=Repair(f"Set {name} up", Safety.SAFE, (SetLinkUp(ns_id, name),)))
    if intent.gateway_mode(network) == "isolated":
        return  # Docker gives the bridge no address in this mode: there is no gateway to hold
    held = {a.address for a in host.addresses if a.ifname == name}
    for ipam in network.ipam:
        if not ipam.gateway or ipaddress.ip_address(ipam.gateway).version != 4 or \
                ipam.gateway in held:
            continue
        prefix = ipaddress.ip_network(ipam.subnet, strict=False).prefixlen
        cidr = f"{ipam.gateway}/{prefix}"
        have = ", ".join(sorted(held)) or "no address"
        yield RULE.finding(
            host.ref, name, f"{where}: {name} does not hold the gateway {ipam.gateway} that "
                            "Docker gave the network: containers on it cannot leave it",
            evidence=[said, Evidence(f"{name} has {have}", ns_id, "address", name)],
            repair=Repair("Give the bridge its gateway address back", Safety.UNSAFE,
                          (AddAddress(ns_id, name, cidr),)))


def _ipam_text(network: DockerNetwork) -> list[str]:
    return [f"subnet {i.subnet} gateway {i.gateway}" if i.gateway else f"subnet {i.subnet}"
            for i in network.ipam]
