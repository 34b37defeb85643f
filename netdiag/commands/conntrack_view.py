"""`netdiag show conntrack [--ns REF] [--addr A] [--port P]`: each namespace's tracked
connections with their NAT translations — `conntrack -L` in every namespace at once.

Read live over ctnetlink (netdiag/collect/conntrack.py; a snapshot holds only the table's
counts): one block per namespace, headed as `show` heads it, one row per connection as its
first packet went, where NAT took its destination (DNAT) and its source (SNAT), TCP's state,
whether it was answered and the seconds it has left. `--addr`/`--port` keep the connections
with that address or port at any end, before or after NAT. Without `--ns`, only the
namespaces that track something are shown.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

from netdiag import terminal
from netdiag.commands.common import print_json, print_table
from netdiag.errors import EXIT_COLLECT, NetdiagError, UsageError

if TYPE_CHECKING:
    from netdiag.collect.conntrack import Tracked

HEADERS = ("PROTO", "ORIGINAL", "DNAT TO", "SNAT TO", "STATE", "REPLIED", "TIMEOUT")


def rows(entries: Sequence[Tracked]) -> list[tuple[object, ...]]:
    from netdiag.collect.conntrack import endpoint

    # A translation's `dst` is the translated end: the new destination, the new source.
    return [(e.proto, e.original.text, endpoint(e.dnat.dst, e.dnat.dport) if e.dnat else "",
             endpoint(e.snat.dst, e.snat.dport) if e.snat else "", e.state,
             "yes" if e.replied else "no", e.timeout) for e in entries]


def run(args: argparse.Namespace) -> int:
    import ipaddress

    from netdiag import netns
    from netdiag.collect import conntrack, scope
    from netdiag.commands.show import heading

    if getattr(args, "from_file", None):
        raise UsageError("show conntrack reads the kernel now: snapshots hold only the "
                         "table's counts (drop --from)")
    address = ""
    if args.addr:
        try:
            address = str(ipaddress.ip_address(args.addr))
        except ValueError:
            raise UsageError(f"--addr {args.addr}: not an IP address") from None
    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: ports are between 1 and 65535")
    chosen = scope.select(args.ns, everything=False, engines=args.docker)
    look = terminal.look(args.color)
    found, failed = [], 0
    for ref in chosen.read:
        try:
            with netns.entered(ref.path):
                entries = conntrack.read_entries()
        except NetdiagError as exc:
            failed += 1
            print(f"netdiag: note: conntrack in {ref.display} not read: {exc}", file=sys.stderr)
            continue
        entries = [e for e in entries if e.touches(address, args.port or 0)]
        if entries or args.ns:
            found.append((ref, entries))
    if args.json:
        print_json([{"namespace": {"id": ref.id, "kind": ref.kind.value,
                                   "label": ref.display},
                     "connections": [as_json_entry(e) for e in entries]}
                    for ref, entries in found])
    else:
        for number, (ref, entries) in enumerate(found):
            if number:
                print()
            # show's heading, which reads only the state's ref
            print(look.paint(heading(SimpleNamespace(ref=ref)), "heading"))
            if entries:
                print_table(HEADERS, rows(entries), look)
            else:
                print("(none)")
        if not found and not failed:
            print("no tracked connections" + (" match" if address or args.port else ""))
    return EXIT_COLLECT if failed and not found else 0


def as_json_entry(entry: Tracked) -> dict:
    from netdiag.collect.conntrack import endpoint

    def tuple_of(t) -> dict:
        return {"src": t.src, "dst": t.dst, "sport": t.sport or None, "dport": t.dport or None}

    def translation(t) -> dict | None:  # from the end as sent to the end as translated
        return None if t is None else {"from": endpoint(t.src, t.sport),
                                       "to": endpoint(t.dst, t.dport)}

    return {"proto": entry.proto, "original": tuple_of(entry.original),
            "reply": tuple_of(entry.reply), "dnat": translation(entry.dnat),
            "snat": translation(entry.snat), "state": entry.state or None,
            "replied": entry.replied, "assured": entry.assured, "timeout": entry.timeout,
            "mark": entry.mark, "zone": entry.zone}
