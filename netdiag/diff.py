"""What changed between two Snapshots: namespaces added or removed, and per namespace and
section the records added, removed or changed.

Pure logic, no I/O: `netdiag diff` prints the result, and tests use it to prove that a command
left the kernel as it found it. Namespaces are matched by id (nsfs inode), and those left
over by label, so a snapshot from before a reboot or a namespace re-created under the same
name still lines up. Records are matched by a key per section (a link by name, a route by
family, table, destination, metric and device...); two records with the same key that differ
are "changed", with the fields that differ. Facts that change without anyone changing the
configuration are ignored: counters (packets, bytes, conntrack count, IPVS connection
counts), nft handles and socket inodes, and the snapshot's created_at — and, unless
`all_fields` is asked for, the records the kernel makes and forgets by itself: neighbour
entries it learned (reachable, stale, delay...; permanent ones stay), forwarding entries it
learned, and the `local` table's kernel routes that follow the addresses. An iptables rule's
position is compared as the order of the rules a chain has in both snapshots, so inserting
one rule reports that rule, not every rule below it.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from netdiag.model import NamespaceState, Snapshot
from netdiag.model.index import TABLE_NAMES

# Fields that change by themselves: traffic counters, kernel-assigned handles and inodes.
IGNORED_FIELDS = frozenset({"packets", "bytes", "count", "handle", "inode", "active",
                            "inactive", "position"})

# nft prints a rule's counter inside its text and its JSON expression.
NFT_COUNTERS = (re.compile(r"counter packets \d+ bytes \d+"), "counter")
NFT_JSON_COUNTERS = (re.compile(r'"counter":\s*\{"packets":\s*\d+,\s*"bytes":\s*\d+\}'),
                     '"counter":{}')


@dataclass(frozen=True, slots=True)
class Change:
    namespace: str  # the namespace's display label ("" for snapshot-wide changes)
    section: str  # namespace, links, addresses, routes, ..., firewall.iptables_rules
    kind: str  # added, removed, changed
    key: str  # which record: "eth0", "ipv4 main 10.0.0.0/24 metric 0 dev eth0"
    details: tuple[str, ...] = ()  # changed: "mtu: 1500 → 1450"; added/removed: the record


Key = Callable[[Any], tuple]

# Section → how its records are identified. Records with equal keys are compared field by
# field; a key that is not unique on either side falls back to comparing whole records.
SECTION_KEYS: dict[str, Key] = {
    "links": lambda r: (r.name,),
    "addresses": lambda r: (r.ifname, r.cidr),
    "routes": lambda r: (f"ipv{r.family}", _table(r.table), r.type, r.dst, "metric", r.metric,
                         "dev", r.dev or "-"),
    "rules": lambda r: (f"ipv{r.family}", "priority", r.priority),
    "neighbours": lambda r: (r.ifname, r.address),
    "fdb": lambda r: (r.ifname, r.mac, *(("vlan", r.vlan) if r.vlan else ()),
                      *(("master", r.master) if r.master else ())),
    "ipvs": lambda r: (r.protocol or "fwmark", r.address, r.port, r.fwmark),
    "firewall.iptables_chains": lambda r: (r.backend, f"ipv{r.family}", r.table, r.name),
    "firewall.iptables_rules": lambda r: (r.backend, f"ipv{r.family}", r.table, r.chain,
                                          r.text or repr((r.matches, r.target,
                                                          r.target_options))),
    "firewall.nft_tables": lambda r: (r.family, r.name),
    "firewall.nft_chains": lambda r: (r.family, r.table, r.name),
    "firewall.nft_rules": lambda r: (r.family, r.table, r.chain, without_counters(r.text)),
    "firewall.ipsets": lambda r: (f"ipv{r.family}", r.type, r.name),
    "sockets": lambda r: (r.protocol, f"ipv{r.family}", r.address, r.port),
    "sysctls": lambda r: (r.name,),
    "xfrm_states": lambda r: (r.src, r.dst, r.proto, r.spi),
    "xfrm_policies": lambda r: (r.src, r.dst, r.direction, r.mark),
}

# Sections holding one record rather than a list.
SINGLE_SECTIONS = ("dns", "conntrack")


def _table(table: int) -> str:
    return TABLE_NAMES.get(table, f"table {table}")


def diff(before: Snapshot, after: Snapshot, all_fields: bool = False) -> tuple[Change, ...]:
    """Every difference between two snapshots; empty when they describe the same state
    (`all_fields`: also what the kernel learns and forgets by itself)."""
    changes: list[Change] = []
    pairs, removed, added = match_namespaces(before.namespaces, after.namespaces)
    for state in removed:
        changes.append(Change(state.ref.display, "namespace", "removed", state.ref.display,
                              (f"inode {state.ref.id}",)))
    for state in added:
        changes.append(Change(state.ref.display, "namespace", "added", state.ref.display,
                              (f"inode {state.ref.id}",)))
    for old, new in pairs:
        if not all_fields:
            old, new = _without_volatile(old), _without_volatile(new)
        changes.extend(diff_namespace(old, new))
    return tuple(changes)


def _without_volatile(state: NamespaceState) -> NamespaceState:
    """The namespace without what the kernel learns and forgets as traffic comes and goes."""
    return dataclasses.replace(
        state,
        neighbours=tuple(n for n in state.neighbours if {"permanent", "noarp"} & set(n.state)),
        fdb=tuple(e for e in state.fdb if e.state in ("permanent", "static", "noarp")),
        routes=tuple(r for r in state.routes if not (r.table == 255 and r.protocol == "kernel")))


def match_namespaces(before: Sequence[NamespaceState], after: Sequence[NamespaceState]):
    """(pairs, removed, added): matched by id first, then the rest by a unique label."""
    after_by_id = {state.ref.id: state for state in after}
    pairs = [(state, after_by_id[state.ref.id]) for state in before
             if state.ref.id in after_by_id]
    matched = {state.ref.id for state, _ in pairs}
    old_rest = [state for state in before if state.ref.id not in matched]
    new_rest = [state for state in after if state.ref.id not in matched]
    old_labels = _unique_labels(old_rest)
    new_labels = _unique_labels(new_rest)
    pairs.extend((state, new_labels[label]) for label, state in old_labels.items()
                 if label in new_labels)
    relabelled = {id(state) for pair in pairs for state in pair}
    removed = [state for state in old_rest if id(state) not in relabelled]
    added = [state for state in new_rest if id(state) not in relabelled]
    return pairs, removed, added


def _unique_labels(states: Iterable[NamespaceState]) -> dict[str, NamespaceState]:
    by_label: dict[str, list[NamespaceState]] = defaultdict(list)
    for state in states:
        if state.ref.display:
            by_label[state.ref.display].append(state)
    return {label: found[0] for label, found in by_label.items() if len(found) == 1}


def diff_namespace(before: NamespaceState, after: NamespaceState) -> Iterator[Change]:
    label = after.ref.display
    for section, key in SECTION_KEYS.items():
        yield from diff_records(label, section, _records(before, section),
                                _records(after, section), key)
    yield from _iptables_order(label, before.firewall.iptables_rules,
                               after.firewall.iptables_rules)
    for section in SINGLE_SECTIONS:
        old, new = getattr(before, section), getattr(after, section)
        if old is None or new is None:
            if (old is None) != (new is None):
                kind = "added" if old is None else "removed"
                yield Change(label, section, kind, section, _summary(old or new))
            continue
        details = tuple(field_changes(old, new))
        if details:
            yield Change(label, section, "changed", section, details)


def _records(state: NamespaceState, section: str) -> tuple:
    obj: Any = state
    for part in section.split("."):
        obj = getattr(obj, part)
    return obj


def diff_records(label: str, section: str, before: Sequence, after: Sequence,
                 key: Key) -> Iterator[Change]:
    old = _group(before, key)
    new = _group(after, key)
    for k in _ordered_keys(old, new):
        olds, news = old.get(k, []), new.get(k, [])
        name = " ".join(str(part) for part in k)
        if len(olds) == 1 and len(news) == 1:
            details = tuple(field_changes(olds[0], news[0]))
            if details:
                yield Change(label, section, "changed", name, details)
            continue
        # Absent on one side, or a key that is not unique: compare the whole records.
        old_facts = [_comparable(r) for r in olds]
        new_facts = [_comparable(r) for r in news]
        yield from (Change(label, section, "removed", name, _summary(record))
                    for record in _unmatched(olds, old_facts, new_facts))
        yield from (Change(label, section, "added", name, _summary(record))
                    for record in _unmatched(news, new_facts, old_facts))


def _unmatched(records: Sequence, facts: list, other_facts: list) -> Iterator[Any]:
    """The records whose facts the other side lacks (a multiset difference)."""
    remaining = list(other_facts)
    for record, fact in zip(records, facts):
        if fact in remaining:
            remaining.remove(fact)
        else:
            yield record


def _group(records: Sequence, key: Key) -> dict[tuple, list]:
    groups: dict[tuple, list] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return groups


def _ordered_keys(old: dict, new: dict) -> list[tuple]:
    """Keys in the order they first appear: the old snapshot's, then the new ones."""
    return list(dict.fromkeys([*old, *new]))


def _comparable(record: Any) -> Any:
    """A record's facts without the ignored fields, for equality (nested records included)."""
    if dataclasses.is_dataclass(record):
        return tuple((f.name, _comparable(getattr(record, f.name)))
                     for f in dataclasses.fields(record) if f.name not in IGNORED_FIELDS)
    if isinstance(record, tuple):
        return tuple(_comparable(item) for item in record)
    if isinstance(record, str) and "counter" in record:
        return without_counters(record)
    return record


def without_counters(text: str) -> str:
    for pattern, replacement in (NFT_COUNTERS, NFT_JSON_COUNTERS):
        text = pattern.sub(replacement, text)
    return text


def field_changes(old: Any, new: Any, prefix: str = "") -> Iterator[str]:
    """"field: old → new" for each field that differs (nested records by dotted name)."""
    for f in dataclasses.fields(old):
        if f.name in IGNORED_FIELDS:
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if _comparable(a) == _comparable(b):
            continue
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b) and type(a) is type(b):
            yield from field_changes(a, b, f"{name}.")
        else:
            yield f"{name}: {_text(a)} → {_text(b)}"


def _text(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_text(v) for v in value) + ")"
    if dataclasses.is_dataclass(value):
        return " ".join(_summary(value))
    if value == "" or value is None:
        return "-"
    return str(value)


def _summary(record: Any) -> tuple[str, ...]:
    """A record's fields that are not at their defaults, as "name=value" words."""
    words = []
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if (f.name in IGNORED_FIELDS or f.name == "expr" or value == f.default
                or value in ((), "", None)):
            continue  # "expr" is the JSON form of the rule text beside it
        words.append(f"{f.name}={_text(value)}")
    return tuple(words)


def _iptables_order(label: str, before: Sequence, after: Sequence) -> Iterator[Change]:
    """One change per chain whose rules (those present in both) run in a different order."""
    key = SECTION_KEYS["firewall.iptables_rules"]

    def orders(rules: Sequence) -> dict[tuple, list[tuple]]:
        chains: dict[tuple, list[tuple]] = defaultdict(list)
        for rule in sorted(rules, key=lambda r: r.position):
            chains[(rule.backend, rule.family, rule.table, rule.chain)].append(key(rule))
        return chains

    old, new = orders(before), orders(after)
    for chain in [chain for chain in old if chain in new]:
        common = set(old[chain]) & set(new[chain])
        old_order = [k for k in old[chain] if k in common]
        new_order = [k for k in new[chain] if k in common]
        if old_order != new_order:
            backend, family, table, name = chain
            yield Change(label, "firewall.iptables_rules", "changed",
                         f"{backend} ipv{family} {table} {name}", ("rule order changed",))
