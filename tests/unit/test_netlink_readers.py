"""Decoding of the raw netlink answers the socket, sysctl and conntrack collectors read.

The answers are laid out as the kernel writes them (inet_diag_msg, netconfmsg, ifinfomsg with
IFLA_AF_SPEC, nfgenmsg with big-endian CTA_STATS_GLOBAL_*); the integration tests check the
same code against ss, sysctl and /proc on real namespaces. No root needed.
"""

import socket
import struct

from netdiag import netlink
from netdiag.collect import conntrack, sockets, sysctls
from netdiag.model import Conntrack, NamespaceRef, NamespaceState, NsKind, Socket

NLA_F_NESTED = 0x8000


def nla(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def inet_diag_msg(family: int, address: str, port: int, uid: int, inode: int) -> bytes:
    raw = socket.inet_pton(family, address).ljust(16, b"\0")
    sockid = struct.pack(">HH", port, 0) + raw + b"\0" * 16 + struct.pack("=III", 0, 0, 0)
    return (struct.pack("=BBBB", family, 10, 0, 0) + sockid
            + struct.pack("=IIIII", 0, 0, 0, uid, inode))


def test_listening_tcp4_socket():
    body = inet_diag_msg(socket.AF_INET, "127.0.0.1", 8765, uid=0, inode=4242)
    assert sockets.parse_answer(body, "tcp", 4, "listen") == Socket(
        protocol="tcp", family=4, address="127.0.0.1", port=8765, state="listen", inode=4242)


def test_unconnected_udp6_wildcard_socket():
    body = inet_diag_msg(socket.AF_INET6, "::", 5353, uid=65534, inode=7)
    sock = sockets.parse_answer(body, "udp", 6, "unconn")
    assert (sock.address, sock.port, sock.uid, sock.state) == ("::", 5353, 65534, "unconn")


def test_netconf_all_and_default_entries():
    def answer(ifindex: int, forwarding: int, rp_filter: int) -> dict[int, bytes]:
        return netlink.attributes(
            nla(sysctls.NETCONFA_IFINDEX, struct.pack("=i", ifindex))
            + nla(sysctls.NETCONFA_FORWARDING, struct.pack("=i", forwarding))
            + nla(sysctls.NETCONFA_RP_FILTER, struct.pack("=i", rp_filter)))

    assert sysctls.netconf_values(answer(-1, 1, 2), "net.ipv4.conf") == {
        "net.ipv4.conf.all.forwarding": "1", "net.ipv4.conf.all.rp_filter": "2"}
    assert sysctls.netconf_values(answer(-2, 0, 1), "net.ipv4.conf") == {
        "net.ipv4.conf.default.forwarding": "0", "net.ipv4.conf.default.rp_filter": "1"}
    # per-interface entries come from the link dump instead
    assert sysctls.netconf_values(answer(3, 1, 1), "net.ipv4.conf") == {}


def test_link_devconf_array_from_af_spec():
    devconf = [0] * 33
    devconf[sysctls.PER_INTERFACE["forwarding"] - 1] = 1
    devconf[sysctls.PER_INTERFACE["route_localnet"] - 1] = 1
    devconf[sysctls.PER_INTERFACE["rp_filter"] - 1] = 2
    inet = nla(socket.AF_INET | NLA_F_NESTED,
               nla(sysctls.IFLA_INET_CONF, struct.pack("=33i", *devconf)))
    inet6 = nla(socket.AF_INET6 | NLA_F_NESTED, nla(1, b"\0" * 8))
    body = (struct.pack("=BxHiII", 0, 1, 5, 0, 0) + nla(sysctls.IFLA_IFNAME, b"eth0.10\0")
            + nla(sysctls.IFLA_AF_SPEC | NLA_F_NESTED, inet6 + inet))
    name, values = sysctls.link_devconf(body)
    assert name == "eth0.10"  # a dotted name stays whole
    assert {key: values[index - 1] for key, index in sysctls.PER_INTERFACE.items()} == {
        "forwarding": 1, "rp_filter": 2, "route_localnet": 1, "proxy_arp": 0}


def test_link_without_ipv4_has_no_devconf():
    body = struct.pack("=BxHiII", 0, 1, 5, 0, 0) + nla(sysctls.IFLA_IFNAME, b"can0\0")
    assert sysctls.link_devconf(body) == ("can0", ())


def test_conntrack_statistics_are_big_endian():
    body = (struct.pack("=BBH", 0, 0, 0)
            + nla(conntrack.CTA_STATS_GLOBAL_ENTRIES, struct.pack(">I", 12))
            + nla(conntrack.CTA_STATS_GLOBAL_MAX_ENTRIES, struct.pack(">I", 262144)))
    assert conntrack.stats_from_answer(body) == Conntrack(count=12, max=262144)


def test_conntrack_statistics_without_max_fall_back():
    body = struct.pack("=BBH", 0, 0, 0) + nla(conntrack.CTA_STATS_GLOBAL_ENTRIES,
                                              struct.pack(">I", 12))
    assert conntrack.stats_from_answer(body) is None


def test_conntrack_files(tmp_path):
    assert conntrack.read_proc(str(tmp_path)) is None  # not loaded: a fact, not a gap
    (tmp_path / "nf_conntrack_count").write_text("3\n")
    (tmp_path / "nf_conntrack_max").write_text("65536\n")
    assert conntrack.read_proc(str(tmp_path)) == Conntrack(count=3, max=65536)


def test_socket_owners_from_one_scan_of_proc(tmp_path):
    for pid, comm, links in ((12, "docker-proxy", {"3": "socket:[100]", "4": "pipe:[9]"}),
                             (7, "python3", {"5": "socket:[200]", "6": "socket:[100]"})):
        (tmp_path / str(pid) / "fd").mkdir(parents=True)
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
        for fd, target in links.items():
            (tmp_path / str(pid) / "fd" / fd).symlink_to(target)
    (tmp_path / "self").mkdir()  # not a pid: skipped
    ref = NamespaceRef(id=1, kind=NsKind.NAMED, path="/x")
    state = NamespaceState(ref=ref, sockets=(
        Socket("tcp", 4, "0.0.0.0", 8080, inode=100), Socket("udp", 4, "0.0.0.0", 53, inode=200),
        Socket("udp", 4, "0.0.0.0", 54, inode=300)))
    (resolved,) = sockets.resolve_owners([state], proc=str(tmp_path))
    owners = [(s.port, s.pid, s.process) for s in resolved.sockets]
    # the lowest pid holding a shared socket wins; an inode nobody holds stays unknown
    assert owners == [(8080, 7, "python3"), (53, 7, "python3"), (54, None, "")]
    # the engines' processes are looked at first: a socket they hold is theirs
    (resolved,) = sockets.resolve_owners([state], proc=str(tmp_path), first=[12, 99])
    owners = [(s.port, s.pid, s.process) for s in resolved.sockets]
    assert owners == [(8080, 12, "docker-proxy"), (53, 7, "python3"), (54, None, "")]


def test_no_sockets_no_scan(tmp_path):
    state = NamespaceState(ref=NamespaceRef(id=1, kind=NsKind.NAMED, path="/x"))
    assert sockets.resolve_owners([state], proc=str(tmp_path / "absent")) == [state]


def test_link_ipv6_devconf_array_from_af_spec():
    devconf6 = [0] * 60
    devconf6[sysctls.PER_INTERFACE_6["forwarding"]] = 1
    devconf6[sysctls.PER_INTERFACE_6["force_forwarding"]] = 1
    devconf6[2] = 1280  # DEVCONF_MTU6
    inet6 = nla(socket.AF_INET6 | NLA_F_NESTED,
                nla(1, b"\0" * 4) + nla(sysctls.IFLA_INET6_CONF, struct.pack("=60i", *devconf6)))
    attrs = netlink.attributes(nla(sysctls.IFLA_AF_SPEC | NLA_F_NESTED, inet6))
    values = sysctls.devconf_of(attrs, 6)
    assert {key: values[index] for key, index in sysctls.PER_INTERFACE_6.items()} == {
        "forwarding": 1, "force_forwarding": 1}
    assert sysctls.devconf_of(attrs) == ()  # no IPv4 on it
    # an interface below IPv6's minimum MTU has no IPv6 devconf at all
    assert sysctls.devconf_of(netlink.attributes(nla(sysctls.IFLA_AF_SPEC | NLA_F_NESTED,
                                                     b"")), 6) == ()


def test_address_flags_keep_only_a_failed_dad():
    from netdiag.collect import addresses

    def answer(flags8: int, flags32: int | None) -> netlink.Message:
        attrs = {addresses.IFA_ADDRESS: socket.inet_pton(socket.AF_INET6, "fd00::5")}
        if flags32 is not None:
            attrs[addresses.IFA_FLAGS] = struct.pack("=I", flags32)
        return netlink.Message(20, addresses.IFADDRMSG.pack(socket.AF_INET6, 64, flags8, 0, 3),
                               attrs)

    dadfailed, tentative, permanent = 0x08, 0x40, 0x80
    failed = addresses._address(answer(dadfailed | tentative | permanent, None), {3: "eth0"})
    assert (failed.address, failed.ifname, failed.flags) == ("fd00::5", "eth0", ("dadfailed",))
    # IFA_FLAGS, when there, is the whole of them (ifaddrmsg holds only the low 8 bits)
    assert addresses._address(answer(0, dadfailed | 0x100), {}).flags == ("dadfailed",)
    assert addresses._address(answer(tentative | permanent, tentative | permanent),
                              {}).flags == ()


def test_proc_sys_is_read_only_where_a_rule_needs_it():
    """The ephemeral port range where a port is published (a DNAT rule), the br_netfilter
    switches where there is a bridge; both when the collectors before could not say."""
    from netdiag.collect import Context
    from netdiag.model import Firewall, IptablesRule, Link, Match, NftRule

    def names(found):
        ctx = Context(NamespaceRef(id=1, kind=NsKind.NAMED, name="x", path="/x"))
        ctx.found.update(found)
        return set(sysctls._proc_names(ctx))

    bridge = Link(index=2, name="br0", kind="bridge", mtu=1500, admin_up=True, oper_state="up")
    dnat = IptablesRule(backend="legacy", family=4, table="nat", chain="DOCKER", position=1,
                        matches=(), target="DNAT")
    nft_dnat = NftRule(family="ip", table="nat", chain="pre", handle=3,
                       text="tcp dport 8080 dnat to 10.0.0.2:80")
    range_ = set(sysctls.FROM_PROC) | set(sysctls.ROUTE_LOCALNET)  # and route_localnet's all
    assert names({}) == set(sysctls.BRIDGE_NF) | range_
    assert names({"links": (), "firewall": Firewall()}) == set()
    assert names({"links": (bridge,), "firewall": Firewall()}) == set(sysctls.BRIDGE_NF)
    assert names({"links": (), "firewall": Firewall(iptables_rules=(dnat,))}) == range_
    assert names({"links": (), "firewall": Firewall(nft_rules=(nft_dnat,))}) == range_
    embedded_dns = IptablesRule(backend="nft", family=4, table="nat", chain="DOCKER_OUTPUT",
                                position=1, matches=(Match("destination", "127.0.0.11/32"),),
                                target="DNAT",
                                target_options=(("to-destination", "127.0.0.11:41123"),))
    assert names({"links": (), "firewall": Firewall(iptables_rules=(embedded_dns,))}) == set()
