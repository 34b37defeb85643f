"""The host and none drivers in real namespaces."""

from __future__ import annotations

import pytest

from netdiag.drivers.controller import Controller
from netdiag.drivers.ipam import local_space
from netdiag.errors import Conflict, UsageError
from netdiag.store import SqliteStore
from tests.conftest import sh

pytestmark = pytest.mark.integration


@pytest.fixture
def controller(tmp_path):
    with SqliteStore(tmp_path / "store.db") as store:
        yield Controller(store)


def links(ns: str) -> list[str]:
    return sorted(line.split()[0] for line in sh(f"ip -n {ns} -br link").splitlines())


def test_host_network_endpoint_lives_in_the_host_namespace(controller, netns_factory):
    host = netns_factory("host")
    before = links(host)
    controller.create_network("host", host, "host")
    endpoint = controller.connect("host", host, "web")
    assert endpoint.sandbox == f"/run/netns/{host}"
    assert endpoint.address == "" and endpoint.host_ifname == ""
    assert links(host) == before  # nothing was built
    assert controller.check() == []
    controller.disconnect("host", "web")
    controller.delete_network("host")
    assert controller.networks() == []


def test_host_network_refuses_a_second_instance_options_subnets_and_other_sandboxes(
        controller, netns_factory):
    host, other = netns_factory("host"), netns_factory("c1")
    controller.create_network("host", host, "host")
    with pytest.raises(Conflict, match='only one instance of "host" network is allowed'):
        controller.create_network("host2", host, "host")
    with pytest.raises(UsageError, match="takes no options"):
        controller.create_network("h3", host, "host", options={"mtu": "1400"})
    with pytest.raises(UsageError, match="no subnet"):
        controller.create_network("h4", host, "host", subnet="10.0.0.0/24")
    with pytest.raises(UsageError, match="lives in the host namespace"):
        controller.connect("host", other)
    assert [n.name for n in controller.networks()] == ["host"]


def test_none_network_gives_only_a_loopback_that_is_up(controller, netns_factory):
    host, c1 = netns_factory("host"), netns_factory("c1")
    sh(f"ip -n {c1} link set lo down")
    controller.create_network("none", host, "none")
    controller.connect("none", c1)
    assert links(c1) == ["lo"]
    assert "UP" in sh(f"ip -n {c1} -br link show lo")
    assert controller.check() == []
    with pytest.raises(Conflict, match='only one instance of "none"'):
        controller.create_network("none2", host, "none")


def test_none_check_finds_a_loopback_that_went_down(controller, netns_factory):
    host, c1 = netns_factory("host"), netns_factory("c1")
    controller.create_network("none", host, "none")
    controller.connect("none", c1)
    sh(f"ip -n {c1} link set lo down")
    [finding] = controller.check()
    assert (finding.code, finding.subject, finding.namespace.name) == ("ND965", "lo", c1)
    assert finding.repair.steps[0].command(c1) == f"ip netns exec {c1} ip link set dev lo up"


def test_unknown_driver_lists_the_known_ones(controller, netns_factory):
    with pytest.raises(UsageError, match=r"unknown network driver 'vlan' \(known drivers: "
                                         r"bridge, host, .*none"):
        controller.create_network("x", netns_factory("host"), "vlan")


@pytest.mark.parametrize("driver", ["bridge", "host", "none"])
def test_the_root_namespace_is_never_a_host_or_sandbox(controller, netns_factory, driver):
    with pytest.raises(UsageError, match="root network namespace"):
        controller.create_network("x", "/proc/self/ns/net", driver)
    controller.create_network("x", netns_factory("host"), driver)
    with pytest.raises(UsageError, match="root network namespace"):
        controller.connect("x", "/proc/self/ns/net")


def test_deleting_a_network_whose_host_namespace_is_gone_only_forgets_it(controller,
                                                                         netns_factory):
    host, c1 = netns_factory("host"), netns_factory("c1")
    controller.create_network("web", host)
    controller.connect("web", c1)
    sh(f"ip netns del {host}")
    netns_factory.names.remove(host)
    controller.delete_network("web", force=True)
    assert controller.networks() == [] and controller.store.endpoints() == []
    with controller.store.transaction(write=False) as tx:
        assert tx.pools(local_space(f"/run/netns/{host}")) == []  # the pool was given back
