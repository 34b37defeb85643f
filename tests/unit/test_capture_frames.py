"""The capture's pure parts: frames parsed (VLAN, VXLAN looked into, IPv6, raw IP), the flow's
frames told from others through NAT, where the model expects the packet last, the pcapng file
(read back by tcpdump when it is installed), and ctnetlink's conntrack entries decoded."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess

import pytest

from netdiag import netlink
from netdiag.collect import conntrack
from netdiag.flows.packet import (
    DELIVERED,
    TOO_BIG,
    Drop,
    Flow,
    Hop,
    Packet,
    PathResult,
    Trace,
)
from netdiag.model import NamespaceRef, NsKind
from netdiag.probe import capture

A = NamespaceRef(1, NsKind.NAMED, "/run/netns/a", label="a")
R = NamespaceRef(2, NsKind.NAMED, "/run/netns/r", label="r")
B = NamespaceRef(3, NsKind.NAMED, "/run/netns/b", label="b")
MAC = bytes(6)


def ipv4(src: str, dst: str, proto: int, body: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + body


def ethernet(packet: bytes, ethertype: int = 0x0800) -> bytes:
    return MAC + MAC + struct.pack("!H", ethertype) + packet


def tcp(sport: int, dport: int) -> bytes:
    return struct.pack("!HHIIHHHH", sport, dport, 0, 0, 0x5002, 0, 0, 0)


def test_parse_reads_ethernet_vlan_ipv6_raw_and_looks_into_vxlan():
    inner = ethernet(ipv4("10.0.9.2", "10.0.9.3", 6, tcp(5000, 6379)))
    vxlan = struct.pack("!HHHH", 40000, 4789, 8 + 8 + len(inner), 0) + bytes(8) + inner
    outer = ethernet(ipv4("10.99.0.1", "10.99.0.2", 17, vxlan))
    assert capture.parse(outer, capture.LINKTYPE_ETHERNET) == \
        capture.Seen("10.0.9.2", "10.0.9.3", "tcp", 5000, 6379)
    tagged = MAC + MAC + struct.pack("!HHH", 0x8100, 7, 0x0800) + \
        ipv4("10.0.0.1", "10.0.0.2", 1, bytes([8, 0, 0, 0]))
    assert capture.parse(tagged, capture.LINKTYPE_ETHERNET).icmp_type == 8
    six = struct.pack("!IHBB16s16s", 6 << 28, 8, 17, 64, socket.inet_pton(socket.AF_INET6,
                      "fd00::1"), socket.inet_pton(socket.AF_INET6, "fd00::2")) + \
        struct.pack("!HHHH", 53, 5353, 8, 0)
    assert capture.parse(six, capture.LINKTYPE_RAW) == \
        capture.Seen("fd00::1", "fd00::2", "udp", 53, 5353)
    assert capture.parse(ethernet(b"\0" * 28, 0x0806), capture.LINKTYPE_ETHERNET) is None  # ARP
    assert capture.parse(b"\x45", capture.LINKTYPE_RAW) is None


def _result(drop: Drop | None = None, hops: tuple[Hop, ...] | None = None) -> PathResult:
    sent = Packet("10.0.1.1", "10.0.1.2", "tcp", 43210, 8080)
    after = Packet("10.0.1.1", "10.0.2.2", "tcp", 43210, 80)
    hops = hops or (Hop(A, "", "va"), Hop(R, "vr", "vr2"), Hop(B, "vb", ""))
    forward = Trace(TOO_BIG if drop else DELIVERED, hops, drop,
                    translations=(("dnat", sent, after),))
    reply = None if drop else Trace(DELIVERED, (Hop(B, "", "vb"), Hop(R, "vr2", "vr"),
                                                Hop(A, "va", "")))
    return PathResult(Flow(A, sent), forward, reply)


def test_the_flows_frames_are_told_apart_through_nat_whatever_the_source_port():
    matcher = capture.Matcher.of(_result())
    assert matcher.direction(capture.Seen("10.0.1.1", "10.0.1.2", "tcp", 51000, 8080)) == \
        "forward"
    assert matcher.direction(capture.Seen("10.0.1.1", "10.0.2.2", "tcp", 51000, 80)) == \
        "forward"  # after the DNAT
    assert matcher.direction(capture.Seen("10.0.2.2", "10.0.1.1", "tcp", 80, 51000)) == "reply"
    assert matcher.direction(capture.Seen("10.0.1.2", "10.0.1.1", "tcp", 8080, 51000)) == \
        "reply"
    assert matcher.direction(capture.Seen("10.0.1.1", "10.0.2.2", "tcp", 51000, 81)) == ""
    assert matcher.direction(capture.Seen("10.0.1.1", "10.0.2.2", "udp", 51000, 80)) == ""


def test_where_the_model_expects_the_packet_last():
    delivered = _result()
    found = capture.points(delivered)
    assert [p.name for p in found] == ["a:va", "r:vr", "r:vr2", "b:vb"]
    assert found[capture.expected_last(delivered, found)].name == "b:vb"
    # dropped in the last hop (a firewall in r): seen coming in, not going out
    in_r = _result(Drop(R, "filter/FORWARD", "denied"), (Hop(A, "", "va"), Hop(R, "vr", "vr2")))
    found = capture.points(in_r)
    assert found[capture.expected_last(in_r, found)].name == "r:vr"
    # dropped at the next namespace (the veth's peer too small): it did leave r
    at_b = _result(Drop(B, "vb", "too big"), (Hop(A, "", "va"), Hop(R, "vr", "vr2")))
    assert found[capture.expected_last(at_b, capture.points(at_b))].name == "r:vr2"
    # dropped where it starts: seen nowhere
    at_a = _result(Drop(A, "route", "no route"), (Hop(A, "", "va"),))
    assert capture.expected_last(at_a, capture.points(at_a)) is None


def _blocks(data: bytes) -> list[tuple[int, bytes]]:
    found, offset = [], 0
    while offset < len(data):
        kind, length = struct.unpack_from("=II", data, offset)
        assert length % 4 == 0 and struct.unpack_from("=I", data, offset + length - 4)[0] == \
            length
        found.append((kind, data[offset + 8:offset + length - 4]))
        offset += length
    return found


def test_pcapng_names_each_interface_and_marks_direction(tmp_path):
    result = _result()
    frame = ethernet(ipv4("10.0.1.1", "10.0.1.2", 6, tcp(51000, 8080)))
    found = capture.points(result)
    frames = (capture.Frame(0, 1_700_000_000_123_456_789, True, "forward", frame),
              capture.Frame(1, 1_700_000_000_123_457_000, False, "forward", frame[:-1]))
    done = capture.CaptureResult(found, frames, (1,) * len(found), (), 3, 1)
    data = capture.pcapng(done)
    blocks = _blocks(data)
    assert [kind for kind, _ in blocks] == [0x0A0D0D0A, 1, 1, 1, 1, 6, 6]
    names = [body[8 + 4:8 + 4 + struct.unpack_from("=H", body, 10)[0]].decode()
             for kind, body in blocks if kind == 1]
    assert names == ["a:va", "r:vr", "r:vr2", "b:vb"]
    first = blocks[5][1]
    assert struct.unpack_from("=IIIII", first) == (0, 1_700_000_000_123_456_789 >> 32,
                                                   1_700_000_000_123_456_789 & 0xFFFFFFFF,
                                                   len(frame), len(frame))
    flags = first[20 + len(frame) + (-len(frame) % 4):]
    assert struct.unpack_from("=HHI", flags) == (2, 4, 2)  # epb_flags: outbound
    if shutil.which("tcpdump"):
        path = tmp_path / "f.pcapng"
        capture.write_pcapng(str(path), done)
        read = subprocess.run(["tcpdump", "-r", str(path), "-n", "-#"], capture_output=True,
                              text=True)
        assert read.returncode == 0 and len(read.stdout.splitlines()) == 2, read.stderr
        assert "10.0.1.1.51000 > 10.0.1.2.8080" in read.stdout


def _tuple(src: str, dst: str, sport: int, dport: int) -> list[bytes]:
    ip = netlink.pack_nested(conntrack.CTA_TUPLE_IP,
                             netlink.pack_attr(conntrack.CTA_IP_V4_SRC, socket.inet_aton(src)),
                             netlink.pack_attr(conntrack.CTA_IP_V4_DST, socket.inet_aton(dst)))
    proto = netlink.pack_nested(conntrack.CTA_TUPLE_PROTO,
                                netlink.pack_attr(conntrack.CTA_PROTO_NUM, bytes([6])),
                                netlink.pack_attr(conntrack.CTA_PROTO_SRC_PORT,
                                                  struct.pack(">H", sport)),
                                netlink.pack_attr(conntrack.CTA_PROTO_DST_PORT,
                                                  struct.pack(">H", dport)))
    return [ip, proto]


@pytest.mark.parametrize("reply, dnat, snat", [
    (("10.0.2.2", "10.0.1.1", 80, 51000), "10.0.2.2:80", None),
    (("10.0.1.2", "192.0.2.7", 8080, 61000), None, "192.0.2.7:61000"),
    (("10.0.1.2", "10.0.1.1", 8080, 51000), None, None),
])
def test_conntrack_entries_are_decoded_with_their_translations(reply, dnat, snat):
    body = struct.pack("=BBH", 2, 0, 0) + \
        netlink.pack_nested(conntrack.CTA_TUPLE_ORIG,
                            *_tuple("10.0.1.1", "10.0.1.2", 51000, 8080)) + \
        netlink.pack_nested(conntrack.CTA_TUPLE_REPLY, *_tuple(*reply)) + \
        netlink.pack_attr(conntrack.CTA_STATUS, struct.pack(">I", 0b110)) + \
        netlink.pack_attr(conntrack.CTA_TIMEOUT, struct.pack(">I", 117)) + \
        netlink.pack_nested(conntrack.CTA_PROTOINFO, netlink.pack_nested(
            conntrack.CTA_PROTOINFO_TCP,
            netlink.pack_attr(conntrack.CTA_PROTOINFO_TCP_STATE, bytes([3]))))
    entry = conntrack.entry_from_answer(body)
    assert (entry.proto, entry.state, entry.timeout, entry.replied, entry.assured) == \
        ("tcp", "ESTABLISHED", 117, True, True)
    assert entry.original.text == "10.0.1.1:51000 → 10.0.1.2:8080"
    assert (conntrack.endpoint(entry.dnat.dst, entry.dnat.dport) if entry.dnat else None) == dnat
    assert (conntrack.endpoint(entry.snat.dst, entry.snat.dport) if entry.snat else None) == snat
    assert entry.touches(port=8080) and entry.touches(reply[1]) and not entry.touches("10.9.9.9")
