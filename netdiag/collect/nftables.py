"""Collector: the namespace's nftables ruleset, as NftTable, NftChain and NftRule records.

First a cheap netlink question — does the namespace have any table? — because most container
namespaces have none and listing a ruleset costs far more. Only then the ruleset is listed
twice, as JSON (structure and each rule's expressions) and as text with handles (each rule's
readable form), joined by handle. The listing goes through libnftables in-process (0.5 ms, no
fork), or the `nft` program when the library cannot be loaded (3 ms).

Rules that iptables-nft wrote show up here too, their xtables matches as opaque `xt` objects;
the firewall collector reads the same rules in full through iptables-nft-save.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import re
import struct
import threading
from dataclasses import dataclass
from functools import cache

from netdiag.collect import netlink_dump
from netdiag.errors import CollectError
from netdiag.model import Firewall, NftChain, NftRule, NftTable

NAME = "nftables"

NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE = 1
NFTA_TABLE_NAME = 1
NFPROTO_NAMES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}

_NFT_CTX_OUTPUT_HANDLE = 1 << 3
_NFT_CTX_OUTPUT_JSON = 1 << 4

# libnftables (and the libxtables it calls to print xt matches) keeps some process-wide state,
# so the collector threads take turns; a listing is short and pure CPU anyway.
_LIBNFTABLES_LOCK = threading.Lock()


def list_tables() -> tuple[tuple[str, str], ...]:
    """(family, name) of every nftables table in the current thread's namespace."""
    request = struct.pack("=BBH", 0, 0, 0)  # nfgenmsg: every family, version 0
    answers = netlink_dump.dump(netlink_dump.NETLINK_NETFILTER,
                                (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, request,
                                "nftables tables")
    tables = []
    for _kind, body in answers:
        family = NFPROTO_NAMES.get(body[0], str(body[0]))
        name = netlink_dump.attributes(body, 4).get(NFTA_TABLE_NAME, b"")
        tables.append((family, netlink_dump.cstring(name)))
    return tuple(tables)


def collect(ctx) -> dict:
    if not list_tables():
        return {"firewall": Firewall()}
    as_json, as_text = _list_ruleset(ctx)
    tables, chains, rules = parse_ruleset(as_json, as_text)
    return {"firewall": Firewall(nft_tables=tables, nft_chains=chains, nft_rules=rules)}


# --- listing ------------------------------------------------------------------------------


@cache
def _libnftables():
    """The loaded libnftables with its prototypes declared, or None when it is not installed."""
    path = ctypes.util.find_library("nftables")
    if not path:
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


def _list_ruleset(ctx) -> tuple[str, str]:
    """The ruleset as (JSON, text with handles)."""
    lib = _libnftables()
    if lib is None:
        return (ctx.helper(["nft", "-j", "list", "ruleset"]),
                ctx.helper(["nft", "-a", "list", "ruleset"]))
    with _LIBNFTABLES_LOCK:
        # The context opens its netlink socket now, in this thread's namespace.
        nft = lib.nft_ctx_new(0)
        if not nft:
            raise CollectError("libnftables could not create a context")
        try:
            lib.nft_ctx_buffer_output(nft)
            lib.nft_ctx_buffer_error(nft)  # also swallows "managed by iptables-nft" warnings
            return (_run(lib, nft, _NFT_CTX_OUTPUT_JSON),
                    _run(lib, nft, _NFT_CTX_OUTPUT_HANDLE))
        finally:
            lib.nft_ctx_free(nft)


def _run(lib, nft, flags: int) -> str:
    lib.nft_ctx_output_set_flags(nft, flags)
    if lib.nft_run_cmd_from_buffer(nft, b"list ruleset") != 0:
        error = (lib.nft_ctx_get_error_buffer(nft) or b"").decode(errors="replace").strip()
        raise CollectError(f"nft list ruleset: {error.splitlines()[-1] if error else 'failed'}")
    return (lib.nft_ctx_get_output_buffer(nft) or b"").decode(errors="replace")


# --- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RuleKey:
    family: str
    table: str
    chain: str
    handle: int


def parse_ruleset(as_json: str, as_text: str) -> tuple[tuple[NftTable, ...],
                                                     tuple[NftChain, ...],
                                                     tuple[NftRule, ...]]:
    """`nft -j list ruleset` and `nft -a list ruleset` output → tables, chains, rules."""
    try:
        items = json.loads(as_json)["nftables"] if as_json.strip() else []
    except (ValueError, KeyError, TypeError) as exc:
        raise CollectError(f"cannot read nft's JSON ruleset: {exc}") from None
    texts = rule_texts(as_text)
    tables, chains, rules = [], [], []
    for item in items:
        if "table" in item:
            t = item["table"]
            tables.append(NftTable(family=t["family"], name=t["name"],
                                   handle=t.get("handle", 0)))
        elif "chain" in item:
            c = item["chain"]
            chains.append(NftChain(family=c["family"], table=c["table"], name=c["name"],
                                   handle=c.get("handle", 0), type=c.get("type", ""),
                                   hook=c.get("hook", ""), priority=_priority(c.get("prio")),
                                   policy=c.get("policy", "")))
        elif "rule" in item:
            r = item["rule"]
            key = _RuleKey(r["family"], r["table"], r["chain"], r["handle"])
            rules.append(NftRule(family=key.family, table=key.table, chain=key.chain,
                                 handle=key.handle, text=texts.get(key, ""),
                                 expr=json.dumps(r.get("expr", []), separators=(",", ":")),
                                 comment=r.get("comment", "")))
    return tuple(tables), tuple(chains), tuple(rules)


def _priority(value) -> int:
    # nft -j prints a number, or {"+": ["srcnat", 10]}-style objects for symbolic priorities
    # (seen on older nft); the number is what matters for ordering and is kept when present.
    return value if isinstance(value, int) else 0


_HANDLE = re.compile(r"\s*# handle (\d+)$")
_TABLE = re.compile(r"^table (\S+) (\S+) \{$")
_CHAIN = re.compile(r"^chain (\S+) \{$")


def rule_texts(as_text: str) -> dict[_RuleKey, str]:
    """(family, table, chain, handle) → the rule as `nft -a list ruleset` prints it."""
    texts: dict[_RuleKey, str] = {}
    blocks: list[str] = []  # the kind of each open { } block: table, chain, set, map...
    family = table = chain = ""
    for raw in as_text.splitlines():
        line = raw.strip()
        handle = _HANDLE.search(line)
        body = line[:handle.start()] if handle else line
        if body.endswith("{"):
            blocks.append(body.split(" ", 1)[0])
            if found := _TABLE.match(body):
                family, table = found.group(1), _unquote(found.group(2))
            elif found := _CHAIN.match(body):
                chain = _unquote(found.group(1))
        elif body == "}":
            if blocks:
                blocks.pop()
        elif handle and blocks and blocks[-1] == "chain":
            texts[_RuleKey(family, table, chain, int(handle.group(1)))] = body
    return texts


def _unquote(name: str) -> str:
    # nft 1.0.6 prints every name bare; later versions quote names that are not identifiers
    return name[1:-1] if len(name) > 1 and name[0] == name[-1] == '"' else name
