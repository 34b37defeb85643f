"""Collector: the namespace's ipsets, which iptables rules match with `-m set --match-set`.

Docker 28.0.0 (`docker-ext-bridges-v4`; 28.0.1 and later delete those rules, the sets may
stay), firewalld's ipset backend, kube-router and many hand-written firewalls keep addresses
in ipsets and name them in their rules. The sets
are read only where an iptables rule of the namespace (either backend, either family) names
one — a match `-m set` or a target SET — so the many namespaces without such rules cost a
scan of their rules, nothing more. Every set of such a namespace is read, not only those the
rules name: a list:set names others.

The sets are added to the Firewall record the firewall collector started; if reading them
fails, the rules stay and a gap says why. Why pyroute2 here: ipset is an nfnetlink subsystem
with nested attributes per element, which pyroute2 already speaks (there is no `ipset`
program to ask on most hosts); netdiag/netlink.py stays a small core for rtnetlink.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import replace

from netdiag import capabilities
from netdiag.errors import KernelFeatureMissing
from netdiag.model import Firewall, Ipset, IpsetMember

NAME = "ipsets"

MISSING = "kernel has no ipset"
FAMILIES = {socket.AF_INET: 4, socket.AF_INET6: 6}
# include/uapi/linux/netfilter/ipset/ip_set.h
_FLAG_PHYSDEV = 1 << 1
_FLAG_NOMATCH = 1 << 2
_FLAG_IFACE_WILDCARD = 1 << 7
_PORT_PROTOCOLS = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp", 132: "sctp",
                   136: "udplite"}
_ICMP_PROTOCOLS = {socket.IPPROTO_ICMP: "icmp", socket.IPPROTO_ICMPV6: "icmpv6"}


def collect(ctx) -> dict:
    firewall = ctx.found.get("firewall")
    if firewall is None or not names_a_set(firewall):
        return {}
    return {"firewall": replace(firewall, ipsets=sets_from_messages(_list(ctx)))}


def names_a_set(firewall: Firewall) -> bool:
    """Does an iptables rule match a set or add to one?"""
    return any(rule.target == "SET" or any(m.module == "set" for m in rule.matches)
               for rule in firewall.iptables_rules)


def _list(ctx) -> list:
    """Every set's IPSET_CMD_LIST answers."""
    # pyroute2 is imported here, not at the top: importing it takes ~0.13 s, and only a
    # namespace whose rules name a set gets this far.
    from pyroute2.ipset import IPSet
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        return list(ctx.socket("ipset", IPSet).list())
    except NetlinkError as exc:
        if exc.code == errno.EPERM:
            raise capabilities.refused("cannot list ipsets", "NET_ADMIN") from None
        if exc.code in (errno.ENOENT, errno.EPROTONOSUPPORT):  # no ip_set in this kernel
            raise KernelFeatureMissing(MISSING) from None
        raise


def sets_from_messages(messages) -> tuple[Ipset, ...]:
    """IPSET_CMD_LIST answers → Ipset records. The kernel splits a big set over several
    messages, each with the set's name and type: their members are joined."""
    found: dict[str, Ipset] = {}
    for message in messages:
        name = message.get_attr("IPSET_ATTR_SETNAME")
        kind = message.get_attr("IPSET_ATTR_TYPENAME") or ""
        family = FAMILIES.get(message.get_attr("IPSET_ATTR_FAMILY"), 0)  # 0: NFPROTO_UNSPEC
        adt = message.get_attr("IPSET_ATTR_ADT")
        members = tuple(member(data) for data in adt.get_attrs("IPSET_ATTR_DATA")) \
            if adt is not None else ()
        known = found.get(name)
        found[name] = replace(known, members=known.members + members) if known else \
            Ipset(name=name, type=kind, family=family, members=members)
    # A hash set lists its members in hash order: sorted, two reads of one set are equal. A
    # list:set's order is its meaning (the first member set that matches decides).
    return tuple(s if s.type.startswith("list:") else
                 replace(s, members=tuple(sorted(s.members, key=lambda m: m.value)))
                 for s in found.values())


def member(data) -> IpsetMember:
    """One element (an IPSET_ATTR_DATA of the list) → its text, the parts in the order of
    the type's name, as `ipset list` writes them."""
    flags = data.get_attr("IPSET_ATTR_CADT_FLAGS") or 0
    parts = []
    if data.get_attr("IPSET_ATTR_NAME"):  # list:set
        parts.append(data.get_attr("IPSET_ATTR_NAME"))
    address = _address(data, "IPSET_ATTR_IP_FROM", "IPSET_ATTR_IP_TO", "IPSET_ATTR_CIDR")
    if address:
        parts.append(address)
    if data.get_attr("IPSET_ATTR_ETHER"):
        parts.append(data.get_attr("IPSET_ATTR_ETHER"))
    port = data.get_attr("IPSET_ATTR_PORT_FROM")
    if port is not None:
        parts.append(_port(port, data.get_attr("IPSET_ATTR_PORT_TO"),
                           data.get_attr("IPSET_ATTR_PROTO")))
    second = _address(data, "IPSET_ATTR_IP2", "IPSET_ATTR_IP2_TO", "IPSET_ATTR_CIDR2")
    if second:
        parts.append(second)
    if data.get_attr("IPSET_ATTR_IFACE"):
        iface = data.get_attr("IPSET_ATTR_IFACE")
        if flags & _FLAG_IFACE_WILDCARD:
            iface += "+"
        parts.append(f"physdev:{iface}" if flags & _FLAG_PHYSDEV else iface)
    if data.get_attr("IPSET_ATTR_MARK") is not None:
        parts.append(f"{data.get_attr('IPSET_ATTR_MARK'):#x}")
    return IpsetMember(",".join(parts), nomatch=bool(flags & _FLAG_NOMATCH))


def _address(data, first: str, last: str, prefix: str) -> str:
    nested = data.get_attr(first)
    if nested is None:
        return ""
    address = _ip(nested)
    to = data.get_attr(last)
    if to is not None:
        return f"{address}-{_ip(to)}"
    cidr = data.get_attr(prefix)
    full = 128 if ":" in address else 32
    return address if cidr is None or cidr == full else f"{address}/{cidr}"


def _ip(nested) -> str:
    return nested.get_attr("IPSET_ATTR_IPADDR_IPV4") or \
        nested.get_attr("IPSET_ATTR_IPADDR_IPV6")


def _port(port: int, last: int | None, protocol: int | None) -> str:
    if protocol in _ICMP_PROTOCOLS:  # the "port" of ICMP is type << 8 | code
        return f"{_ICMP_PROTOCOLS[protocol]}:{port >> 8}/{port & 0xFF}"
    text = f"{port}-{last}" if last is not None and last != port else str(port)
    if protocol is None:  # bitmap:port
        return text
    return f"{_PORT_PROTOCOLS.get(protocol, str(protocol))}:{text}"
