"""Which namespaces a command reads, and which ones the user asked about.

Every command that looks at live state — `show`, `snapshot`, `check`, `repair`, the TUI —
chooses its namespaces here, the same way. A `--ns REF` narrows what is *reported* and what
may be *changed*, not what is *read*: rules compare namespaces with each other (a VTEP on
another host, the other end of a veth, the same address elsewhere on the segment), so
`check --ns X` reads what `check --all` reads and reports the findings that involve X or a
namespace on its paths (checks.engine). Only `show` and `snapshot`, which report state rather
than judge it, read just the namespaces asked for. Docker's engines are read once, here:
discovery labels namespaces from their intent and the Snapshot keeps it (collect/docker.py).

`--ns self` alone is what works without root: it reads only the caller's own namespace.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from netdiag import netns
from netdiag.collect import discovery, docker, namespace_refs
from netdiag.collect.docker import Intent
from netdiag.errors import PermissionDenied
from netdiag.model import NamespaceRef


@dataclass(frozen=True, slots=True)
class ReadScope:
    read: tuple[NamespaceRef, ...]  # what to collect
    chosen: frozenset[int]  # the namespaces the user named; empty: all of them
    docker: Intent = Intent()  # the engines' intent, read once: labels came from it


def require_root(references: Sequence[str]) -> None:
    if os.geteuid() != 0 and any(ref != "self" for ref in references or ["all"]):
        raise PermissionDenied("netdiag needs root to enter other network namespaces "
                               "(run it with sudo, or use --ns self to read only your own)")


def select(references: Sequence[str], everything: bool = True,
           engines: Sequence[str] = ()) -> ReadScope:
    """The namespaces to read for `references` (all of them when it is empty): every
    namespace with `everything` (judging commands), else only the ones named. `engines` are
    the `--docker` URLs (default: every engine found; "none": none)."""
    require_root(references)
    if references and all(ref == "self" for ref in references):
        # Only one's own namespace is read, but labelled as discovery labels it (the host, a
        # named namespace, in a container the one it joined, named after its container) so
        # that `--ns self` and `--ns NAME` say the same. Looking around needs root; one's own
        # namespace does not.
        if os.geteuid() != 0 and netns.in_initial_pid_namespace():
            own = namespace_refs.resolve("self", [])
            return ReadScope(read=(own,), chosen=frozenset((own.id,)))
        intent = docker.read(engines)
        own = namespace_refs.resolve("self", discovery.discover(engines=intent.engines))
        return ReadScope(read=(own,), chosen=frozenset((own.id,)), docker=intent)
    intent = docker.read(engines)
    found = discovery.discover(engines=intent.engines)
    if not references:
        return ReadScope(read=tuple(found), chosen=frozenset(), docker=intent)
    chosen = {ref.id: ref for ref in namespace_refs.resolve_all(references, found,
                                                                 intent.engines)}
    if not everything:
        return ReadScope(read=tuple(chosen.values()), chosen=frozenset(chosen), docker=intent)
    known = {ref.id for ref in found}
    extra = tuple(ref for ref in chosen.values() if ref.id not in known)  # pid:N, a path
    return ReadScope(read=tuple(found) + extra, chosen=frozenset(chosen), docker=intent)
