"""The topology JSON Schema (`netdiag lab schema`) describes every field, for editors."""

from pathlib import Path

import pytest

from netdiag.errors import TopologyError
from netdiag.topology import plan
from netdiag.topology.schema import json_schema, load, parse

EXAMPLES = Path(__file__).resolve().parents[2] / "netdiag" / "lab" / "examples"


def test_every_field_of_the_topology_schema_has_a_description():
    schema = json_schema()
    missing = []
    for where, model in [("Topology", schema), *schema["$defs"].items()]:
        for name, prop in model.get("properties", {}).items():
            if not prop.get("description"):
                missing.append(f"{where}.{name}")
    assert not missing, missing
    assert len(schema["$defs"]) >= 14  # every model of the schema was looked at


def test_a_dual_stack_lab_has_ipv6_subnets_on_its_network_and_underlay():
    topology = load(EXAMPLES / "dual-stack.yaml")
    assert topology.networks[0].subnet6 == "fd00:28::/64"
    steps = plan.plan(topology)
    [switch] = [s for s in steps if isinstance(s, plan.CreateUnderlay)]
    [host] = [s for s in steps if isinstance(s, plan.ConnectHost)]
    assert (switch.address6, host.address6, host.gateway6) == \
        ("fd00:99::fe/64", "fd00:99::1/64", "fd00:99::fe")
    assert load(EXAMPLES / "pets-bridge.yaml").networks[0].subnet6 is None


@pytest.mark.parametrize("network, error", [
    ("{name: n, subnet6: '2001:db8::/64'}", "not a unique local (fd00::/8) prefix"),
    ("{name: n, subnet6: 'fd00::/48'}", "use a prefix length from /64 to /120"),
    ("{name: n, subnet6: '10.0.0.0/24'}", "is not an IPv6 subnet"),
    ("{name: n, subnet: 'fd00::/64'}", "is not IPv4: put an IPv6 subnet in subnet6"),
    ("{name: n, driver: host, subnet6: 'fd00::/64'}", "a host network has no subnet of its own"),
    ("{name: n, subnet: 10.0.0.0/16, subnet6: 'fd00::/120'}", "has fewer addresses than"),
])
def test_bad_ipv6_subnets_are_one_line_errors(network, error):
    with pytest.raises(TopologyError) as caught:
        parse(f"name: t\nnetworks: [{network}]\n", "t.yaml")
    assert error in str(caught.value) and "\n" not in str(caught.value)
