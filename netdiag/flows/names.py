"""Where `netdiag path SRC DST` sends to: DST as SRC would resolve it.

DST is an IPv4 address (optionally `:PORT`), a name Docker's embedded DNS answers for SRC (a
container's name or alias, or a service's, on a network SRC's container is on — its address
on that network), a name a netdiag lab's DNS answers for SRC (a lab node: likewise, from the
lab's intent), or a namespace reference (a lab node, a container, `inode:N`): that
namespace's first global IPv4 address.
"""

from __future__ import annotations

from netdiag import netns
from netdiag.checks.topology import ip_int
from netdiag.errors import NotFound, UsageError
from netdiag.model import Snapshot
from netdiag.probe.plan import primary_address


def split_port(text: str) -> tuple[str, int]:
    """"db:6379" → ("db", 6379); "10.0.0.2" → ("10.0.0.2", 0)."""
    name, sep, port = text.rpartition(":")
    if sep and port.isdigit() and name:
        if not 0 < int(port) < 65536:
            raise UsageError(f"{text}: port {port} is not between 1 and 65535")
        return name, int(port)
    return text, 0


def resolve(snapshot: Snapshot, source: int, name: str) -> tuple[str, str]:
    """(address, how it was found) for `name` seen from namespace `source`."""
    if _ipv4(name):
        return name, "address"
    found = _docker(snapshot, source, name) or _lab(snapshot, source, name)
    if found:
        return found
    refs = [state.ref for state in snapshot.namespaces]
    try:
        ref = netns.resolve(name, refs)
    except (NotFound, UsageError):
        raise UsageError(f"cannot resolve {name!r} from {_label(snapshot, source)}: not an "
                         "IPv4 address, a Docker or lab name on its networks, or a namespace"
                         ) from None
    address = primary_address(snapshot.namespace(ref.id))
    if not address:
        raise UsageError(f"{ref.display} has no IPv4 address to send to")
    return address, f"namespace {ref.display}"


def _ipv4(text: str) -> bool:
    try:
        return ip_int(text)[0] == 4
    except ValueError:
        return False


def _label(snapshot: Snapshot, ns_id: int) -> str:
    state = snapshot.namespace(ns_id)
    return state.ref.display if state else f"inode:{ns_id}"


def _docker(snapshot: Snapshot, source: int, name: str) -> tuple[str, str] | None:
    for engine in snapshot.docker:
        mine = next((c for c in engine.containers if c.running and c.netns == source), None)
        networks = {e.network_id for e in mine.endpoints} if mine else None
        for container in engine.containers:
            if not container.running:
                continue
            for endpoint in container.endpoints:
                if networks is not None and endpoint.network_id not in networks:
                    continue
                names = {container.name, *endpoint.aliases, container.id[:12]}
                if name in names and endpoint.ip:
                    return endpoint.ip, f"Docker: {container.name} on {endpoint.network}"
        for service in engine.services:
            if service.name != name:
                continue
            for network_id, vip in service.vips:
                if networks is None or network_id in networks:
                    return vip.split("/")[0], f"Docker: service {service.name}'s VIP"
    return None


def _lab(snapshot: Snapshot, source: int, name: str) -> tuple[str, str] | None:
    state = snapshot.namespace(source)
    lab = next((lab for lab in snapshot.labs if state and lab.name == state.ref.lab), None)
    if lab is None:
        return None
    networks = lab.networks_of(state.ref.node)
    for record in lab.names:
        if record.name == name and record.network in networks:
            return record.address, f"lab {lab.name}: {name} on {record.network}"
    return None
