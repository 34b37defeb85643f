"""Probes the TUI runs from the attached namespace: ping, DF ping sweep, TCP port, DNS query.

The user types one line (`ping 10.0.0.2`, `mtu 10.0.0.2`, `tcp 10.0.0.2 80`, `dns NAME
[SERVER]`); `parse` turns it into a Probe and `run` carries it out from inside the namespace
(called from a worker thread) and returns lines of text for the probes panel. The system
`ping` is used until netdiag/probe/ provides scapy probes; this module is the seam to switch.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass

from netdiag import netns
from netdiag.errors import UsageError
from netdiag.model import DnsConfig

USAGE = "ping HOST | mtu HOST | tcp HOST PORT | dns NAME [SERVER]"
IP_ICMP_OVERHEAD = 28  # IPv4 header + ICMP echo header: ping -s counts payload only


@dataclass(frozen=True, slots=True)
class Probe:
    kind: str  # ping, mtu, tcp, dns
    target: str
    port: int = 0
    server: str = ""

    @property
    def title(self) -> str:
        return " ".join(str(p) for p in (self.kind, self.target, self.port or "", self.server) if p)


def parse(line: str) -> Probe:
    words = line.split()
    if not words:
        raise UsageError(f"type a probe: {USAGE}")
    kind, args = words[0].lower(), words[1:]
    if kind in ("ping", "mtu") and len(args) == 1:
        return Probe(kind, args[0])
    if kind == "tcp" and len(args) == 2 and args[1].isdigit() and 0 < int(args[1]) < 65536:
        return Probe(kind, args[0], port=int(args[1]))
    if kind == "dns" and len(args) in (1, 2):
        return Probe(kind, args[0], server=args[1] if len(args) == 2 else "")
    raise UsageError(f"cannot read {line!r}: {USAGE}")


def run(probe: Probe, path: str, dns_config: DnsConfig | None = None) -> list[str]:
    with netns.entered(path):
        if probe.kind == "ping":
            return _ping(probe.target)
        if probe.kind == "mtu":
            return _df_sweep(probe.target)
        if probe.kind == "tcp":
            return [_tcp(probe.target, probe.port)]
        return _dns(probe.target, probe.server, dns_config or DnsConfig())


def _ping_once(target: str, size: int | None = None, count: int = 1) -> subprocess.CompletedProcess:
    argv = ["ping", "-n", "-c", str(count), "-W", "1", "-i", "0.2"]
    if size is not None:
        argv += ["-M", "do", "-s", str(size)]
    try:
        return subprocess.run(argv + [target], capture_output=True, text=True, timeout=count + 3)
    except FileNotFoundError:
        raise UsageError("ping is not installed (Debian package iputils-ping)") from None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 1, "", "no answer")


def _ping(target: str) -> list[str]:
    done = _ping_once(target, count=3)
    lines = [line for line in (done.stdout + done.stderr).splitlines()
             if "packet loss" in line or "rtt" in line or "ping:" in line]
    return lines or [f"no answer from {target}"]


def _df_sweep(target: str) -> list[str]:
    """Largest IPv4 packet with DF set that reaches `target`, by binary search on the size."""
    if _ping_once(target, size=0).returncode != 0:
        return [f"{target} does not answer small pings: no path MTU to measure"]
    low, high = 0, 9000 - IP_ICMP_OVERHEAD  # low always passes; find the largest that does
    while low < high:
        size = (low + high + 1) // 2
        if _ping_once(target, size=size).returncode == 0:
            low = size
        else:
            high = size - 1
    return [f"path MTU to {target}: {low + IP_ICMP_OVERHEAD} bytes "
            f"(largest DF ping payload {low})"]


def _tcp(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=2):
            return f"tcp {host}:{port}: open (connected)"
    except ConnectionRefusedError:
        return f"tcp {host}:{port}: closed (connection refused)"
    except TimeoutError:
        return f"tcp {host}:{port}: no answer within 2 s (filtered?)"
    except OSError as exc:
        return f"tcp {host}:{port}: {exc.strerror or exc}"


def _dns(name: str, server: str, config: DnsConfig) -> list[str]:
    import dns.exception
    import dns.resolver

    # A thread inside the namespace still reads the host's /etc/resolv.conf, so the
    # namespace's own nameservers come from its collected DnsConfig.
    servers = [server] if server else list(config.nameservers)
    if not servers:
        return ["no nameserver configured in this namespace (give one: dns NAME SERVER)"]
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = servers
    resolver.lifetime = 3.0
    try:
        answer = resolver.resolve(name, "A")
    except dns.exception.DNSException as exc:
        return [f"dns {name} via {', '.join(servers)}: {exc}"]
    return [f"dns {name} via {', '.join(servers)}: " + ", ".join(r.to_text() for r in answer)]
