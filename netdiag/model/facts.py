"""Small facts that several layers ask of a snapshot: constants the kernel and the C library
fix, and answers about one namespace that rules, the flow model and the probes share.

They live on the floor so that a rule, the path model and a probe plan ask the same function
instead of each keeping its own copy.
"""

from __future__ import annotations

from netdiag.model import NamespaceState, NsKind

# Outer headers VXLAN adds to an inner frame: outer IP (20 or 40) + UDP 8 + VXLAN 8 + the inner
# Ethernet header 14 — by the family of the underlay that carries it.
VXLAN_OVERHEAD = {4: 50, 6: 70}

# IPv6's minimum link MTU (RFC 8200): every link must carry 1280-byte packets, and no sender
# goes below it. The kernel turns IPv6 off on an interface set below it, deleting its IPv6
# addresses, and refuses to add any until the MTU is 1280 or more again.
IPV6_MIN_MTU = 1280

# The tables iptables-nft writes into nftables (and iptables-legacy keeps in the kernel).
XTABLES_TABLES = frozenset({"filter", "nat", "mangle", "raw", "security"})

# How a socket or a port binding says "every address": ss's `*`, Docker's "" and both
# families' unspecified addresses.
WILDCARD_ADDRESSES = frozenset({"", "*", "0.0.0.0", "::"})
MAX_NAMESERVERS = 3  # glibc and musl use only the first three
HOST_RESOLV_CONF = "/etc/resolv.conf"


def primary_address(state: NamespaceState) -> str:
    """The namespace's first global IPv4 address on an interface that is up, or ""."""
    up = {link.name for link in state.links if link.up and link.kind != "loopback"}
    return next((a.address for a in state.addresses
                 if a.family == 4 and a.scope == "global" and a.ifname in up
                 and not a.address.startswith("127.")), "")


def has_own_resolv_conf(state: NamespaceState) -> bool:
    """False for a namespace with no resolv.conf and no process: it only shows the host's file.

    Nothing in it resolves names (no process), and the file was not written for it, so judging
    it would report every bare namespace without an uplink (lab routers, test namespaces).
    """
    return state.ref.kind is NsKind.HOST or state.dns.source != HOST_RESOLV_CONF

