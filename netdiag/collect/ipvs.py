"""Collector: IPVS virtual services and their real servers (Docker's service VIPs).

A kernel without IPVS (this machine's) has no /proc/net/ip_vs and no "IPVS" generic netlink
family: that is reported as KernelFeatureMissing, which becomes a gap — the orchestrator keeps
one such gap per snapshot rather than one per namespace. The file is also a cheap way to see
that a namespace has no services, so the netlink socket is opened only when there are some.

The conversion from netlink messages is separate from reading them, so it is tested with
recorded messages on kernels without IPVS. Why pyroute2 here: IPVS is a generic netlink
family (resolved by name, nested attributes per service and destination), which pyroute2
already speaks; netdiag/netlink.py stays a small core for rtnetlink and fixed requests.
"""

from __future__ import annotations

import socket
from dataclasses import replace

from netdiag.errors import KernelFeatureMissing
from netdiag.model import IpvsDestination, IpvsService

NAME = "ipvs"

PROC_IP_VS = "/proc/thread-self/net/ip_vs"
_HEADER_LINES = 3  # version, column titles, "  -> RemoteAddress:Port ..." titles

PROTOCOLS = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp", 132: "sctp"}
# IP_VS_CONN_F_FWD_MASK values (include/uapi/linux/ip_vs.h)
FORWARD_METHODS = {0: "masq", 1: "local", 2: "tunnel", 3: "route", 4: "bypass"}
_FWD_MASK = 0x7

MISSING = "kernel has no IPVS"


def collect(ctx) -> dict:
    if not _has_services(PROC_IP_VS):
        return {"ipvs": ()}
    ipvs = ctx.socket("ipvs", _open_ipvs)
    services = []
    for message in ipvs.service("dump"):
        service = service_from_message(message)
        destinations = ipvs.dest("dump", service=_service_key(message))
        services.append(with_destinations(service, destinations))
    return {"ipvs": tuple(services)}


def _has_services(path: str) -> bool:
    try:
        with open(path) as f:
            return len(f.read().splitlines()) > _HEADER_LINES
    except FileNotFoundError:
        raise KernelFeatureMissing(MISSING) from None


def _open_ipvs():
    # pyroute2 is imported here, not at the top: importing it takes ~0.13 s, and only a
    # namespace that has IPVS services gets this far.
    from pyroute2 import IPVS
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        return IPVS()
    except NetlinkError as exc:
        if exc.code == 2:  # the generic netlink family "IPVS" does not exist
            raise KernelFeatureMissing(MISSING) from None
        raise


def _service_key(message):
    from pyroute2 import IPVSService

    return IPVSService.from_message(message)


def _attr(nested, name: str, default=None):
    value = nested.get_attr(name)
    return default if value is None else value


def service_from_message(message) -> IpvsService:
    """An IPVS_CMD_NEW_SERVICE message (a dump answer) → IpvsService without destinations."""
    svc = message.get_attr("IPVS_CMD_ATTR_SERVICE")
    fwmark = _attr(svc, "IPVS_SVC_ATTR_FWMARK", 0)
    if fwmark:  # the kernel sends no protocol, address or port for fwmark services
        return IpvsService(protocol="", fwmark=fwmark,
                           scheduler=_attr(svc, "IPVS_SVC_ATTR_SCHED_NAME", ""))
    protocol = _attr(svc, "IPVS_SVC_ATTR_PROTOCOL", 0)
    return IpvsService(protocol=PROTOCOLS.get(protocol, str(protocol)),
                       address=_attr(svc, "IPVS_SVC_ATTR_ADDR", ""),
                       port=_attr(svc, "IPVS_SVC_ATTR_PORT", 0),
                       scheduler=_attr(svc, "IPVS_SVC_ATTR_SCHED_NAME", ""))


def destination_from_message(message) -> IpvsDestination:
    """An IPVS_CMD_NEW_DEST message → IpvsDestination."""
    dest = message.get_attr("IPVS_CMD_ATTR_DEST")
    method = _attr(dest, "IPVS_DEST_ATTR_FWD_METHOD", 0) & _FWD_MASK
    return IpvsDestination(address=_attr(dest, "IPVS_DEST_ATTR_ADDR", ""),
                           port=_attr(dest, "IPVS_DEST_ATTR_PORT", 0),
                           weight=_attr(dest, "IPVS_DEST_ATTR_WEIGHT", 0),
                           forward=FORWARD_METHODS.get(method, str(method)),
                           active=_attr(dest, "IPVS_DEST_ATTR_ACTIVE_CONNS", 0),
                           inactive=_attr(dest, "IPVS_DEST_ATTR_INACT_CONNS", 0))


def with_destinations(service: IpvsService, messages) -> IpvsService:
    destinations = sorted((destination_from_message(m) for m in messages),
                          key=lambda d: (d.address, d.port))
    return replace(service, destinations=tuple(destinations))
