"""Reading the kernel's netnsid answers for `check --ns` wiring (recorded messages, no root)."""

import struct

from netdiag.collect.netnsids import NETNSA_NSID, RTM_NEWNSID, _parse_nsid


def message(kind: int, attrs: bytes) -> bytes:
    body = b"\0\0\0\0" + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 1, 0) + body


def test_answer_with_an_nsid():
    attr = struct.pack("=HHi", 8, NETNSA_NSID, 7)
    assert _parse_nsid(message(RTM_NEWNSID, attr)) == 7


def test_not_assigned_and_errors_and_garbage():
    assert _parse_nsid(message(RTM_NEWNSID, struct.pack("=HHi", 8, NETNSA_NSID, -1))) == -1
    assert _parse_nsid(message(2, struct.pack("=i", -22))) is None  # NLMSG_ERROR
    assert _parse_nsid(b"\x01\x02") is None
    assert _parse_nsid(message(RTM_NEWNSID, struct.pack("=HH", 0, NETNSA_NSID))) is None
