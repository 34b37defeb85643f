"""Snapshot JSON round trip and corrupt-input handling (fixtures, no root)."""

import pytest

from netdiag.errors import CorruptSnapshot
from netdiag.model import (
    Address,
    Firewall,
    HostInfo,
    IptablesRule,
    Link,
    Match,
    NamespaceRef,
    NamespaceState,
    NsKind,
    Snapshot,
    VxlanInfo,
)
from netdiag.model.serialize import dumps, loads


def sample() -> Snapshot:
    ref = NamespaceRef(id=42, kind=NsKind.NAMED, path="/run/netns/a", label="a", name="a")
    state = NamespaceState(
        ref=ref,
        links=(Link(index=3, name="vx0", kind="vxlan", mtu=1450, admin_up=True, oper_state="up",
                    vxlan=VxlanInfo(vni=4096, dstport=4789)),),
        addresses=(Address(ifindex=3, ifname="vx0", family=4, address="10.0.0.1", prefixlen=24),),
        firewall=Firewall(iptables_rules=(IptablesRule(
            backend="nft", family=4, table="nat", chain="DOCKER", position=1,
            matches=(Match("in-interface", "br0", negated=True),), target="DNAT",
            target_options=(("to-destination", "172.18.0.2:80"),)),)),
    )
    return Snapshot(created_at="2026-01-01T00:00:00+00:00", host=HostInfo(hostname="h"),
                    namespaces=(state,))


def test_round_trip_gives_an_equal_snapshot():
    snap = sample()
    assert loads(dumps(snap)) == snap


@pytest.mark.parametrize("text, words", [
    ("{", "not JSON"),
    ("[]", "not a netdiag snapshot"),
    ('{"namespaces": [], "schema_version": 99}', "schema version 99"),
    ('{"namespaces": "x", "schema_version": 1, "created_at": "", "host": {}}', "expected a list"),
])
def test_corrupt_input_gives_one_clear_error(text, words):
    with pytest.raises(CorruptSnapshot) as info:
        loads(text)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_a_truncated_file_says_where_once():
    """Issue 31: "Unterminated string starting at at line 1"."""
    with pytest.raises(CorruptSnapshot) as info:
        loads('{"schema_version": 1, "namespaces": [{"ref": {"label": "ab')
    assert str(info.value) == "not JSON: Unterminated string starting at line 1, column 56"


def test_written_text_is_what_the_json_module_writes():
    """msgspec encodes; the bytes must be json.dumps's, escapes and indentation included."""
    import json
    from dataclasses import replace

    from netdiag.model import PathMtuProbe, Probes
    from netdiag.model.serialize import encode, to_data

    snap = sample()
    state = snap.namespaces[0]
    odd = 'é € 😀 \x7f \x1b \t "q" \\ /'
    snap = replace(snap, namespaces=(replace(state, links=(replace(
        state.links[0], alias=odd),)),), probes=Probes(path_mtu=(
            PathMtuProbe(namespace=42, destination="10.0.0.2", attempts=((1500, "ok"),)),)))
    for indent in (None, 1, 2):
        expected = json.dumps(to_data(snap), indent=indent,
                              separators=None if indent else (",", ":"))
        assert dumps(snap, indent) == expected
        assert encode(snap, indent) == expected.encode()
    assert loads(dumps(snap)) == snap


def test_docker_intent_round_trips():
    from tests.fixtures.scenarios import docker_host

    snap = docker_host().build()
    assert snap.docker and loads(dumps(snap)) == snap


def test_a_version_1_file_loads_without_docker_intent_as_the_current_version():
    import json

    from netdiag.model import SCHEMA_VERSION
    from netdiag.model.serialize import to_data

    data = to_data(sample())
    data["schema_version"] = 1
    del data["docker"]  # version 1 had no such section
    for text in (json.dumps(data), json.dumps(data, indent=1) + " "):  # fast and slow paths
        loaded = loads(text)
        assert loaded.docker == () and loaded.schema_version == SCHEMA_VERSION
        assert loaded.namespaces == sample().namespaces
