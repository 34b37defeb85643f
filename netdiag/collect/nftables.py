"""Collector: the namespace's nftables ruleset, as NftTable, NftChain and NftRule records.

First a cheap netlink question — which tables does the namespace have? — because most
container namespaces have none and listing a ruleset costs far more. Then the ruleset is listed
twice, as JSON (structure and each rule's expressions) and as text with handles (each rule's
readable form), joined by handle. The listing goes through libnftables in-process (0.5 ms, no
fork), or the `nft` program when the library cannot be loaded (3 ms).

The tables iptables-nft manages are not listed rule by rule: nft shows their xtables matches
and targets only as opaque `xt` objects, while the firewall collector (which runs first) has
read the same rules in full through iptables-nft-save. Such a table still appears as an
NftTable, but its chains and rules are left to the iptables records, and when every table is
one of these (a Docker host, a container with published ports) nothing is listed at all. A
table counts as iptables-nft's only when all of this holds, so that native nftables content is
never hidden behind iptables-nft-save's reading of it (which silently drops what it does not
understand, such as set lookups):

* iptables-nft-save showed it (an `ip`/`ip6` table named like an iptables table, and not
  "incompatible");
* nft would mark it "managed by iptables-nft": at least one rule holds an xt match or target;
* every expression in its rules is one iptables-nft writes itself (payload, meta, cmp,
  bitwise, counter, immediate, match, target) — no set lookups, ct, limit, log, nat...
"""

from __future__ import annotations

import json
import re
import struct
import threading
from dataclasses import dataclass, replace
from functools import cache

from netdiag import netlink
from netdiag.errors import CollectError, KernelFeatureMissing, PermissionDenied
from netdiag.model import Firewall, NftChain, NftRule, NftSet, NftTable

NAME = "nftables"

NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE, NFT_MSG_GETRULE = 1, 7
NFTA_TABLE_NAME, NFTA_TABLE_HANDLE = 1, 4
NFTA_RULE_TABLE, NFTA_RULE_EXPRESSIONS = 1, 4
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME = 1
NFPROTO_NAMES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
_NFGENMSG_ANY_FAMILY = struct.pack("=BBH", 0, 0, 0)  # nfgenmsg: every family, version 0
_NFGENMSG_SIZE = 4
_U64_BE = struct.Struct(">Q")

# What iptables-nft 1.8 writes into a rule (and iptables-nft-save reads back); xt compat
# matches and targets are the mark nft itself uses to call a table "managed by iptables-nft".
IPTABLES_NFT_EXPRESSIONS = frozenset({"payload", "meta", "cmp", "bitwise", "counter",
                                      "immediate", "match", "target"})
XT_EXPRESSIONS = frozenset({"match", "target"})
_IPTABLES_FAMILIES = {4: "ip", 6: "ip6"}

_NFT_CTX_OUTPUT_HANDLE = 1 << 3
_NFT_CTX_OUTPUT_JSON = 1 << 4

# libnftables (and the libxtables it calls to print xt matches) keeps some process-wide state,
# so the collector threads take turns; a listing is short and pure CPU anyway.
_LIBNFTABLES_LOCK = threading.Lock()


def dump(ctx, msg_type: int, what: str) -> list[bytes]:
    """The bodies of an nftables dump of every family, read once per namespace (the firewall
    collector's save_reuse and this collector share them)."""
    def read() -> list[bytes]:
        answers = netlink.dump(netlink.NETLINK_NETFILTER,
                               (NFNL_SUBSYS_NFTABLES << 8) | msg_type,
                               _NFGENMSG_ANY_FAMILY, what, ctx)
        return [body for _kind, body in answers]
    return ctx.once(f"nftables.{msg_type}", read)


def tables(ctx) -> tuple[NftTable, ...]:
    """Every nftables table of the namespace, as the kernel lists them."""
    return ctx.once("nftables.tables", lambda: parse_tables(
        dump(ctx, NFT_MSG_GETTABLE, "nftables tables")))


def parse_tables(bodies: list[bytes]) -> tuple[NftTable, ...]:
    found = []
    for body in bodies:
        attrs = netlink.attributes(body, _NFGENMSG_SIZE)
        handle = attrs.get(NFTA_TABLE_HANDLE, b"")
        found.append(NftTable(family=NFPROTO_NAMES.get(body[0], str(body[0])),
                              name=netlink.cstring(attrs.get(NFTA_TABLE_NAME, b"")),
                              handle=_U64_BE.unpack(handle)[0] if len(handle) == 8 else 0))
    return tuple(found)


def collect(ctx) -> dict:
    found = tables(ctx)
    firewall = ctx.found.get("firewall") or Firewall()  # the iptables half, when it was read
    if not found:
        return {"firewall": replace(firewall, nft_tables=())}
    skipped = iptables_nft_tables(ctx, firewall, found)
    if len(skipped) == len(found):
        return {"firewall": replace(firewall, nft_tables=found)}
    as_json, as_text = _list_ruleset(ctx)
    listed, chains, rules, sets = parse_ruleset(as_json, as_text, skip=skipped)
    return {"firewall": replace(firewall, nft_tables=listed, nft_chains=chains,
                                nft_rules=rules, nft_sets=sets)}


def iptables_nft_tables(ctx, firewall: Firewall,
                        found: tuple[NftTable, ...]) -> frozenset[tuple[str, str]]:
    """(family, name) of the tables whose rules the iptables records already hold in full
    (see the module's docstring)."""
    shown = {(_IPTABLES_FAMILIES.get(chain.family), chain.table)
             for chain in firewall.iptables_chains if chain.backend == "nft"}
    candidates = shown & {(table.family, table.name) for table in found}
    if not candidates:
        return frozenset()
    try:
        rules = dump(ctx, NFT_MSG_GETRULE, "nftables rules")
    except (CollectError, KernelFeatureMissing, PermissionDenied):  # list all, not guess
        return frozenset()
    return managed_by_iptables_nft(rules, candidates)


def managed_by_iptables_nft(rule_messages, candidates) -> frozenset[tuple[str, str]]:
    """Of the `candidates` (family, table), those whose rules (NFT_MSG_NEWRULE bodies) hold
    an xt expression and nothing iptables-nft would not write."""
    with_xt, foreign = set(), set()
    for body in rule_messages:
        attrs = netlink.attributes(body, _NFGENMSG_SIZE)
        key = (NFPROTO_NAMES.get(body[0], str(body[0])),
               netlink.cstring(attrs.get(NFTA_RULE_TABLE, b"")))
        if key not in candidates or key in foreign:
            continue
        names = expression_names(attrs.get(NFTA_RULE_EXPRESSIONS, b""))
        if not names <= IPTABLES_NFT_EXPRESSIONS:
            foreign.add(key)
        elif names & XT_EXPRESSIONS:
            with_xt.add(key)
    return frozenset(with_xt - foreign)


def expression_names(data: bytes) -> set[str]:
    """The expression kinds ("payload", "cmp", "match"...) in an NFTA_RULE_EXPRESSIONS list."""
    names = set()
    offset = 0
    while offset + 4 <= len(data):
        length, _kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        element = netlink.attributes(data[offset + 4:offset + length])
        names.add(netlink.cstring(element.get(NFTA_EXPR_NAME, b"")))
        offset += (length + 3) & ~3
    return names


# --- listing ------------------------------------------------------------------------------


@cache
def _libnftables():
    """The loaded libnftables with its prototypes declared, or None when it is not installed."""
    import ctypes.util  # here: it costs 6 ms to import, and most snapshots list no ruleset

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


def parse_ruleset(as_json: str, as_text: str, skip=frozenset()
                  ) -> tuple[tuple[NftTable, ...], tuple[NftChain, ...], tuple[NftRule, ...],
                             tuple[NftSet, ...]]:
    """`nft -j list ruleset` and `nft -a list ruleset` output → tables, chains, rules and
    named sets.

    Tables whose (family, name) is in `skip` are kept as tables without chains and rules.
    """
    try:
        items = json.loads(as_json)["nftables"] if as_json.strip() else []
    except (ValueError, KeyError, TypeError) as exc:
        raise CollectError(f"cannot read nft's JSON ruleset: {exc}") from None
    texts = rule_texts(as_text)
    tables, chains, rules, sets = [], [], [], []
    for item in items:
        if "table" in item:
            t = item["table"]
            tables.append(NftTable(family=t["family"], name=t["name"],
                                   handle=t.get("handle", 0)))
        elif "chain" in item:
            c = item["chain"]
            if (c["family"], c["table"]) in skip:
                continue
            chains.append(NftChain(family=c["family"], table=c["table"], name=c["name"],
                                   handle=c.get("handle", 0), type=c.get("type", ""),
                                   hook=c.get("hook", ""), priority=_priority(c.get("prio")),
                                   policy=c.get("policy", "")))
        elif "rule" in item:
            r = item["rule"]
            if (r["family"], r["table"]) in skip:
                continue
            key = _RuleKey(r["family"], r["table"], r["chain"], r["handle"])
            rules.append(NftRule(family=key.family, table=key.table, chain=key.chain,
                                 handle=key.handle, text=texts.get(key, ""),
                                 expr=json.dumps(r.get("expr", []), separators=(",", ":")),
                                 comment=r.get("comment", "")))
        elif "set" in item and (item["set"]["family"], item["set"]["table"]) not in skip:
            found = item["set"]
            kind = found.get("type", "")
            flags = found.get("flags", [])
            sets.append(NftSet(family=found["family"], table=found["table"],
                               name=found["name"],
                               type=" . ".join(kind) if isinstance(kind, list) else str(kind),
                               elements=json.dumps(found.get("elem", []),
                                                   separators=(",", ":")),
                               flags=tuple(flags if isinstance(flags, list) else [flags])))
    return tuple(tables), tuple(chains), tuple(rules), tuple(sets)


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
