"""Which namespaces the attached namespace is wired to, asked of its own kernel view.

A veth whose peer lives elsewhere reports IFLA_LINK_NETNSID, an id that only means something
inside the reporting namespace. Rather than guess the peer from interface indexes across every
namespace on the host (ambiguous on a busy host, where many fresh namespaces have a veth 2
paired with another veth 2), this module asks the attached namespace's kernel, one RTM_GETNSID
per candidate namespace, which id it gave that namespace. The query only reads: the kernel
does not allocate an id for a namespace that has none.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable

from netdiag import netns
from netdiag.collect.rtnl import NLMSG_HEADER, S32, U32, parse_attrs
from netdiag.errors import NetdiagError
from netdiag.model import NamespaceRef

NLM_F_REQUEST = 0x1
NLMSG_ERROR = 2
RTM_NEWNSID, RTM_GETNSID = 88, 90
NETNSA_NSID, NETNSA_FD = 1, 3
RTGENMSG = struct.Struct("=B3x")  # rtgen_family, padded to 4 bytes
ATTR_HEADER = struct.Struct("=HH")


def _nsid_request(sock: socket.socket, fd: int, sequence: int) -> int | None:
    attr = ATTR_HEADER.pack(ATTR_HEADER.size + U32.size, NETNSA_FD) + U32.pack(fd)
    body = RTGENMSG.pack(socket.AF_UNSPEC) + attr
    sock.send(NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), RTM_GETNSID, NLM_F_REQUEST,
                                sequence, 0) + body)
    data = sock.recv(4096)
    length, kind, _, _, _ = NLMSG_HEADER.unpack_from(data)
    if kind != RTM_NEWNSID:
        return None
    attrs = parse_attrs(data, NLMSG_HEADER.size + RTGENMSG.size, length)
    nsid = S32.unpack(attrs[NETNSA_NSID])[0] if NETNSA_NSID in attrs else -1
    return nsid if nsid >= 0 else None


def nsids(ref: NamespaceRef, candidates: Iterable[NamespaceRef]) -> dict[int, int]:
    """netnsid (as `ref` numbers it) → namespace id, for the candidates `ref` has an id for."""
    found: dict[int, int] = {}
    with netns.entered(ref.path):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        sock.bind((0, 0))
        sock.settimeout(1.0)
        for sequence, other in enumerate(candidates, start=1):
            if other.id == ref.id:
                continue
            try:
                fd = os.open(other.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # gone meanwhile, or not ours to open
                continue
            try:
                nsid = _nsid_request(sock, fd, sequence)
            finally:
                os.close(fd)
            if nsid is not None:
                found[nsid] = other.id
    finally:
        sock.close()
    return found


def peer_netnsids(ref: NamespaceRef) -> set[int]:
    """The netnsids that `ref`'s veths name as where their peers live."""
    from netdiag.collect import Context, links

    ctx = Context(ref)
    with netns.entered(ref.path):
        try:
            found = links.collect(ctx)
        finally:
            ctx.close()
    return {link.parent_netnsid for link in found.get("links", ())
            if link.kind == "veth" and link.parent_netnsid is not None}


def wired_to(ref: NamespaceRef, candidates: Iterable[NamespaceRef]) -> set[int]:
    """Ids of the namespaces that hold the peers of `ref`'s veths (empty if it cannot tell)."""
    try:
        wanted = peer_netnsids(ref)
        if not wanted:
            return set()
        return {ns_id for nsid, ns_id in nsids(ref, candidates).items() if nsid in wanted}
    except (NetdiagError, OSError):
        return set()

