"""The store-backed name source: scoping by network, services, and live changes made through
the same or another connection (another process) being seen on the next query."""

from __future__ import annotations

from dataclasses import replace

from netdiag.drivers.dns.daemon import has_dns
from netdiag.drivers.dns.store_names import StoreNames
from netdiag.store import SqliteStore
from netdiag.store.records import Endpoint, Network, Service

SANDBOX = "/run/netns/c1"


def network(tag: str) -> Network:
    return Network(id=tag * 64, name=f"net{tag}", driver="bridge", host="/run/netns/h",
                   subnet="10.1.0.0/16", gateway="10.1.0.1")


def endpoint(net: Network, name: str, ip: str, sandbox: str = "", **kw) -> Endpoint:
    return Endpoint(id=f"{net.id[:8]}{name}", network_id=net.id, name=name, host=net.host,
                    sandbox=sandbox, address=f"{ip}/16", **kw)


def test_names_are_scoped_to_the_sandbox_networks_and_follow_changes(tmp_path):
    path = tmp_path / "drivers.db"
    with SqliteStore(path) as store, SqliteStore(path) as other_process:
        a, b = network("a"), network("b")
        with store.transaction() as tx:
            tx.add_network(a)
            tx.add_network(b)
            tx.add_endpoint(endpoint(a, "c1", "10.1.0.2", SANDBOX, aliases=("one",)))
            tx.add_endpoint(endpoint(a, "web", "10.1.0.3"))
            tx.add_endpoint(endpoint(b, "hidden", "10.1.0.9"))
        names = StoreNames(store)
        table = names(SANDBOX)
        assert table.addresses("web") == ("10.1.0.3",)
        assert table.addresses("one") == ("10.1.0.2",)
        assert table.addresses("hidden") == ()  # not on a network c1 is attached to
        assert names(SANDBOX) is table  # unchanged database: the cached table

        with store.transaction() as tx:  # a change through the same connection
            tx.put_service(Service(id="s1", name="api", network_id=a.id, vip="10.1.0.100/16",
                                   backends=(f"{a.id[:8]}web",)))
        assert names(SANDBOX).addresses("api") == ("10.1.0.100",)
        assert names(SANDBOX).addresses("tasks.api") == ("10.1.0.3",)

        with other_process.transaction() as tx:  # and through another connection
            tx.add_endpoint(endpoint(a, "late", "10.1.0.4"))
        assert names(SANDBOX).addresses("late") == ("10.1.0.4",)
        names.close()


def test_embedded_dns_is_for_user_defined_networks_only():
    user = network("a")
    assert has_dns(user) and has_dns(replace(user, driver="overlay"))
    assert not has_dns(replace(user, name="bridge"))  # Docker's default bridge network
    assert not has_dns(replace(user, driver="host")) and not has_dns(replace(user, driver="none"))
