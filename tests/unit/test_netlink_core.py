"""The shared netlink core: attribute packing and parsing, and error translation
(pure), plus one real request against the kernel of the test's own namespace."""

import errno
import socket
import struct

import pytest

from netdiag import netlink
from netdiag.errors import CollectError, KernelFeatureMissing, PermissionDenied

IFLA_IFNAME, IFLA_LINKINFO, IFLA_INFO_KIND = 3, 18, 1


def test_packed_attributes_parse_back_aligned_and_nested():
    name = netlink.pack_attr(IFLA_IFNAME, b"eth0\0")
    info = netlink.pack_nested(IFLA_LINKINFO, netlink.pack_attr(IFLA_INFO_KIND, b"veth\0"))
    data = name + info
    assert len(name) % 4 == 0 and len(data) % 4 == 0  # every attribute padded to 4 bytes
    attrs = netlink.attributes(data)
    assert netlink.cstring(attrs[IFLA_IFNAME]) == "eth0"
    assert netlink.cstring(netlink.attributes(attrs[IFLA_LINKINFO])[IFLA_INFO_KIND]) == "veth"
    # the nested flag is set on the wire and masked when parsing
    assert struct.unpack_from("=HH", info)[1] & netlink.NLA_F_NESTED


def test_a_truncated_attribute_is_cut_at_the_end_of_the_buffer():
    attrs = netlink.attributes(netlink.pack_attr(IFLA_IFNAME, b"eth0\0")[:6])
    assert attrs == {IFLA_IFNAME: b"et"}


@pytest.mark.parametrize("code, kind, words", [
    (errno.EPERM, PermissionDenied, "permission denied"),
    (errno.EPROTONOSUPPORT, KernelFeatureMissing, "the kernel lacks it"),
    (errno.ENOENT, CollectError, "No such file"),
])
def test_errors_are_translated_into_netdiag_kinds(code, kind, words):
    error = netlink.translated(code, "cannot read xfrm states", "No such file or directory")
    assert isinstance(error, kind)
    assert str(error).startswith("cannot read xfrm states: ") and words in str(error)


@pytest.mark.skipif(not hasattr(socket, "AF_NETLINK"), reason="needs Linux")
def test_a_route_dump_of_this_namespace_lists_loopback():
    RTM_GETLINK, RTM_NEWLINK = 18, 16
    ifinfomsg = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)
    answers = netlink.dump(netlink.NETLINK_ROUTE, RTM_GETLINK, ifinfomsg, "links")
    names = [netlink.cstring(netlink.attributes(body, 16).get(IFLA_IFNAME, b""))
             for kind, body in answers if kind == RTM_NEWLINK]
    assert "lo" in names
