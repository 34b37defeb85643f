"""Resolving what users type as a namespace (`--ns REF`, `path SRC`): a name that several
namespaces share is never picked silently (issue 31)."""

from __future__ import annotations

import pytest

from netdiag.cli import main
from netdiag.collect import namespace_refs
from netdiag.errors import Ambiguous
from netdiag.model import NamespaceRef, NsKind
from netdiag.model.docker import DockerContainer, DockerEngine
from netdiag.model.serialize import save
from tests.fixtures.builder import SnapshotBuilder

ENGINES = (DockerEngine(url="unix:///run/docker.sock", exec_root="/run/docker"),
           DockerEngine(url="unix:///tmp/dk2/docker.sock", exec_root="/tmp/dk2/exec",
                        containers=(DockerContainer(id="c2", name="web", state="running",
                                                    sandbox_key="/tmp/dk2/sbox/web"),)))


def ref(ns_id: int, path: str, label: str, **fields) -> NamespaceRef:
    return NamespaceRef(id=ns_id, kind=NsKind.DOCKER, path=path, label=label, **fields)


NAMESPACES = [
    NamespaceRef(id=1, kind=NsKind.HOST, path="/proc/1/ns/net", label="host"),
    ref(11, "/run/docker/netns/ingress_sbox", "docker ingress sandbox", name="ingress_sbox"),
    ref(12, "/tmp/dk2/exec/netns/ingress_sbox", "docker ingress sandbox", name="ingress_sbox"),
    ref(21, "/run/docker/netns/1-aaaaaaaaaa", "overlay mesh", name="1-aaaaaaaaaa"),
    ref(22, "/tmp/dk2/exec/netns/1-bbbbbbbbbb", "overlay mesh", name="1-bbbbbbbbbb"),
    ref(31, "/run/docker/netns/0123456789ab", "web", name="0123456789ab", container="web"),
    ref(32, "/tmp/dk2/sbox/web", "web", name="web-sandbox", container="web"),
    ref(41, "/run/docker/netns/fedcba987654", "db", name="fedcba987654", container="db"),
]


@pytest.mark.parametrize("reference, ids", [
    ("docker ingress sandbox", (11, 12)), ("ingress_sbox", (11, 12)),
    ("overlay mesh", (21, 22)), ("web", (31, 32)), ("container:web", (31, 32)),
])
def test_a_name_of_several_namespaces_asks_which(reference, ids):
    with pytest.raises(Ambiguous) as info:
        namespace_refs.resolve(reference, NAMESPACES, ENGINES)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{reference!r} matches {len(ids)} network namespaces: ")
    first, second = (f"inode:{ns_id} (docker, engine " for ns_id in ids)
    assert f"{first}unix:///run/docker.sock, " in message, message
    assert f"{second}unix:///tmp/dk2/docker.sock, " in message, message
    # Each candidate's reference names exactly that one.
    assert [namespace_refs.resolve(f"inode:{ns_id}", NAMESPACES).id for ns_id in ids] == \
        list(ids)


def test_a_name_of_one_namespace_and_precedence_are_unchanged():
    assert namespace_refs.resolve("db", NAMESPACES).id == 41
    assert namespace_refs.resolve("container:db", NAMESPACES).id == 41
    assert namespace_refs.resolve("host", NAMESPACES).id == 1
    # A sandbox's file name outranks another namespace's label (name, container, label).
    labelled = [*NAMESPACES, ref(51, "/run/netns/x", "fedcba987654", name="x")]
    assert namespace_refs.resolve("fedcba987654", labelled).id == 41


def test_the_commands_give_it_as_a_usage_error(tmp_path, capsys):
    b = SnapshotBuilder()
    b.host()
    for name in ("1-aaaaaaaaaa", "1-bbbbbbbbbb"):
        b.namespace("overlay mesh", kind=NsKind.DOCKER, name=name, container="")
    saved = tmp_path / "snap.json"
    save(b.build(), saved)
    for argv in (["check", "--ns", "overlay mesh"], ["show", "--ns", "overlay mesh"],
                 ["path", "overlay mesh", "10.0.0.1"]):
        assert main([*argv, "--from", str(saved)]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "'overlay mesh' matches 2 network namespaces" in err
