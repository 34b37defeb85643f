"""Default IPAM: Docker's pool order and wording, addresses within a pool (SQLite file, no root)."""

import ipaddress

import pytest

from netdiag.drivers.ipam import (
    EXHAUSTED,
    GLOBAL_SPACE,
    DefaultIpam,
    ipv6_companion,
    local_space,
    predefined,
    usable_range,
)
from netdiag.errors import Conflict, UsageError
from netdiag.store import SqliteStore

SPACE = local_space("/run/netns/h")


@pytest.fixture
def ipam(tmp_path):
    with SqliteStore(tmp_path / "store.db") as store:
        yield DefaultIpam(store)


def test_local_pools_are_dockers_31_in_order():
    pools = [str(p) for p in predefined(SPACE)]
    assert len(pools) == 31
    assert pools[:7] == ["172.17.0.0/16", "172.18.0.0/16", "172.19.0.0/16", "172.20.0.0/16",
                         "172.21.0.0/16", "172.22.0.0/16", "172.23.0.0/16"]
    assert pools[14] == "172.31.0.0/16"
    assert pools[15] == "192.168.0.0/20"
    assert pools[-1] == "192.168.240.0/20"


def test_global_pools_are_slash_24s_of_10_slash_8():
    pools = predefined(GLOBAL_SPACE)
    assert [str(next(pools)) for _ in range(2)] == ["10.0.0.0/24", "10.0.1.0/24"]


def test_lowest_free_pool_and_reuse_after_release(ipam):
    first = ipam.request_pool(SPACE)
    second = ipam.request_pool(SPACE)
    assert (first.subnet, second.subnet) == ("172.17.0.0/16", "172.18.0.0/16")
    ipam.release_pool(first.id)
    assert ipam.request_pool(SPACE).subnet == "172.17.0.0/16"


def test_pools_overlapping_on_link_routes_or_nameservers_are_skipped(ipam):
    pool = ipam.request_pool(SPACE, avoid=["172.16.0.0/12", "192.168.1.53/32"])
    assert pool.subnet == "192.168.16.0/20"  # 192.168.0.0/20 holds the nameserver


def test_address_spaces_of_different_hosts_are_independent(ipam):
    a = ipam.request_pool(local_space("/run/netns/a"))
    b = ipam.request_pool(local_space("/run/netns/b"))
    assert a.subnet == b.subnet == "172.17.0.0/16"


def test_explicit_overlapping_subnet_gets_dockers_error(ipam):
    ipam.request_pool(SPACE, subnet="10.1.0.0/16")
    with pytest.raises(Conflict, match="^Pool overlaps with other one on this address space$"):
        ipam.request_pool(SPACE, subnet="10.1.2.0/24")


def test_explicit_subnet_is_taken_out_of_the_default_order(ipam):
    ipam.request_pool(SPACE, subnet="172.17.5.0/24")
    assert ipam.request_pool(SPACE).subnet == "172.18.0.0/16"


def test_exhaustion_gets_dockers_error(ipam):
    for _ in range(31):
        ipam.request_pool(SPACE)
    with pytest.raises(Conflict, match=f"^{EXHAUSTED}$"):
        ipam.request_pool(SPACE)


def test_gateway_first_then_lowest_free_skipping_network_and_broadcast(ipam):
    pool = ipam.request_pool(SPACE, subnet="10.9.0.0/30")
    assert ipam.request_address(pool.id, owner="gateway") == "10.9.0.1"
    assert ipam.request_address(pool.id) == "10.9.0.2"
    with pytest.raises(Conflict):
        ipam.request_address(pool.id)  # .3 is the broadcast address


def test_released_address_is_handed_out_again(ipam):
    pool = ipam.request_pool(SPACE, subnet="10.9.0.0/24")
    taken = [ipam.request_address(pool.id) for _ in range(3)]
    ipam.release_address(pool.id, taken[1])
    assert ipam.request_address(pool.id) == taken[1]


def test_ip_range_limits_dynamic_addresses(ipam):
    pool = ipam.request_pool(SPACE, subnet="10.9.0.0/24", ip_range="10.9.0.128/25")
    assert usable_range(pool) == (int(ipaddress.ip_address("10.9.0.128")),
                                  int(ipaddress.ip_address("10.9.0.254")))
    assert ipam.request_address(pool.id) == "10.9.0.128"


def test_static_addresses(ipam):
    pool = ipam.request_pool(SPACE, subnet="10.9.0.0/24")
    assert ipam.request_address(pool.id, "10.9.0.7") == "10.9.0.7"
    with pytest.raises(Conflict, match="Address already in use"):
        ipam.request_address(pool.id, "10.9.0.7")
    for bad in ("10.9.0.0", "10.9.0.255", "10.10.0.1", "nonsense"):
        with pytest.raises(UsageError):
            ipam.request_address(pool.id, bad)
    assert ipam.request_address(pool.id) == "10.9.0.1"


@pytest.mark.parametrize("subnet, ip_range", [("10.0.0.0/33", ""), ("fd00::/64", ""),
                                              ("10.0.0.1/24", ""), ("", "10.0.0.0/25"),
                                              ("10.0.0.0/24", "10.0.1.0/25")])
def test_bad_requests_are_usage_errors(ipam, subnet, ip_range):
    with pytest.raises(UsageError):
        ipam.request_pool(SPACE, subnet=subnet, ip_range=ip_range)


def test_dual_stack_ipv6_address_has_the_host_number_of_the_ipv4_one():
    assert ipv6_companion("172.28.0.0/24", "172.28.0.1", "fd00:28::/64") == "fd00:28::1/64"
    assert ipv6_companion("172.28.0.0/24", "172.28.0.254", "fd00:28::/120") == "fd00:28::fe/120"
    assert ipv6_companion("10.1.0.0/16", "10.1.2.3", "fd00:1::/64") == "fd00:1::203/64"


@pytest.mark.parametrize("subnet6", ["fd00:28::/121", "172.29.0.0/24", "fd00:28::1/64"])
def test_dual_stack_ipv6_subnet_must_be_ipv6_and_hold_the_ipv4_host_numbers(subnet6):
    with pytest.raises(UsageError):
        ipv6_companion("172.28.0.0/24", "172.28.0.2", subnet6)
