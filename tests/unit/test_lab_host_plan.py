"""One host's part of a lab (`lab up FILE --etcd URL --host NAME`): what its plan builds, what
it leaves to the other hosts, and what it refuses. Pure: plans are computed, nothing built
(tests/integration/test_lab_hosts.py builds them)."""

from pathlib import Path

import pytest

from netdiag.errors import TopologyError
from netdiag.topology import plan as plans
from netdiag.topology import schema

EXAMPLES = Path(__file__).resolve().parents[2] / "netdiag" / "lab" / "examples"


def _topology(text: str) -> schema.Topology:
    import yaml

    return schema.Topology.model_validate(yaml.safe_load(text))


THREE_HOSTS = _topology("""
name: t
hosts: [{name: h1}, {name: h2}, {name: h3}]
networks:
  - {name: ov, driver: overlay, subnet: 10.1.0.0/24}
  - {name: local2, driver: bridge, hosts: [h2]}
containers:
  - {name: a, host: h1, networks: [ov], command: {app: echo, port: 7}}
  - {name: b, host: h2, networks: [ov, local2]}
  - {name: c, host: h3, networks: [ov]}
faults:
  - {kind: mtu, node: b, link: eth0, mtu: 1400}
""")


def _kinds(steps) -> list[str]:
    return [type(step).__name__ for step in steps]


def test_the_first_host_makes_the_shared_network_and_the_others_await_it():
    h1 = plans.plan(THREE_HOSTS, "h1")
    h2 = plans.plan(THREE_HOSTS, "h2")
    assert [s.network.name for s in h1 if isinstance(s, plans.CreateNetwork)] == ["ov"]
    assert [(s.network.name, s.maker) for s in h2 if isinstance(s, plans.AwaitNetwork)] == \
        [("ov", "h1")]
    # A local network is its host's alone.
    assert [s.network.name for s in h2 if isinstance(s, plans.CreateNetwork)] == ["local2"]


def test_a_host_part_builds_its_own_nodes_and_starts_its_agent_before_any_join():
    steps = plans.plan(THREE_HOSTS, "h2")
    assert [s.node for s in steps if isinstance(s, plans.CreateNamespace)] == ["h2", "b"]
    kinds = _kinds(steps)
    assert kinds.index("StartAgent") < kinds.index("Connect")
    assert [s.container for s in steps if isinstance(s, plans.Connect)] == ["b", "b"]
    assert [s.fault.node for s in steps if isinstance(s, plans.InjectFault)] == ["b"]
    assert not [s for s in steps if isinstance(s, plans.Run)]  # a's command is h1's
    [underlay] = [s for s in steps if isinstance(s, plans.CreateUnderlay)]
    assert underlay.shared and "shared by the lab's hosts" in underlay.describe()
    [resolver] = [s for s in steps if isinstance(s, plans.StartResolver)]
    assert resolver.host == "h2"


def test_every_step_of_the_whole_plan_is_in_exactly_one_host_part():
    whole = plans.plan(THREE_HOSTS)
    parts = [plans.plan(THREE_HOSTS, h.name) for h in THREE_HOSTS.hosts]
    for kind in (plans.Connect, plans.Run, plans.InjectFault, plans.ConnectHost):
        assert sorted(map(repr, (s for s in whole if isinstance(s, kind)))) == \
            sorted(repr(s) for part in parts for s in part if isinstance(s, kind))


def test_a_host_without_overlay_networks_runs_no_agent():
    lab = schema.load(EXAMPLES / "pets-multihost.yaml")  # a bridge network per host
    assert "StartAgent" not in _kinds(plans.plan(lab, lab.hosts[0].name))


def test_a_host_part_refuses_an_unknown_host_and_services():
    with pytest.raises(TopologyError, match=r"has no host 'h9' \(its hosts: h1, h2, h3\)"):
        plans.plan(THREE_HOSTS, "h9")
    overlay = schema.load(EXAMPLES / "pets-overlay.yaml")  # a VIP service across hosts
    with pytest.raises(TopologyError, match="services .db. are not built per host yet"):
        plans.plan(overlay, "host1")
