"""Collector: the namespace's nftables ruleset, as NftTable, NftChain and NftRule records.

First a cheap netlink question — which tables does the namespace have? — because most
container namespaces have none and listing a ruleset costs far more. Then the ruleset is listed
twice, as JSON (structure and each rule's expressions) and as text with handles (each rule's
readable form), joined by handle. The listing goes through libnftables in-process (0.5 ms, no
fork), or the `nft` program when the library cannot be loaded (3 ms).

libnftables cannot be told to keep quiet about everything: its own messages go to the
context's error buffer, but the xtables code it calls to read iptables-nft's `xt` objects
writes straight to the process's standard error ("XT target MASQUERADE not found", for
ip6tables-nft's MASQUERADE once the IPv4 one was read) and standard output. Those lines broke
`check --quiet` and painted over the TUI, so the listing runs in a short-lived thread with a
file table of its own (unshare CLONE_FILES), whose fds 1 and 2 lead to a memory file: nothing
it calls can write to the terminal, and no other thread's output is touched. Where unshare is
refused (a container's seccomp profile), the `nft` program lists it instead.

The tables iptables-nft manages are not listed rule by rule: nft shows their xtables matches
and targets only as opaque `xt` objects, while the firewall collector (which runs first) has
read the same rules in full through iptables-nft-save. Such a table still appears as an
NftTable (origin "iptables-nft"), but its chains and rules are left to the iptables records,
and when every table is one of these (a Docker host, a container with published ports)
nothing is listed at all. A table is told by what it holds, never by its name (Debian's
native `table ip nat` is an nftables table like any other). It counts as iptables-nft's when:

* iptables-nft-save showed it: an `ip`/`ip6` table named like an iptables table whose base
  chains are iptables' own (not "incompatible");
* every expression in its rules is one iptables-nft writes itself (payload, meta, cmp,
  bitwise, counter, immediate, match, target) — no set lookups, ct, limit, log, nat..., so
  iptables-nft-save's reading of it (which silently drops what it does not understand) is
  the whole of it.

Every other table is native (origin "nft"); when iptables-nft-save showed one of those too,
its reading is dropped from the iptables records, so that no rule is counted twice.
"""

from __future__ import annotations

import ctypes
import json
import os
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

# What iptables-nft 1.8 writes into a rule (and iptables-nft-save reads back).
IPTABLES_NFT_EXPRESSIONS = frozenset({"payload", "meta", "cmp", "bitwise", "counter",
                                      "immediate", "match", "target"})
IPTABLES_NFT, NATIVE = "iptables-nft", "nft"
_IPTABLES_FAMILIES = {4: "ip", 6: "ip6"}

_NFT_CTX_OUTPUT_HANDLE = 1 << 3
_NFT_CTX_OUTPUT_JSON = 1 << 4
CLONE_FILES = 0x00000400
_libc = ctypes.CDLL(None, use_errno=True)

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
    firewall = without_native(firewall, {(t.family, t.name) for t in found} - skipped)
    if len(skipped) == len(found):
        return {"firewall": replace(firewall, nft_tables=tuple(
            replace(t, origin=IPTABLES_NFT) for t in found))}
    as_json, as_text = _list_ruleset(ctx)
    listed, chains, rules, sets = parse_ruleset(as_json, as_text, skip=skipped)
    return {"firewall": replace(firewall, nft_tables=listed, nft_chains=chains,
                                nft_rules=rules, nft_sets=sets)}


def without_native(firewall: Firewall, native: set[tuple[str, str]]) -> Firewall:
    """The firewall without iptables-nft-save's reading of native tables (the nftables
    records hold them in full)."""
    def kept(record) -> bool:
        return record.backend != "nft" or \
            (_IPTABLES_FAMILIES.get(record.family), record.table) not in native
    return replace(firewall, iptables_chains=tuple(filter(kept, firewall.iptables_chains)),
                   iptables_rules=tuple(filter(kept, firewall.iptables_rules)))


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
    nothing iptables-nft would not write."""
    foreign = set()
    for body in rule_messages:
        attrs = netlink.attributes(body, _NFGENMSG_SIZE)
        key = (NFPROTO_NAMES.get(body[0], str(body[0])),
               netlink.cstring(attrs.get(NFTA_RULE_TABLE, b"")))
        if key not in candidates or key in foreign:
            continue
        if not expression_names(attrs.get(NFTA_RULE_EXPRESSIONS, b"")) <= \
                IPTABLES_NFT_EXPRESSIONS:
            foreign.add(key)
    return frozenset(set(candidates) - foreign)


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
    try:
        with _LIBNFTABLES_LOCK:
            return without_terminal(lambda: _list_with(lib))
    except FileTableRefused:  # seccomp (a container without CAP_SYS_ADMIN): the program's
        return (ctx.helper(["nft", "-j", "list", "ruleset"]),  # stderr is caught anyway
                ctx.helper(["nft", "-a", "list", "ruleset"]))


def _list_with(lib) -> tuple[str, str]:
    # The context opens its netlink socket now, in the calling thread's namespace.
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


class FileTableRefused(CollectError):
    """unshare(CLONE_FILES) was refused (Docker's default seccomp profile allows unshare only
    with CAP_SYS_ADMIN)."""


def without_terminal(call):
    """What `call()` returns (or raises), called in a thread of its own whose standard output
    and error lead to a memory file that is thrown away.

    The thread unshares its file table first, so its fds 1 and 2 are its own: the other
    threads keep writing to the terminal meanwhile. A new thread starts in its creator's
    network namespace, so `call` runs in the namespace the caller entered. FileTableRefused
    when the thread cannot have a file table of its own (`call` is not called then).
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            if _libc.unshare(CLONE_FILES) != 0:
                raise FileTableRefused("cannot give the nftables listing a file table of its "
                                       "own: " + os.strerror(ctypes.get_errno()))
            sink = os.memfd_create("netdiag-nft-output", os.MFD_CLOEXEC)
            os.dup2(sink, 1)
            os.dup2(sink, 2)
            try:
                outcome["value"] = call()
            finally:
                _libc.fflush(None)  # C stdio's buffered stdout into the sink, not the terminal
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = exc
        # The thread's file table, and the sink with it, goes when the thread ends.

    thread = threading.Thread(target=run, name="netdiag-nft-listing")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


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

    Tables whose (family, name) is in `skip` are iptables-nft's: kept as tables without
    chains and rules.
    """
    try:
        items = json.loads(as_json)["nftables"] if as_json.strip() else []
    except (ValueError, KeyError, TypeError) as exc:
        raise CollectError(f"cannot read nft's JSON ruleset: {exc}") from None
    texts = rule_texts(as_text)
    devices = chain_devices(as_text)
    tables, chains, rules, sets = [], [], [], []
    for item in items:
        if "table" in item:
            t = item["table"]
            tables.append(NftTable(family=t["family"], name=t["name"],
                                   handle=t.get("handle", 0),
                                   origin=IPTABLES_NFT if (t["family"], t["name"]) in skip
                                   else NATIVE))
        elif "chain" in item:
            c = item["chain"]
            if (c["family"], c["table"]) in skip:
                continue
            chains.append(NftChain(family=c["family"], table=c["table"], name=c["name"],
                                   handle=c.get("handle", 0), type=c.get("type", ""),
                                   hook=c.get("hook", ""), priority=_priority(c.get("prio")),
                                   policy=c.get("policy", ""), devices=_devices(c, devices)))
        elif "rule" in item:
            r = item["rule"]
            if (r["family"], r["table"]) in skip:
                continue
            key = _RuleKey(r["family"], r["table"], r["chain"], r["handle"])
            rules.append(NftRule(family=key.family, table=key.table, chain=key.chain,
                                 handle=key.handle, text=texts.get(key, ""),
                                 expr=json.dumps(r.get("expr", []), separators=(",", ":")),
                                 comment=r.get("comment", "")))
        elif "set" in item or "map" in item:
            found = item.get("set") or item["map"]
            if (found["family"], found["table"]) not in skip:
                sets.append(_named_set(found, "map" in item))
    return tuple(tables), tuple(chains), tuple(rules), tuple(sets)


def _devices(chain: dict, devices: dict[tuple[str, str, str], tuple[str, ...]]
             ) -> tuple[str, ...]:
    """The devices a chain's hook is bound to (`netdev` ingress and egress, `inet` ingress):
    nft 1.0.6's JSON leaves them out, its text shows them."""
    bound = chain.get("dev") or devices.get((chain["family"], chain["table"], chain["name"]))
    if not chain.get("hook") or not bound:
        return ()
    return (bound,) if isinstance(bound, str) else tuple(bound)


_CHAIN_DEVICES = re.compile(r'\bhook \S+ (?:device "?([^"\s;]+)"?|devices = \{ ([^}]*) \})')


def chain_devices(as_text: str) -> dict[tuple[str, str, str], tuple[str, ...]]:
    """(family, table, chain) → the devices its hook is bound to, from `nft list ruleset`."""
    found = {}
    family = table = chain = ""
    for raw in as_text.splitlines():
        line = _HANDLE.sub("", raw.strip())
        if opened := _TABLE.match(line):
            family, table = opened.group(1), _unquote(opened.group(2))
        elif opened := _CHAIN.match(line):
            chain = _unquote(opened.group(1))
        elif bound := _CHAIN_DEVICES.search(line):
            names = bound.group(1) or bound.group(2)
            found[(family, table, chain)] = tuple(_unquote(name.strip())
                                                  for name in names.split(","))
    return found


def _named_set(found: dict, is_map: bool) -> NftSet:
    flags = found.get("flags", [])
    return NftSet(family=found["family"], table=found["table"], name=found["name"],
                  type=_type_name(found.get("type", "")),
                  elements=json.dumps(found.get("elem", []), separators=(",", ":")),
                  flags=tuple(flags if isinstance(flags, list) else [flags]),
                  map=_type_name(found.get("map", "")) if is_map else "")


def _type_name(kind) -> str:
    return " . ".join(kind) if isinstance(kind, list) else str(kind)


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
