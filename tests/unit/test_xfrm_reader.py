"""The xfrm reader on recorded netlink answers (no root; this kernel cannot create ESP states).

The policy was recorded on this machine from `ip xfrm policy add src 10.0.0.1/32 dst
10.0.0.2/32 dir out tmpl src 10.0.0.1 dst 10.0.0.2 proto esp reqid 5 mode transport mark
0xD0C4E3`. The states are laid out as the kernel's copy_to_user_state() writes struct
xfrm_usersa_info and its algorithm attributes, with a recognisable key that must not survive.
"""

import socket
import struct

from netdiag.collect import xfrm
from netdiag.model import XfrmPolicy, XfrmState
from netdiag.model.serialize import to_data

RECORDED_POLICY = bytes.fromhex(
    "0a0000020000000000000000000000000a000001000000000000000000000000000000000000000002002020"
    "000000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000b169076b00000000000000000000000000000000010000000100000000000000440005000a00000200"
    "00000000000000000000000000000032000000020000000a0000010000000000000000000000000500000000"
    "000000ffffffffffffffffffffffff0a00100000000000000000000c001500e3c4d000ffffffff")

KEY = bytes.fromhex("0123456789abcdef0123456789abcdef01234567")


def nla(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def algorithm(name: str, key: bytes, icv_bits: int | None = None) -> bytes:
    head = name.encode().ljust(64, b"\0") + struct.pack("=I", len(key) * 8)
    if icv_bits is not None:  # struct xfrm_algo_aead has alg_icv_len before the key
        head += struct.pack("=I", icv_bits)
    return head + key


def usersa_info(src: str, dst: str, spi: int, proto: int, reqid: int, mode: int,
                family: int = socket.AF_INET) -> bytes:
    pack = socket.inet_pton
    body = bytearray(xfrm.SA_INFO_SIZE)
    body[56:56 + (4 if family == socket.AF_INET else 16)] = pack(family, dst)  # id.daddr
    struct.pack_into(">IB", body, 72, spi, proto)                            # id.spi, id.proto
    body[80:80 + (4 if family == socket.AF_INET else 16)] = pack(family, src)  # saddr
    struct.pack_into("=IHB", body, 208, reqid, family, mode)
    return bytes(body)


def test_recorded_policy():
    assert xfrm.parse_policy(RECORDED_POLICY) == XfrmPolicy(
        src="10.0.0.1/32", dst="10.0.0.2/32", direction="out", action="allow", proto=0,
        mark=0xD0C4E3, templates=("esp 10.0.0.1->10.0.0.2 reqid 5 mode transport",))


def test_docker_encrypted_overlay_state_keeps_the_algorithm_name_only():
    body = (usersa_info("192.168.1.10", "192.168.1.11", spi=0xC0FFEE, proto=50, reqid=0,
                        mode=0)
            + nla(xfrm.XFRMA_ALG_AEAD, algorithm("rfc4106(gcm(aes))", KEY, icv_bits=128))
            + nla(xfrm.XFRMA_MARK, struct.pack("=II", 0xD0C4E3, 0xFFFFFFFF)))
    state = xfrm.parse_state(body)
    assert state == XfrmState(src="192.168.1.10", dst="192.168.1.11", proto="esp",
                              spi=0xC0FFEE, mode="transport", reqid=0, mark=0xD0C4E3,
                              algorithms=("rfc4106(gcm(aes))",))
    assert KEY.hex() not in repr(to_data(state)) and "0123456789" not in repr(state)


def test_ipv6_tunnel_state_with_separate_cipher_and_authentication():
    body = (usersa_info("fd00::1", "fd00::2", spi=0x101, proto=50, reqid=7, mode=1,
                        family=socket.AF_INET6)
            + nla(xfrm.XFRMA_ALG_AUTH_TRUNC, algorithm("hmac(sha256)", KEY) + b"\0" * 4)
            + nla(xfrm.XFRMA_ALG_CRYPT, algorithm("cbc(aes)", KEY[:16])))
    state = xfrm.parse_state(body)
    assert (state.src, state.dst, state.mode, state.reqid) == ("fd00::1", "fd00::2", "tunnel", 7)
    assert state.algorithms == ("cbc(aes)", "hmac(sha256)")
    assert state.mark == 0
