"""Collector: the DNS setup the namespace's processes actually use.

Which resolv.conf applies depends on how processes got into the namespace, not on the network
namespace itself (a thread that entered it still reads the host's /etc/resolv.conf):

* a named namespace with /etc/netns/NAME/resolv.conf: `ip netns exec` bind-mounts that file;
* a namespace with processes (a Docker container): their own root's /etc/resolv.conf;
* otherwise the host's /etc/resolv.conf.

Docker's embedded DNS (127.0.0.11) is recognised from the NAT rules the firewall collector read
just before: DOCKER_OUTPUT DNATs udp and tcp port 53 to the ports the daemon listens on.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from netdiag.model import DnsConfig, EmbeddedDns, Firewall, NamespaceRef, NsKind

NAME = "dns"

ETC_NETNS = Path("/etc/netns")
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
EMBEDDED_ADDRESS = "127.0.0.11"
_OUR_ROOT = Path("/")
_SYMLINK_HOPS = 8


def collect(ctx) -> dict:
    source, text = read_resolv_conf(ctx.ref)
    firewall = ctx.found.get("firewall") or Firewall()
    return {"dns": replace(parse_resolv_conf(text, source), embedded=embedded_dns(firewall))}


def candidates(ref: NamespaceRef, etc_netns: Path = ETC_NETNS,
               host: Path = HOST_RESOLV_CONF) -> list[tuple[Path, Path]]:
    """(root, path inside it) pairs to try, most specific first."""
    found: list[tuple[Path, Path]] = []
    if ref.kind in (NsKind.NAMED, NsKind.LAB) and ref.name:
        found.append((_OUR_ROOT, etc_netns / ref.name / "resolv.conf"))
    found.extend((Path(f"/proc/{pid}/root"), host) for pid in ref.pids)
    found.append((_OUR_ROOT, host))
    return found


def read_resolv_conf(ref: NamespaceRef, etc_netns: Path = ETC_NETNS,
                     host: Path = HOST_RESOLV_CONF) -> tuple[str, str]:
    """(the path that was read, its text); ("", "") when there is none."""
    for root, path in candidates(ref, etc_netns, host):
        try:
            real = path if root == _OUR_ROOT else _resolve_in_root(root, path)
            with open(real, errors="replace") as f:
                return str(real), f.read()
        except OSError:  # missing, a process that ended, a dangling link: try the next
            continue
    return "", ""


def _resolve_in_root(root: Path, path: Path) -> Path:
    """`path` under `root`, following absolute symlinks inside `root` rather than ours.

    /proc/PID/root/etc/resolv.conf is often a link to /run/...: the kernel would resolve
    that against netdiag's root, and read the host's file instead of the container's.
    """
    inside = path
    for _ in range(_SYMLINK_HOPS):
        full = root / inside.relative_to("/")
        if not full.is_symlink():
            return full
        target = Path(os.readlink(full))
        inside = target if target.is_absolute() else inside.parent / target
    raise OSError(f"{root / path}: too many levels of symbolic links")


def parse_resolv_conf(text: str, source: str = "") -> DnsConfig:
    """resolv.conf text → DnsConfig (without embedded DNS), as glibc reads it."""
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        keyword, values = words[0], words[1:]
        if keyword == "nameserver" and values:
            nameservers.append(values[0])
        elif keyword in ("search", "domain"):
            search = values  # the last search or domain line wins
        elif keyword == "options":
            options.extend(values)
    return DnsConfig(source=source, nameservers=tuple(nameservers), search=tuple(search),
                     options=tuple(options))


def embedded_dns(firewall: Firewall) -> EmbeddedDns | None:
    """Docker's embedded-DNS DNAT rules (nat DOCKER_OUTPUT) → the ports they lead to."""
    ports = {"udp": 0, "tcp": 0}
    for rule in firewall.iptables_rules:
        if rule.table != "nat" or rule.chain != "DOCKER_OUTPUT" or rule.target != "DNAT":
            continue
        destination, protocol, dport = (rule.match(o) for o in ("destination", "protocol",
                                                                "dport"))
        if (destination is None or destination.value.split("/")[0] != EMBEDDED_ADDRESS
                or protocol is None or protocol.value not in ports
                or dport is None or dport.value != "53"):
            continue
        address, _, port = rule.target_option("to-destination").rpartition(":")
        if address == EMBEDDED_ADDRESS and port.isdigit():
            ports[protocol.value] = int(port)
    if not any(ports.values()):
        return None
    return EmbeddedDns(address=EMBEDDED_ADDRESS, udp_port=ports["udp"], tcp_port=ports["tcp"])
