"""Collector: the network sysctls the diagnosis rules look at.

Most come from netlink, not /proc/sys: a /proc/sys/net lookup compares the name with one
cached entry per namespace that ever looked it up (under a global lock), so on a host with
1000 namespaces each file costs ~0.15 ms and reading 20 of them per namespace made a snapshot
quadratic. Netlink answers the same values in microseconds:

* RTM_GETNETCONF: `all` and `default` forwarding and rp_filter (net.ipv4.ip_forward is the
  same value as net.ipv4.conf.all.forwarding), and IPv6 `all` forwarding;
* RTM_GETLINK: each interface's IPv4 devconf array (forwarding, rp_filter, route_localnet,
  proxy_arp) and IPv6 one (forwarding, force_forwarding) inside IFLA_AF_SPEC — the dump the
  links collector made (links.dump).

Both go over the namespace's one NETLINK_ROUTE socket (rtnl.py).

Only what netlink does not carry is read from /proc/sys (relative to one open /proc/sys/net):
ip_local_port_range in namespaces that publish ports, route_localnet's `all` where a DNAT is
(_proc_names says which), and the br_netfilter switches in namespaces that have a bridge. A
sysctl this namespace does not have (bridge-nf-call-* without br_netfilter or without a
bridge, IPv6 ones with IPv6 off) is left out, not guessed.
"""

from __future__ import annotations

import os
import socket
import struct

from netdiag import netlink
from netdiag.collect import links, rtnl
from netdiag.model import Sysctl

NAME = "sysctls"

PROC_SYS_NET = "/proc/sys/net"

RTM_GETNETCONF = 82
IFLA_IFNAME = 3
IFLA_AF_SPEC = 26
IFLA_INET_CONF = 1
IFLA_INET6_CONF = 2
NETCONFA_IFINDEX, NETCONFA_FORWARDING, NETCONFA_RP_FILTER = 1, 2, 3
NETCONFA_IFINDEX_ALL, NETCONFA_IFINDEX_DEFAULT = -1, -2
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_NETCONFMSG = struct.Struct("=Bxxx")  # family, padded to 4

# per-interface key → IPV4_DEVCONF_* index (include/uapi/linux/ip.h); the kernel's array
# starts at index 1
PER_INTERFACE = {"forwarding": 1, "rp_filter": 8, "route_localnet": 26, "proxy_arp": 3}
# per-interface IPv6 key → DEVCONF_* index (include/uapi/linux/ipv6.h); this array starts at
# index 0. force_forwarding came with kernel 6.17: an interface that lacks it is left out.
PER_INTERFACE_6 = {"forwarding": 0, "force_forwarding": 59}
FROM_PROC = ("net.ipv4.ip_local_port_range",)
# `all` of route_localnet, which RTM_GETNETCONF does not carry (each device's is in the link
# dump): read where a DNAT can send 127.0.0.0/8 out of a device or take it in by one
ROUTE_LOCALNET = ("net.ipv4.conf.all.route_localnet",)
BRIDGE_NF = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
# the order in which global sysctls are listed
GLOBAL = ("net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter",
          "net.ipv4.conf.default.rp_filter", "net.ipv4.conf.all.forwarding",
          "net.ipv6.conf.all.forwarding", *BRIDGE_NF, *FROM_PROC, *ROUTE_LOCALNET)
_MAX_BYTES = 4096  # every value here is a number or two


def collect(ctx) -> dict:
    values = {**_netconf(ctx), **_from_proc(PROC_SYS_NET, _proc_names(ctx))}
    found = [Sysctl(name, values[name]) for name in GLOBAL if name in values]
    for interface, (devconf, devconf6) in sorted(_interfaces(ctx).items()):
        found.extend(Sysctl(f"net.ipv4.conf.{interface}.{key}", str(devconf[index - 1]))
                     for key, index in PER_INTERFACE.items() if index <= len(devconf))
        found.extend(Sysctl(f"net.ipv6.conf.{interface}.{key}", str(devconf6[index]))
                     for key, index in PER_INTERFACE_6.items() if index < len(devconf6))
    return {"sysctls": tuple(found)}


def _netconf(ctx) -> dict[str, str]:
    """`all` and `default` values of both families (more than GLOBAL needs; collect picks)."""
    values: dict[str, str] = {}
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        for message in rtnl.dump(ctx, RTM_GETNETCONF, _NETCONFMSG.pack(family),
                                 _NETCONFMSG.size):
            values.update(netconf_values(message.attrs, f"net.ipv{version}.conf"))
    if "net.ipv4.conf.all.forwarding" in values:
        values["net.ipv4.ip_forward"] = values["net.ipv4.conf.all.forwarding"]
    return values


def netconf_values(attrs: dict[int, bytes], prefix: str) -> dict[str, str]:
    """One RTM_NEWNETCONF answer → {"net.ipv4.conf.all.forwarding": "1", ...} for the `all`
    and `default` entries (per-interface values come from the link dump)."""
    index = attrs.get(NETCONFA_IFINDEX)
    which = {NETCONFA_IFINDEX_ALL: "all", NETCONFA_IFINDEX_DEFAULT: "default"}.get(
        struct.unpack("=i", index)[0] if index else None)
    if which is None:
        return {}
    return {f"{prefix}.{which}.{key}": str(struct.unpack("=i", attrs[kind])[0])
            for key, kind in (("forwarding", NETCONFA_FORWARDING),
                              ("rp_filter", NETCONFA_RP_FILTER)) if kind in attrs}


def _interfaces(ctx) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Interface name → (its IPv4 devconf values, its IPv6 ones)."""
    found = {}
    for message in links.dump(ctx):
        name = rtnl.string(message.attrs, IFLA_IFNAME)
        devconf, devconf6 = devconf_of(message.attrs), devconf_of(message.attrs, 6)
        if name and (devconf or devconf6):
            found[name] = (devconf, devconf6)
    return found


def link_devconf(body: bytes) -> tuple[str, tuple[int, ...]]:
    """One RTM_NEWLINK answer → (interface name, its IPv4 devconf values, index 1 first)."""
    attrs = netlink.attributes(body, _IFINFOMSG.size)
    return netlink.cstring(attrs.get(IFLA_IFNAME, b"")), devconf_of(attrs)


def devconf_of(attrs: dict[int, bytes], family: int = 4) -> tuple[int, ...]:
    """An RTM_NEWLINK answer's IPv4 devconf values (index 1 first), or its IPv6 ones
    (index 0 first; none when IPv6 is off on the interface, as below an MTU of 1280)."""
    spec = netlink.attributes(attrs.get(IFLA_AF_SPEC, b""))
    if family == 6:
        raw = netlink.attributes(spec.get(socket.AF_INET6, b"")).get(IFLA_INET6_CONF, b"")
    else:
        raw = netlink.attributes(spec.get(socket.AF_INET, b"")).get(IFLA_INET_CONF, b"")
    return struct.unpack(f"={len(raw) // 4}i", raw[:len(raw) // 4 * 4])


def _proc_names(ctx) -> tuple[str, ...]:
    """The br_netfilter switches only matter where there is a bridge (they say whether bridged
    traffic passes iptables), the ephemeral port range only where a port is published (a
    DNAT rule: port-contention weighs the one against the other): read each only there, or
    when the links or the firewall are unknown. On a host of 1000 namespaces the one read of
    /proc/sys/net/ipv4 cost 0.14-0.53 ms a namespace, most of a snapshot's time. A DNAT to
    a loopback address publishes nothing (port-contention skips it: checks/dnat.py): it is
    Docker's embedded DNS, in every container on a user network.

    route_localnet's `all` matters only where a DNAT is: one to another address can send a
    packet from 127.0.0.1 out of a device (kube-proxy's node ports on localhost), one into
    127.0.0.0/8 takes in a packet the kernel drops as a martian unless the switch is on.
    Docker's embedded DNS only moves 127.0.0.11 to another port of it: it is left out."""
    links = ctx.found.get("links")
    names = BRIDGE_NF if links is None or any(link.kind == "bridge" for link in links) else ()
    firewall = ctx.found.get("firewall")
    if firewall is None or any(
            rule.target == "DNAT" and not rule.target_option("to-destination").startswith("127.")
            for rule in firewall.iptables_rules) or \
            any("dnat" in rule.text for rule in firewall.nft_rules):
        names = (*names, *FROM_PROC, *ROUTE_LOCALNET)
    elif any(rule.target == "DNAT" and not _loopback_to_loopback(rule)
             for rule in firewall.iptables_rules):
        names = (*names, *ROUTE_LOCALNET)
    return names


def _loopback_to_loopback(rule) -> bool:
    """A DNAT of a 127.0.0.0/8 destination to another loopback address or port."""
    destination = rule.match("destination")
    return destination is not None and not destination.negated and \
        destination.value.startswith("127.")


def _from_proc(proc_sys_net: str, names: tuple[str, ...]) -> dict[str, str]:
    try:
        net = os.open(proc_sys_net, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    try:
        values = {}
        for name in names:
            value = _read(name.removeprefix("net.").replace(".", "/"), net)
            if value is not None:
                values[name] = value
        return values
    finally:
        os.close(net)


def _read(path: str, net: int) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=net)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        # "32768\t60999\n" → "32768 60999"
        return " ".join(os.read(fd, _MAX_BYTES).decode(errors="replace").split())
    finally:
        os.close(fd)
