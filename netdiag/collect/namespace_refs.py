"""Resolve the namespace references users give (`--ns REF`, `path SRC`) to namespaces.

A reference is `self`, `host`, `pid:N`, `container:NAME`, `pod:NAME` (a Podman pod), `inode:N`,
a path, or a name (a named namespace, a Docker or Podman container or sandbox, a lab node as
LAB/NODE, or a label); `container:NAME` names any container an engine knows, one that joined
another's namespace (a pod's member, `--network container:X`) included; in a fleet
snapshot, MACHINE/REF is REF among that machine's namespaces. A name that several namespaces
share (two engines' "docker ingress sandbox", two overlays named alike) is never picked
silently: the error lists them, by `inode:N`, which names exactly one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from netdiag.collect.discovery import discover
from netdiag.errors import Ambiguous, NotFound
from netdiag.model import NamespaceRef, NsKind
from netdiag.model.docker import DockerEngine
from netdiag.netns import inode_of, namespace_inode


def resolve(reference: str, namespaces: Sequence[NamespaceRef] | None = None,
            engines: Sequence[DockerEngine] = ()) -> NamespaceRef:
    """A command-line namespace reference → the namespace it names.

    Accepts `self`, `host`, `pid:N`, `container:NAME`, `pod:NAME`, `inode:N`, a path, or a name
    (a named namespace, a Docker or Podman container or sandbox, a lab node as LAB/NODE, or a
    label). A name
    several namespaces share raises Ambiguous, naming each (with its engine, from `engines`).
    """
    return resolve_all([reference], namespaces, engines)[0]


def resolve_all(references: Sequence[str],
                namespaces: Sequence[NamespaceRef] | None = None,
                engines: Sequence[DockerEngine] = ()) -> list[NamespaceRef]:
    """`resolve` for many references, indexing the namespaces once (`--ns` a thousand times)."""
    index = _RefIndex(list(namespaces) if namespaces is not None else discover(), engines)
    return [index.resolve(reference) for reference in references]


class _RefIndex:
    def __init__(self, namespaces: list[NamespaceRef], engines: Sequence[DockerEngine] = ()):
        self.engines = engines
        self.by_id = {ns.id: ns for ns in namespaces}
        self.by_field: list[dict[str, dict[int, NamespaceRef]]] = []
        for field in ("name", "container", "label"):  # in this order of precedence
            table: dict[str, dict[int, NamespaceRef]] = {}
            for ns in namespaces:
                table.setdefault(getattr(ns, field), {})[ns.id] = ns
            self.by_field.append(table)
        self.containers: dict[str, dict[int, NamespaceRef]] = {}
        for ns in namespaces:
            if ns.kind in (NsKind.DOCKER, NsKind.PODMAN):
                self.containers.setdefault(ns.container, {})[ns.id] = ns
                self.containers.setdefault(ns.name, {})[ns.id] = ns
        # Every running container the engines know, by the namespace its process is in (a
        # container that joined another's is named by neither's label), and Podman's pods.
        self.pods: dict[str, dict[int, NamespaceRef]] = {}
        for engine in engines:
            for container in engine.containers:
                ns = self.by_id.get(container.netns) if container.running else None
                if ns is not None:
                    self.containers.setdefault(container.name, {})[ns.id] = ns
                    if container.pod:
                        self.pods.setdefault(container.pod, {})[ns.id] = ns
        # A fleet snapshot's namespaces: MACHINE/REF is REF among that machine's.
        self.machines: dict[str, list[NamespaceRef]] = {}
        for ns in namespaces:
            if ns.machine:
                self.machines.setdefault(ns.machine, []).append(
                    replace(ns, label=ns.label.removeprefix(f"{ns.machine}/")))

    def known(self, inode: int, path: str) -> NamespaceRef:
        return self.by_id.get(inode) or NamespaceRef(id=inode, kind=NsKind.PID, path=path)

    def resolve(self, reference: str) -> NamespaceRef:
        machine, _, rest = reference.partition("/")
        if rest and machine in self.machines:
            local = _RefIndex(self.machines[machine], self.engines).resolve(rest)
            return self.by_id[local.id]
        kind, _, value = reference.partition(":")
        found: NamespaceRef | None = None
        if reference == "self":
            path = f"/proc/{os.getpid()}/ns/net"
            return self.known(inode_of(path), path)
        if kind == "pid" and value.isdigit():
            path = f"/proc/{value}/ns/net"
            if not os.path.exists(path):
                raise NotFound(f"no process with pid {value}")
            return self.known(inode_of(path), path)
        if kind == "inode" and value.isdigit():
            found = self.by_id.get(int(value))
        elif kind == "container":
            found = self._one(reference, self.containers.get(value)) if value else None
        elif kind == "pod":
            found = self._one(reference, self.pods.get(value)) if value else None
        elif reference.startswith(("/", "./")):
            if not os.path.exists(reference):
                raise NotFound(f"{reference}: no such file")
            inode = namespace_inode(reference)
            if inode is None:
                raise NotFound(f"{reference} is not a network namespace (a file left behind by "
                               "a removed container or `ip netns`?)")
            return self.known(inode, reference)
        elif reference:
            found = self._one(reference, next((t[reference] for t in self.by_field
                                               if reference in t), None))
        if found is None:
            raise NotFound(f"no network namespace matches {reference!r} "
                           "(run `netdiag ns list` to see them)")
        return found

    def _one(self, reference: str, matches: dict[int, NamespaceRef] | None
             ) -> NamespaceRef | None:
        """The one namespace of `matches`; Ambiguous, listing them, when there are several."""
        if not matches:
            return None
        if len(matches) == 1:
            return next(iter(matches.values()))
        listed = "; ".join(self._candidate(ns) for ns in sorted(matches.values(),
                                                                 key=lambda ns: ns.id))
        raise Ambiguous(f"{reference!r} matches {len(matches)} network namespaces: {listed} "
                        "— say which, e.g. as inode:N")

    def _candidate(self, ns: NamespaceRef) -> str:
        """"inode:4026532712 (docker, engine unix:///run/docker.sock, /run/docker/netns/x)"."""
        engine = _engine_of(ns, self.engines)
        about = [ns.kind.value, f"node {ns.machine}" if ns.machine else "",
                 f"engine {engine.url}" if engine else "", ns.path]
        return f"inode:{ns.id} ({', '.join(part for part in about if part)})"


def _engine_of(ns: NamespaceRef, engines: Sequence[DockerEngine]) -> DockerEngine | None:
    """The Docker engine that made namespace `ns`: its sandbox folder, or a container's."""
    for engine in engines if ns.kind in (NsKind.DOCKER, NsKind.PODMAN) else ():
        folder = f"{engine.exec_root.rstrip('/')}/netns/"
        if engine.exec_root and ns.path.startswith(folder) or \
                any(c.sandbox_key == ns.path or c.netns == ns.id for c in engine.containers):
            return engine
    return None
