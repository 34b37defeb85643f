"""The README's main job: show this host's namespaces and a summary of its snapshot."""

from __future__ import annotations

import sys
import time

from netdiag import netns
from netdiag.collect import collect_snapshot
from netdiag.errors import NetdiagError


def main() -> int:
    try:
        found = netns.discover()
        started = time.perf_counter()
        snapshot = collect_snapshot(found)
        elapsed = time.perf_counter() - started
    except NetdiagError as exc:
        print(f"netdiag: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{len(found)} network namespaces on {snapshot.host.hostname} "
          f"(kernel {snapshot.host.kernel}), read in {elapsed * 1000:.0f} ms:")
    for ns in snapshot.namespaces:
        print(f"  {ns.ref.kind.value:6} {ns.ref.display:28} links={len(ns.links):<3} "
              f"addresses={len(ns.addresses):<3} routes={len(ns.routes):<4} "
              f"firewall rules={len(ns.firewall.iptables_rules) + len(ns.firewall.nft_rules)}")
    for gap in snapshot.gaps:
        print(f"  gap: {gap.collector}: {gap.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
