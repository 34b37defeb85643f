"""Collector: IPv4 and IPv6 policy routing rules (RTM_GETRULE dump) → Rule records."""

from __future__ import annotations

from socket import AF_INET, AF_INET6

from netdiag.model import Rule

NAME = "rules"

# FR_ACT_* (linux/fib_rules.h)
ACTIONS = {1: "lookup", 2: "goto", 3: "nop", 6: "blackhole", 7: "unreachable", 8: "prohibit"}

FIB_RULE_INVERT = 0x2


def collect(ctx) -> dict:
    # The dump also holds the multicast-routing families (RTNL_FAMILY_IPMR/IP6MR): not ours.
    rules = tuple(_rule(m) for m in ctx.ipr().rule("dump")
                  if m["family"] in (AF_INET, AF_INET6))
    return {"rules": rules}


def _rule(msg) -> Rule:
    attrs = dict(msg["attrs"])
    action = ACTIONS.get(msg["action"], str(msg["action"]))
    return Rule(
        family=4 if msg["family"] == AF_INET else 6,
        priority=attrs.get("FRA_PRIORITY", 0),
        action=action,
        # FRA_TABLE carries the full 32-bit table id; the header field only its low byte.
        table=attrs.get("FRA_TABLE", msg["table"]) if action == "lookup" else 0,
        src=_prefix(attrs.get("FRA_SRC"), msg["src_len"]),
        dst=_prefix(attrs.get("FRA_DST"), msg["dst_len"]),
        iif=attrs.get("FRA_IIFNAME", "") or "",
        oif=attrs.get("FRA_OIFNAME", "") or "",
        fwmark=attrs.get("FRA_FWMARK", 0),
        fwmask=attrs.get("FRA_FWMASK", 0),
        invert=bool(msg["flags"] & FIB_RULE_INVERT),
    )


def _prefix(address: str | None, length: int) -> str:
    return f"{address}/{length}" if address else ""
