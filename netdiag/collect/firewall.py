"""Collector: iptables rules from both backends (nft and legacy), IPv4 and IPv6.

`iptables-nft` and `iptables-legacy` keep separate rule sets in the kernel and each save tool
shows only its own, so both are read. Each save program runs only when it has something to
show, because a helper program costs 1–2 ms and most namespaces have no rules at all:

* the nft backend stores its rules in nftables tables named like the iptables tables (`ip
  filter`, `ip6 nat`...): one netlink dump lists the tables (shared with the nftables
  collector, which runs next and leaves the tables shown here in full to these records);
* the legacy backend lists its tables in /proc/thread-self/net/ip_tables_names (and
  ip6_tables_names); those files are empty until a legacy table is used in this namespace.

The rules start the namespace's Firewall record; the nftables collector adds the nftables
ruleset to it, so each half survives if the other fails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from netdiag.collect import iptables_save, nftables, save_reuse
from netdiag.errors import CollectError, KernelFeatureMissing, PermissionDenied
from netdiag.model import Firewall, NftTable
from netdiag.model.facts import XTABLES_TABLES

NAME = "firewall"


@dataclass(frozen=True, slots=True)
class SaveTool:
    backend: str
    family: int
    program: str


SAVE_TOOLS = (
    SaveTool("nft", 4, "iptables-nft-save"),
    SaveTool("nft", 6, "ip6tables-nft-save"),
    SaveTool("legacy", 4, "iptables-legacy-save"),
    SaveTool("legacy", 6, "ip6tables-legacy-save"),
)

_NFT_FAMILY = {4: "ip", 6: "ip6"}
_LEGACY_NAMES = {4: "/proc/thread-self/net/ip_tables_names",
                 6: "/proc/thread-self/net/ip6_tables_names"}


def collect(ctx) -> dict:
    try:
        nft_tables = nftables.tables(ctx)
    except (CollectError, KernelFeatureMissing, PermissionDenied):
        # unknown (the nftables collector will say why): ask the save programs rather than
        # miss rules
        nft_tables = None
    chains, rules = [], []
    for tool in SAVE_TOOLS:
        if not _has_rules(tool, nft_tables):
            continue
        found_chains, found_rules = _save(ctx, tool)
        chains.extend(found_chains)
        rules.extend(found_rules)
    return {"firewall": Firewall(iptables_chains=tuple(chains), iptables_rules=tuple(rules))}


def _save(ctx, tool: SaveTool) -> save_reuse.Parsed:
    """The save program's records, or those of a namespace with the same nftables ruleset
    read before in this snapshot, or with one that differs only in ports (save_reuse.py)."""
    if tool.backend != "nft":
        return _run(ctx, tool)
    kept = ctx.shared.setdefault("iptables-nft-save", save_reuse.Kept())
    try:
        ruleset = save_reuse.read(ctx, tool.family)
    except (CollectError, KernelFeatureMissing, PermissionDenied):
        ruleset = None
    variant = None
    if ruleset is not None:
        found = kept.get(ruleset.key)
        if found is not None:
            return save_reuse.with_counters(found, ruleset)
        variant, trusted = kept.variant(ruleset)
        if variant is not None and trusted:
            return save_reuse.with_counters(variant, ruleset)
    parsed = _run(ctx, tool)
    if ruleset is not None and save_reuse.generation(ctx) & 0xFFFF == ruleset.generation:
        kept.put(ruleset, parsed, variant)
    return parsed


def _run(ctx, tool: SaveTool) -> save_reuse.Parsed:
    return iptables_save.parse(ctx.helper([tool.program, "-c"]), tool.backend, tool.family)


def _has_rules(tool: SaveTool, nft_tables: tuple[NftTable, ...] | None) -> bool:
    if tool.backend == "legacy":
        return bool(_read(_LEGACY_NAMES[tool.family]).strip())
    if nft_tables is None:
        return True
    family = _NFT_FAMILY[tool.family]
    return any(t.family == family and t.name in XTABLES_TABLES for t in nft_tables)


def _read(path: str) -> bytes:
    """The file's start (enough to tell empty from not; a plain open() and read() cost several
    times as much, twice per namespace)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # ip_tables (or ip6_tables) is not in this kernel
        return b""
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)
