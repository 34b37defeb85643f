"""What a sandbox needs to reach its resolver at 127.0.0.11: Docker's NAT rules and resolv.conf.

The resolver listens on random ports of 127.0.0.11 inside the sandbox; nat `DOCKER_OUTPUT`
DNATs udp/tcp port 53 to them and `DOCKER_POSTROUTING` SNATs the replies back to port 53, the
same chains and rules Docker writes. The nat table is rewritten in one iptables-restore
transaction (saved rules minus ours, plus ours), so installing twice or removing after a crash
leaves exactly one copy or none. All functions expect the calling thread to be inside the
sandbox (netns.entered).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from netdiag import helper, netns
from netdiag.drivers.common import device
from netdiag.rtnl_write import Rtnl

RESOLVER_IP = "127.0.0.11"
CHAINS = ("DOCKER_OUTPUT", "DOCKER_POSTROUTING")
RESOLV_CONF = f"nameserver {RESOLVER_IP}\noptions ndots:0\n"
NETNS_ETC = Path("/etc/netns")


def nat_rules(udp_port: int, tcp_port: int) -> list[str]:
    """Docker's rules, as iptables-save prints them, for the ports actually served."""
    dst = f"-d {RESOLVER_IP}/32"
    src = f"-s {RESOLVER_IP}/32"
    return [
        f"-A OUTPUT {dst} -j DOCKER_OUTPUT",
        f"-A POSTROUTING {dst} -j DOCKER_POSTROUTING",
        f"-A DOCKER_OUTPUT {dst} -p tcp -m tcp --dport 53 -j DNAT "
        f"--to-destination {RESOLVER_IP}:{tcp_port}",
        f"-A DOCKER_OUTPUT {dst} -p udp -m udp --dport 53 -j DNAT "
        f"--to-destination {RESOLVER_IP}:{udp_port}",
        f"-A DOCKER_POSTROUTING {src} -p tcp -m tcp --sport {tcp_port} -j SNAT --to-source :53",
        f"-A DOCKER_POSTROUTING {src} -p udp -m udp --sport {udp_port} -j SNAT --to-source :53",
    ]


def _ours(line: str) -> bool:
    return any(chain in line.split() or line.startswith(f":{chain} ") for chain in CHAINS)


def _rewrite_nat(rules: list[str]) -> None:
    saved = helper.run(["iptables-save", "-t", "nat"]).splitlines()
    kept = [line for line in saved if line.strip() and not line.startswith("#")
            and not _ours(line)]
    if "*nat" not in kept:
        kept = ["*nat", "COMMIT"]
    chains = [f":{chain} - [0:0]" for chain in CHAINS] if rules else []
    commit = kept.index("COMMIT")
    text = "\n".join(kept[:commit] + chains + rules + kept[commit:]) + "\n"
    with tempfile.NamedTemporaryFile("w", prefix="netdiag-dns-", suffix=".rules") as file:
        file.write(text)
        file.flush()
        helper.run(["iptables-restore", file.name])


def install_nat(udp_port: int, tcp_port: int) -> None:
    _rewrite_nat(nat_rules(udp_port, tcp_port))


def remove_nat() -> None:
    _rewrite_nat([])


def loopback_up() -> None:
    """127.0.0.11 can only be bound once lo is up (its local route comes with it). A plain
    netlink socket (the bridge driver's Rtnl): opening pyroute2's IPRoute costs ~4 ms."""
    with Rtnl() as rt:
        device.loopback_up(rt)


def resolv_conf_path(namespace_path: str) -> Path | None:
    """/etc/netns/NAME/resolv.conf for named namespaces (what `ip netns exec` applies)."""
    path = Path(namespace_path)
    if path.parent != netns.NAMED_DIR:
        return None
    return NETNS_ETC / path.name / "resolv.conf"


def write_resolv_conf(namespace_path: str) -> None:
    target = resolv_conf_path(namespace_path)
    if target is None:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(RESOLV_CONF)


def remove_resolv_conf(namespace_path: str) -> None:
    target = resolv_conf_path(namespace_path)
    if target is None:
        return
    target.unlink(missing_ok=True)
    try:
        os.rmdir(target.parent)  # only if nothing else lives there
    except OSError:
        pass
