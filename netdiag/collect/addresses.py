"""Collector: IPv4 and IPv6 addresses (RTM_GETADDR dump) → Address records."""

from __future__ import annotations

from socket import AF_INET

from netdiag.collect.links import names_by_index
from netdiag.collect.routes import SCOPES
from netdiag.model import Address

NAME = "addresses"


def collect(ctx) -> dict:
    names = names_by_index(ctx)
    addresses = tuple(_address(m, names) for m in ctx.ipr().addr("dump"))
    return {"addresses": addresses}


def _address(msg, names: dict[int, str]) -> Address:
    attrs = dict(msg["attrs"])
    # On a point-to-point link IFA_ADDRESS is the peer; IFA_LOCAL is always our own address.
    address = attrs.get("IFA_LOCAL") or attrs.get("IFA_ADDRESS", "")
    index = msg["index"]
    return Address(
        ifindex=index,
        ifname=names.get(index, ""),
        family=4 if msg["family"] == AF_INET else 6,
        address=address,
        prefixlen=msg["prefixlen"],
        scope=SCOPES.get(msg["scope"], str(msg["scope"])),
        broadcast=attrs.get("IFA_BROADCAST", "") or "",
        label=attrs.get("IFA_LABEL", "") or "",
    )
