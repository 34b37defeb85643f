"""Where `netdiag path SRC DST` sends to: DST as SRC would resolve it.

DST is an IPv4 address (optionally `:PORT`), an IPv6 address (`fd00::2`, `fe80::1%eth0`,
with a port `[fd00::2]:80`), a name Docker's embedded DNS answers for SRC (a container's name
or alias, or a service's, on a network SRC's container is on — its address on that network),
a name a netdiag lab's DNS answers for SRC (a lab node: likewise, from the lab's intent), or a
namespace reference (a lab node, a container, `inode:N`): that namespace's first global IPv4
address. Names and references take `:PORT` too. Asked for IPv6 (`path -6`, as `ping -6` and
`curl -6` take it), a name is its AAAA answer instead: a container's IPv6 address on the
network (what Docker's embedded DNS answers, and a lab's DNS for a lab node), a namespace's
first global IPv6 address; a name with only an IPv6 address is that address either way, as a
client given only an AAAA answer uses it.
"""

from __future__ import annotations

import re

from netdiag.errors import Ambiguous, NotFound, UsageError
from netdiag.model import Snapshot
from netdiag.model.facts import primary_address
from netdiag.model.index import ip_int, is_link_local_ipv6

# Namespace references whose value is a number: "inode:4026531840" has no port.
_NUMBERED_REFERENCES = ("pid", "inode")
# What only an IPv6 address (with its zone) is made of: such a DST that does not parse as
# one is a mistyped address, never a name (Docker's names and netdiag's references hold
# letters beyond a-f, or no colon).
_IPV6_LIKE = re.compile(r"[0-9A-Fa-f.]*(:[0-9A-Fa-f.]*){2,}(%\S*)?")


def split_port(text: str) -> tuple[str, int]:
    """DST as written → (address, name or reference; its port, 0 when none).

    "10.0.0.2", "10.0.0.2:80"; "db", "db:6379", "container:web:80"; "[fd00::2]:80",
    "[fd00::2]"; "fd00::2", "fe80::1%eth0". A bare IPv6 address has no port, its colons are
    its own ("fd00::2:80" is an address): with a port it is written in brackets.
    """
    if text.startswith("["):
        address, closed, rest = text[1:].partition("]")
        if not closed or not _ipv6(address) or rest[:1] not in ("", ":"):
            raise UsageError(f"{text}: write an IPv6 address with a port as [ADDRESS]:PORT, "
                             "e.g. [fd00::2]:80")
        return address, _port(text, rest[1:]) if rest else 0
    if _ipv6(text):
        return text, 0
    if _IPV6_LIKE.fullmatch(text):
        raise UsageError(f"{text} is not an IPv6 address (with a port, write [ADDRESS]:PORT, "
                         "e.g. [fd00::2]:80)")
    name, sep, port = text.rpartition(":")
    if sep and port.isdigit() and name and name not in _NUMBERED_REFERENCES:
        return name, _port(text, port)
    return text, 0


def _port(text: str, port: str) -> int:
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{text}: port {port or '(none)'} is not between 1 and 65535")
    return int(port)


def resolve(snapshot: Snapshot, source: int, name: str, family: int = 4) -> tuple[str, str]:
    """(address, how it was found) for `name` seen from namespace `source`: its A answer, or
    its AAAA answer with `family` 6."""
    if _ipv4(name) or _ipv6(name):
        return name, "address"
    # A lab node's names are its lab's: a container of the same name in some engine on the
    # machine, on no network of the node's, is not what it would reach by that name.
    state = snapshot.namespace(source)
    in_lab = state is not None and bool(state.ref.lab)
    found = (_lab(snapshot, source, name, family) if in_lab else None) or \
        _docker(snapshot, source, name, family, own_networks_only=in_lab)
    if found:
        return found
    # Imported here: importing any collect module loads every collector, which a check
    # that never asks for a name (`check --from`) does not need.
    from netdiag.collect import namespace_refs

    refs = [state.ref for state in snapshot.namespaces]
    try:
        ref = namespace_refs.resolve(name, refs, snapshot.docker)
    except Ambiguous:
        raise
    except (NotFound, UsageError):
        raise UsageError(f"cannot resolve {name!r} from {_label(snapshot, source)}: not an "
                         "IP address, a Docker or lab name on its networks, or a namespace"
                         ) from None
    state = snapshot.namespace(ref.id)
    address = (primary_address(state) or _primary_ipv6(state)) if family == 4 else \
        _primary_ipv6(state)
    if not address:
        raise UsageError(f"{ref.display} has no IPv{family} address to send to")
    return address, f"namespace {ref.display}"


def _primary_ipv6(state) -> str:
    """The namespace's first global IPv6 address on an interface that is up, or ""."""
    up = {link.name for link in state.links if link.up and link.kind != "loopback"}
    return next((a.address for a in state.addresses if a.family == 6 and a.ifname in up
                 and not is_link_local_ipv6(a.address) and "dadfailed" not in a.flags), "")


def _ipv4(text: str) -> bool:
    try:
        return ip_int(text)[0] == 4
    except ValueError:
        return False


def _ipv6(text: str) -> bool:
    address, _, zone = text.partition("%")
    if "%" in text and not zone:
        return False
    try:
        return ip_int(address)[0] == 6
    except ValueError:
        return False


def _label(snapshot: Snapshot, ns_id: int) -> str:
    state = snapshot.namespace(ns_id)
    return state.ref.display if state else f"inode:{ns_id}"


def _docker(snapshot: Snapshot, source: int, name: str, family: int = 4,
            own_networks_only: bool = False) -> tuple[str, str] | None:
    """A Docker name seen from `source`: a container's or service's on the networks of the
    source's own container; from a namespace that is no container, on any network (the
    host's view), unless `own_networks_only`."""
    for engine in snapshot.docker:
        mine = next((c for c in engine.containers if c.running and c.netns == source), None)
        if mine is None and own_networks_only:
            continue
        networks = {e.network_id for e in mine.endpoints} if mine else None
        for container in engine.containers:
            if not container.running:
                continue
            for endpoint in container.endpoints:
                if networks is not None and endpoint.network_id not in networks:
                    continue
                names = {container.name, *endpoint.aliases, container.id[:12]}
                ipv6 = endpoint.ipv6.split("/")[0]
                # an IPv6-only endpoint has only an AAAA answer, which the client then uses
                address = (endpoint.ip or ipv6) if family == 4 else ipv6
                if name in names and address:
                    return address, f"Docker: {container.name} on {endpoint.network}"
        for service in engine.services if family == 4 else ():  # VIPs are IPv4
            if service.name != name:
                continue
            for network_id, vip in service.vips:
                if networks is None or network_id in networks:
                    return vip.split("/")[0], f"Docker: service {service.name}'s VIP"
    return None


def _lab(snapshot: Snapshot, source: int, name: str, family: int = 4
         ) -> tuple[str, str] | None:
    """A lab name seen from `source`: its A answer on a network of the source's node, or its
    AAAA answer (the IPv6 address beside that IPv4 one, which the lab's DNS answers on a
    dual-stack network) with `family` 6."""
    state = snapshot.namespace(source)
    lab = next((lab for lab in snapshot.labs if state and lab.name == state.ref.lab), None)
    if lab is None:
        return None
    networks = lab.networks_of(state.ref.node)
    for record in lab.names:
        if record.name == name and record.network in networks:
            address = record.address if family == 4 else next(
                (found for node in snapshot.namespaces if node.ref.lab == lab.name
                 and (found := ipv6_beside(node, record.address))), "")
            if address:
                return address, f"lab {lab.name}: {name} on {record.network}"
    return None


def ipv6_beside(state, ipv4: str) -> str:
    """The global IPv6 address on the namespace's interface that holds `ipv4` (what a
    dual-stack network gives an endpoint beside its IPv4 address), or ""."""
    held = next((a for a in state.addresses if a.address == ipv4), None)
    return next((a.address for a in state.addresses if held is not None and a.family == 6
                 and a.ifname == held.ifname and a.scope == "global"
                 and "dadfailed" not in a.flags), "")
