"""Probes the TUI runs from the attached namespace: ping, DF ping sweep, TCP port, DNS query.

The user types one line (`ping 10.0.0.2`, `mtu 10.0.0.2`, `tcp 10.0.0.2:80`, `dns NAME
[SERVER]`; a destination is written as `netdiag path` takes it, DST[:PORT]); `parse` turns
it into a Probe and `run` carries it out from inside the namespace (called from a worker
thread) and returns lines of text for the probes panel. The DF sweep,
the TCP connect and the DNS query are netdiag/probe's, the same that `check --probe` runs;
a plain ping is the system `ping`, for its familiar loss and round-trip summary.

Targets obey the same scope as `check --probe` (netdiag/probe/scope.py): an address, or a
name as the attached namespace resolves it (Docker's embedded DNS or a lab's names, from the
snapshot's intent; a namespace's label), that a namespace netdiag read holds — unless the TUI
was started with `--probe-external`. Names are never looked up in the host's resolver.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from netdiag import netns
from netdiag.errors import UsageError
from netdiag.model import DnsProbe, NamespaceRef, PathMtuProbe, PortProbe, Snapshot

USAGE = "ping DST | mtu DST | tcp DST:PORT | dns NAME [SERVER]"


@dataclass(frozen=True, slots=True)
class Probe:
    kind: str  # ping, mtu, tcp, dns
    target: str
    port: int = 0
    server: str = ""

    @property
    def title(self) -> str:
        target = f"{_bracketed(self.target)}:{self.port}" if self.port else self.target
        return " ".join(p for p in (self.kind, target, self.server) if p)


def _bracketed(target: str) -> str:
    """An IPv6 address in brackets, so that a port can follow it (as `netdiag path` takes it)."""
    import ipaddress

    try:
        ipv6 = ipaddress.ip_address(target.partition("%")[0]).version == 6
    except ValueError:
        ipv6 = False  # a name, or a reference such as container:web
    return f"[{target}]" if ipv6 else target


def parse(line: str) -> Probe:
    words = line.split()
    if not words:
        raise UsageError(f"type a probe: {USAGE}")
    kind, args = words[0].lower(), words[1:]
    if kind in ("ping", "mtu") and len(args) == 1:
        return Probe(kind, args[0])
    if kind == "tcp" and len(args) == 2 and args[1].isdigit():
        raise UsageError(f"write the port as `netdiag path` takes it: tcp "
                         f"{_bracketed(args[0])}:{args[1]}")
    if kind == "tcp" and len(args) == 1:
        from netdiag.flows.names import split_port

        target, port = split_port(args[0])
        if port:
            return Probe(kind, target, port=port)
    if kind == "dns" and len(args) in (1, 2):
        return Probe(kind, args[0], server=args[1] if len(args) == 2 else "")
    raise UsageError(f"cannot read {line!r}: {USAGE}")


def run(probe: Probe, ref: NamespaceRef, snapshot: Snapshot, external: bool = False
        ) -> list[str]:
    """Carry out `probe` from inside `ref`, to a target inside `snapshot` (or anywhere, with
    `external`); lines of text for the probes panel."""
    from netdiag.probe import dns, pmtu, ports

    state = snapshot.namespace(ref.id)
    if probe.kind == "dns":
        # A thread inside the namespace still reads the host's /etc/resolv.conf, so the
        # namespace's own nameservers come from its collected DnsConfig.
        servers = [probe.server] if probe.server else list(state.dns.nameservers if state else ())
        if not servers:
            return ["no nameserver configured in this namespace (give one: dns NAME SERVER)"]
        targets = [_address(snapshot, ref, server) for server in servers]
    else:
        targets = [_address(snapshot, ref, probe.target)]
    refused = [why for why in (_outside(snapshot, ref, t) for t in targets) if why] \
        if not external else []
    if refused:
        return [f"not probed: {why} (start the TUI with --probe-external to allow it)"
                for why in refused]
    with netns.entered(ref.path):
        if probe.kind == "ping":
            return _ping(targets[0])
        if probe.kind == "mtu":
            return [_path_mtu_text(pmtu.sweep(ref.id, targets[0]))]
        if probe.kind == "tcp":
            return [_port_text(ports.connect(ref.id, targets[0], probe.port, timeout=2.0))]
        return [_dns_text(dns.query(ref.id, server, probe.target)) for server in targets]


def _address(snapshot: Snapshot, ref: NamespaceRef, target: str) -> str:
    """`target` itself when it is an address, else what it is called as seen from `ref`
    (netdiag/flows/names.py: Docker's and a lab's names, then namespaces)."""
    import ipaddress

    from netdiag.flows import names

    try:
        ipaddress.ip_address(target.partition("%")[0])
        return target
    except ValueError:
        pass
    try:
        address, _ = names.resolve(snapshot, ref.id, target)
    except UsageError:
        raise UsageError(f"{target!r} is neither an address nor a name {ref.display} resolves "
                         "(names are not looked up in the host's resolver)") from None
    return address


def placeholder(snapshot: Snapshot | None, ref: NamespaceRef) -> str:
    """Examples to type, made of this namespace's own neighbours: its gateway and a name it
    resolves."""
    from netdiag.model.facts import primary_address

    state = snapshot.namespace(ref.id) if snapshot else None
    if state is None:
        return USAGE
    gateway = next((r.gateway for r in state.routes if r.dst in ("default", "0.0.0.0/0")
                    and r.family == 4 and r.gateway), "")
    peer = next((other.ref.display for other in snapshot.namespaces
                 if other.ref.id != ref.id and other.ref.kind.value != "host"
                 and " " not in other.ref.display and primary_address(other)), "")
    examples = [e for e in (f"ping {gateway}" if gateway else "",
                            f"tcp {peer}:80" if peer else "",
                            f"mtu {gateway or peer}" if gateway or peer else "") if e]
    return "e.g. " + " · ".join(examples) if examples else USAGE


def _outside(snapshot: Snapshot, ref: NamespaceRef, address: str) -> str:
    from netdiag.model.index import index
    from netdiag.probe.scope import outside_reason

    return outside_reason(index(snapshot), ref.id, address)


def _ping(target: str) -> list[str]:
    argv = ["ping", "-n", "-c", "3", "-W", "1", "-i", "0.2", target]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise UsageError("ping is not installed (Debian package iputils-ping)") from None
    except subprocess.TimeoutExpired:
        return [f"no answer from {target} within 10 s"]
    lines = [line for line in (done.stdout + done.stderr).splitlines()
             if "packet loss" in line or "rtt" in line or "ping:" in line]
    return lines or [f"no answer from {target}"]


def _path_mtu_text(found: PathMtuProbe) -> str:
    if not found.answered:
        return f"{found.destination} does not answer DF pings: no path MTU to measure"
    limit = f" (limited by {found.limited_by})" if found.limited_by else ""
    return f"path MTU to {found.destination}: {found.mtu} bytes{limit}"


def _port_text(found: PortProbe) -> str:
    where = f"tcp {found.address}:{found.port}"
    return f"{where}: open (connected)" if found.open else f"{where}: closed ({found.error})"


def _dns_text(found: DnsProbe) -> str:
    where = f"dns {found.query} via {found.server}"
    return f"{where}: answered {found.rcode}" if found.answered else f"{where}: {found.error}"
