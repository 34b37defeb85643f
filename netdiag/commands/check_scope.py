"""Which namespaces `check --ns REF` reads, and where the cross-namespace links lead.

A veth, VXLAN or macvlan whose other side lives in another namespace names that namespace
only by a netnsid (IFLA_LINK_NETNSID), a number local to the namespace that reports it. The
kernel translates: RTM_GETNSID with a namespace's file descriptor, asked from inside the
reporting namespace, answers the netnsid it uses for it. So the chosen namespaces' links are
read, each foreign netnsid is translated against the discovered namespaces, and the new
namespaces are read in turn (for their underlays) until nothing new turns up. Matching veth
interface indexes instead would be ambiguous on a busy host, where many pairs share them.

The translation itself lives in netdiag/collect/netnsids.py, which also completes every
collected snapshot with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from netdiag.collect import collect_snapshot
from netdiag.collect import links as links_collector
from netdiag.collect.netnsids import translate
from netdiag.model import NamespaceRef

MAX_ROUNDS = 8  # containers → bridge host → underlay: a few rounds reach everything


def wired(found: Sequence[NamespaceRef], chosen: Sequence[NamespaceRef],
          timeout: float | None = None) -> list[NamespaceRef]:
    """`chosen` first, then the discovered namespaces wired to them: every namespace a chosen
    one has a link into, and from those on only VXLAN underlays and macvlan parents — veths
    of the host would otherwise pull in every container on it."""
    selected = {ref.id: ref for ref in chosen}
    frontier = list(chosen)
    for _ in range(MAX_ROUNDS):
        if not frontier:
            break
        links_only = collect_snapshot(frontier, timeout=timeout, collectors=(links_collector,))
        new: dict[int, NamespaceRef] = {}
        for state in links_only.namespaces:
            is_chosen = any(ref.id == state.ref.id for ref in chosen)
            netnsids = {link.parent_netnsid for link in state.links
                        if link.parent_netnsid is not None and link.parent_netnsid >= 0
                        and (is_chosen or link.kind != "veth")}
            if not netnsids:
                continue
            for ns_id in translate(state.ref, netnsids, found).values():
                if ns_id not in selected and ns_id not in new:
                    new[ns_id] = next(ref for ref in found if ref.id == ns_id)
        selected.update(new)
        frontier = list(new.values())
    return list(selected.values())


