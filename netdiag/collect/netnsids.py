"""Cross-namespace links resolved by netnsid: where a moved VXLAN or macvlan really hangs.

A veth, VXLAN or macvlan whose other side lives in another namespace names that namespace
only by a netnsid (IFLA_LINK_NETNSID), a number local to the namespace that reports it. The
kernel translates: RTM_GETNSID with a namespace's file descriptor, asked from inside the
reporting namespace, answers the netnsid it uses for it (and never assigns one). `resolve`
completes collected states with it for the links veth pairing (peers.py) left open: the VXLAN
device Docker moves into an overlay namespace is still routed in the namespace it was made in,
and a macvlan moved into a container still hangs off its parent on the host. Matching veth
interface indexes alone would be ambiguous on a busy host, where many pairs share them.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from netdiag import netns
from netdiag.model import Link, NamespaceRef, NamespaceState

RTM_NEWNSID, RTM_GETNSID = 88, 90
NETNSA_NSID, NETNSA_FD = 1, 3
NLM_F_REQUEST = 0x1
_HEADER = struct.Struct("=IHHII")
_ATTR = struct.Struct("=HH")


def resolve(collected: Sequence[NamespaceState]) -> list[NamespaceState]:
    """The states with `peer_namespace`/`peer_name` filled in for every link whose other
    side (veth peer, VXLAN underlay, macvlan parent) lives in another of these namespaces and
    that veth pairing left open."""
    refs = [state.ref for state in collected]
    by_id = {state.ref.id: state for state in collected}
    holders = _holders(collected)
    states = []
    for state in collected:
        open_links = [link for link in state.links
                      if link.parent_netnsid is not None and link.parent_netnsid >= 0
                      and link.peer_namespace is None]
        if open_links:
            candidates = _candidates(state.ref, open_links, holders, refs)
            mapping = translate(state.ref, {link.parent_netnsid for link in open_links}, candidates)
            links = tuple(_resolved(link, mapping, by_id) for link in state.links)
            if links != state.links:
                state = replace(state, links=links)
        states.append(state)
    return states


def _holders(collected: Sequence[NamespaceState]) -> dict[tuple, list[NamespaceRef]]:
    """Which namespaces could hold the other end of a veth: (ifindex, peer ifindex) → them."""
    holders: dict[tuple, list[NamespaceRef]] = defaultdict(list)
    for state in collected:
        for link in state.links:
            if link.kind == "veth":
                holders[(link.index, link.parent_index)].append(state.ref)
    return holders


def _candidates(ref: NamespaceRef, links: Sequence[Link], holders: dict[tuple, list],
                refs: Sequence[NamespaceRef]) -> list[NamespaceRef]:
    """The namespaces worth asking the kernel about: only those holding a link that could be
    the other side. Asking every namespace for every open link is quadratic on a big host
    whose veth peers are outside the snapshot (`check --ns` on containers alone)."""
    found: dict[int, NamespaceRef] = {}
    for link in links:
        if link.kind != "veth":  # VXLAN and macvlan lower devices are few: ask everyone
            return list(refs)
        key = (link.parent_index, link.index)
        found.update((r.id, r) for r in holders.get(key, ()) if r.id != ref.id)
    return list(found.values())


def _resolved(link: Link, mapping: dict[int, int], by_id: dict[int, NamespaceState]) -> Link:
    if link.peer_namespace is not None or link.parent_netnsid not in mapping:
        return link
    other_ns = mapping[link.parent_netnsid]
    other = by_id[other_ns].link_by_index(link.parent_index) if link.parent_index else None
    if link.kind == "veth" and (other is None or other.parent_index != link.index):
        return link  # not the pair it should be: leave it unresolved rather than wrong
    return replace(link, peer_namespace=other_ns, peer_name=other.name if other else "")


def translate(ref: NamespaceRef, netnsids: set[int], found: Sequence[NamespaceRef]
               ) -> dict[int, int]:
    """netnsid (as `ref` numbers them) → namespace id, for the netnsids asked for."""
    try:
        with netns.entered(ref.path):
            # The socket belongs to the namespace it was opened in, wherever it is used later.
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    except Exception:  # noqa: BLE001 - gone or not enterable: its wiring is simply unknown
        return {}
    result: dict[int, int] = {}
    try:
        sock.bind((0, 0))
        for sequence, candidate in enumerate(found, start=1):
            if candidate.id == ref.id:
                continue
            nsid = _netnsid_of(sock, candidate.path, sequence)
            if nsid in netnsids:
                result[nsid] = candidate.id
                if len(result) == len(netnsids):
                    break
    finally:
        sock.close()
    return result


def _netnsid_of(sock: socket.socket, path: str, sequence: int) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        body = b"\0\0\0\0" + _ATTR.pack(8, NETNSA_FD) + struct.pack("=I", fd)
        sock.send(_HEADER.pack(_HEADER.size + len(body), RTM_GETNSID, NLM_F_REQUEST,
                               sequence, 0) + body)
        data = sock.recv(4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _parse_nsid(data)


def _parse_nsid(data: bytes) -> int | None:
    if len(data) < _HEADER.size:
        return None
    length, kind, _, _, _ = _HEADER.unpack_from(data)
    if kind != RTM_NEWNSID:
        return None  # NLMSG_ERROR: not a namespace, or no id assigned
    offset = _HEADER.size + 4
    while offset + _ATTR.size <= min(length, len(data)):
        attr_len, attr_type = _ATTR.unpack_from(data, offset)
        if attr_len < _ATTR.size:
            return None
        if attr_type & 0x3FFF == NETNSA_NSID and attr_len >= 8:
            return struct.unpack_from("=i", data, offset + _ATTR.size)[0]
        offset += (attr_len + 3) & ~3
    return None
