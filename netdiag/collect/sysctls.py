"""Collector: the network sysctls the diagnosis rules look at.

Read from /proc/sys, which shows the namespace of the reading thread (verified: after setns in
a worker thread, /proc/sys/net/... holds that namespace's values). A sysctl the kernel does not
have in this namespace (the bridge-nf-call ones without br_netfilter, IPv6 ones with IPv6 off)
is left out rather than guessed.
"""

from __future__ import annotations

import os

from netdiag.model import Sysctl

NAME = "sysctls"

PROC_SYS = "/proc/sys"

GLOBAL = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.default.rp_filter",
    "net.ipv4.conf.all.forwarding",
    "net.ipv6.conf.all.forwarding",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv4.ip_local_port_range",
)
PER_INTERFACE = ("forwarding", "rp_filter", "route_localnet", "proxy_arp")
_NOT_INTERFACES = frozenset({"all", "default"})


def collect(ctx) -> dict:
    return {"sysctls": read_sysctls(PROC_SYS)}


def read_sysctls(proc_sys: str) -> tuple[Sysctl, ...]:
    # (dotted name, path): built together because an interface name may hold a dot (eth0.10),
    # so the path cannot be derived from the dotted name.
    wanted = [(name, name.replace(".", "/")) for name in GLOBAL]
    for interface in _interfaces(proc_sys):
        wanted.extend((f"net.ipv4.conf.{interface}.{key}", f"net/ipv4/conf/{interface}/{key}")
                      for key in PER_INTERFACE)
    found = []
    for name, path in wanted:
        value = _read(f"{proc_sys}/{path}")
        if value is not None:
            found.append(Sysctl(name=name, value=value))
    return tuple(found)


def _interfaces(proc_sys: str) -> list[str]:
    try:
        names = os.listdir(f"{proc_sys}/net/ipv4/conf")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n not in _NOT_INTERFACES)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return " ".join(f.read().split())  # "32768\t60999\n" → "32768 60999"
    except (FileNotFoundError, NotADirectoryError):
        return None
