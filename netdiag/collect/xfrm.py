"""Collector: IPsec (xfrm) states and policies — the encrypted overlay's plumbing.

Read with two netlink dumps on NETLINK_XFRM in the namespace (no helper program: `ip xfrm`
has no JSON output, and the dumps cost microseconds where most namespaces have nothing). The
kernel's structs are decoded field by field; of each algorithm only the name is read, so keys
never leave the kernel's answer buffer and are never stored.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from netdiag import netlink
from netdiag.model import XfrmPolicy, XfrmState

NAME = "xfrm"

XFRM_MSG_GETSA = 0x12
XFRM_MSG_GETPOLICY = 0x15

# struct xfrm_usersa_info / xfrm_userpolicy_info sizes (x86-64 and every 64-bit ABI: u64
# lifetimes align the structs to 8), and attribute types from include/uapi/linux/xfrm.h.
SA_INFO_SIZE = 224
POLICY_INFO_SIZE = 168
XFRMA_ALG_AUTH, XFRMA_ALG_CRYPT, XFRMA_ALG_COMP = 1, 2, 3
XFRMA_TMPL = 5
XFRMA_ALG_AEAD = 18
XFRMA_ALG_AUTH_TRUNC = 20
XFRMA_MARK = 21
_ALGORITHM_ATTRS = (XFRMA_ALG_AEAD, XFRMA_ALG_CRYPT, XFRMA_ALG_AUTH_TRUNC, XFRMA_ALG_AUTH,
                    XFRMA_ALG_COMP)
_ALGORITHM_NAME_BYTES = 64  # char alg_name[64], followed by the key we never read
_TEMPLATE_SIZE = 64

PROTOCOLS = {50: "esp", 51: "ah", 108: "comp"}
MODES = {0: "transport", 1: "tunnel", 2: "ro", 3: "in_trigger", 4: "beet"}
DIRECTIONS = {0: "in", 1: "out", 2: "fwd"}
ACTIONS = {0: "allow", 1: "block"}


def collect(ctx) -> dict:
    states = netlink.dump(netlink.NETLINK_XFRM, XFRM_MSG_GETSA, b"", "xfrm states", ctx)
    policies = netlink.dump(netlink.NETLINK_XFRM, XFRM_MSG_GETPOLICY, b"", "xfrm policies",
                            ctx)
    return {"xfrm_states": tuple(parse_state(body) for _kind, body in states),
            "xfrm_policies": tuple(parse_policy(body) for _kind, body in policies)}


def _address(raw: bytes, family: int) -> str:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    return str(ipaddress.IPv6Address(raw[:16]))


def _selector(body: bytes) -> tuple[str, str, int]:
    """struct xfrm_selector at the start of `body` → ("src/len", "dst/len", IP protocol)."""
    family, prefix_dst, prefix_src, proto = struct.unpack_from("=HBBB", body, 40)
    return (f"{_address(body[16:32], family)}/{prefix_src}",
            f"{_address(body[0:16], family)}/{prefix_dst}", proto)


def _mark(attrs: dict[int, bytes]) -> int:
    return struct.unpack_from("=I", attrs[XFRMA_MARK])[0] if XFRMA_MARK in attrs else 0


def parse_state(body: bytes) -> XfrmState:
    """One XFRM_MSG_NEWSA answer → XfrmState, with algorithm names and no keys."""
    spi, proto = struct.unpack_from(">IB", body, 72)
    reqid, family, mode = struct.unpack_from("=IHB", body, 208)
    attrs = netlink.attributes(body, SA_INFO_SIZE)
    algorithms = tuple(netlink.cstring(attrs[kind][:_ALGORITHM_NAME_BYTES])
                       for kind in _ALGORITHM_ATTRS if kind in attrs)
    return XfrmState(src=_address(body[80:96], family), dst=_address(body[56:72], family),
                     proto=PROTOCOLS.get(proto, str(proto)), spi=spi,
                     mode=MODES.get(mode, str(mode)), reqid=reqid, mark=_mark(attrs),
                     algorithms=algorithms)


def parse_policy(body: bytes) -> XfrmPolicy:
    """One XFRM_MSG_NEWPOLICY answer → XfrmPolicy with its templates as readable text."""
    src, dst, proto = _selector(body)
    direction, action = struct.unpack_from("=BB", body, 160)
    attrs = netlink.attributes(body, POLICY_INFO_SIZE)
    raw = attrs.get(XFRMA_TMPL, b"")
    templates = tuple(_template(raw[i:i + _TEMPLATE_SIZE])
                      for i in range(0, len(raw) - _TEMPLATE_SIZE + 1, _TEMPLATE_SIZE))
    return XfrmPolicy(src=src, dst=dst, direction=DIRECTIONS.get(direction, str(direction)),
                      action=ACTIONS.get(action, str(action)), proto=proto, mark=_mark(attrs),
                      templates=templates)


def _template(raw: bytes) -> str:
    """struct xfrm_user_tmpl → "esp 10.0.0.1->10.0.0.2 reqid 5 mode transport"."""
    (proto,) = struct.unpack_from("=B", raw, 20)
    (family,) = struct.unpack_from("=H", raw, 24)
    reqid, mode = struct.unpack_from("=IB", raw, 44)
    return (f"{PROTOCOLS.get(proto, str(proto))} {_address(raw[28:44], family)}->"
            f"{_address(raw[0:16], family)} reqid {reqid} mode {MODES.get(mode, str(mode))}")
