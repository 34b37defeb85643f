"""Collector: IPv4 and IPv6 policy routing rules (RTM_GETRULE dump) → PolicyRule records."""

from __future__ import annotations

import struct
from socket import AF_INET, AF_INET6, AF_UNSPEC

from netdiag.collect import rtnl
from netdiag.model import PolicyRule

NAME = "rules"

FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, res1, res2,
#                                             action, flags
FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_PRIORITY, FRA_FWMARK = 1, 2, 3, 6, 10
FRA_TABLE, FRA_FWMASK, FRA_OIFNAME = 15, 16, 17
FIB_RULE_INVERT = 0x2

# FR_ACT_* (linux/fib_rules.h)
ACTIONS = {1: "lookup", 2: "goto", 3: "nop", 6: "blackhole", 7: "unreachable", 8: "prohibit"}


def collect(ctx) -> dict:
    request = FIB_RULE_HDR.pack(AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)
    messages = rtnl.dump(ctx, rtnl.RTM_GETRULE, request, FIB_RULE_HDR.size)
    # The dump also holds the multicast-routing families (RTNL_FAMILY_IPMR/IP6MR): not ours.
    rules = (_rule(m) for m in messages)
    return {"rules": tuple(r for r in rules if r is not None)}


def _rule(msg: rtnl.Message) -> PolicyRule | None:
    family, dst_len, src_len, _, table, _, _, action, flags = FIB_RULE_HDR.unpack(msg.header)
    if family not in (AF_INET, AF_INET6):
        return None
    attrs = msg.attrs
    action_name = ACTIONS.get(action, str(action))
    return PolicyRule(
        family=4 if family == AF_INET else 6,
        priority=rtnl.u32(attrs, FRA_PRIORITY),
        action=action_name,
        # FRA_TABLE carries the full 32-bit table id; the header field only its low byte.
        table=rtnl.u32(attrs, FRA_TABLE, table) if action_name == "lookup" else 0,
        src=_prefix(rtnl.ip(attrs, FRA_SRC), src_len),
        dst=_prefix(rtnl.ip(attrs, FRA_DST), dst_len),
        iif=rtnl.string(attrs, FRA_IIFNAME),
        oif=rtnl.string(attrs, FRA_OIFNAME),
        fwmark=rtnl.u32(attrs, FRA_FWMARK),
        fwmask=rtnl.u32(attrs, FRA_FWMASK),
        invert=bool(flags & FIB_RULE_INVERT),
    )


def _prefix(address: str, length: int) -> str:
    return f"{address}/{length}" if address else ""
