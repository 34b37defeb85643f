"""Collector: how full the namespace's connection-tracking table is (count and max).

Read from /proc/sys/net/netfilter (per namespace, like all of /proc/sys/net). When the files
are absent, connection tracking is not loaded in this kernel, so nothing is tracked and no
table can fill up: that is recorded as `conntrack = None` — a fact, not a gap.
"""

from __future__ import annotations

from netdiag.errors import CollectError
from netdiag.model import Conntrack

NAME = "conntrack"

PROC_NETFILTER = "/proc/sys/net/netfilter"


def collect(ctx) -> dict:
    return {"conntrack": read_conntrack(PROC_NETFILTER)}


def read_conntrack(folder: str) -> Conntrack | None:
    try:
        with open(f"{folder}/nf_conntrack_count") as f:
            count = f.read()
        with open(f"{folder}/nf_conntrack_max") as f:
            maximum = f.read()
    except FileNotFoundError:
        return None
    try:
        return Conntrack(count=int(count), max=int(maximum))
    except ValueError:
        raise CollectError(f"unexpected conntrack figures in {folder}: "
                           f"{count.strip()!r}, {maximum.strip()!r}") from None
