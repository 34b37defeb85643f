"""The driver stores: records round-trip, survive reopening, and allocations conflict as
Docker's do — the SQLite store (a file under tmp_path, no root) and, with root and Debian's
etcd-server, the same tests against the etcd store (a real etcd in a namespace of its own, the
test entering that namespace to reach it on its loopback)."""

import sqlite3

import pytest

from netdiag.errors import Conflict, NotFound
from netdiag.store import SqliteStore
from netdiag.store.records import Endpoint, Network, PortBinding, Scope, Service

HOST = "/run/netns/h"


def network(name="web", net_id="a" * 64, host=HOST, scope=Scope.LOCAL) -> Network:
    return Network(id=net_id, name=name, driver="bridge", host=host, scope=scope,
                   subnet="172.17.0.0/16", gateway="172.17.0.1", internal=True,
                   options=(("com.docker.network.driver.mtu", "1400"),),
                   labels=(("netdiag.lab", "demo"),), created="2026-01-01T00:00:00+00:00")


def endpoint(name="c1", net_id="a" * 64) -> Endpoint:
    return Endpoint(id=name * 8, network_id=net_id, name=name, host=HOST,
                    sandbox=f"/run/netns/{name}", address="172.17.0.2/16",
                    mac="02:42:ac:11:00:02", ifname="eth0", host_ifname="veth1234567",
                    ports=(PortBinding(80, "tcp", 8080, "0.0.0.0"),), aliases=("web",),
                    data=(("peer", "veth7654321"),))


@pytest.fixture
def path(tmp_path):
    return tmp_path / "deep" / "store.db"  # the folder is created on first use


@pytest.fixture(scope="module")
def etcd():
    from tests.etcd_server import running_etcd

    with running_etcd() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.integration)])
def open_store(request, path):
    """A function that opens (another handle on) one empty store of the kind."""
    if request.param == "sqlite":
        yield lambda: SqliteStore(path)
        return
    from netdiag import netns
    from netdiag.store.etcd import PREFIX, EtcdStore

    server = request.getfixturevalue("etcd")
    with netns.entered(f"/run/netns/{server.netns}"):
        store = EtcdStore(server.url)
        yield lambda: EtcdStore(server.url)
        store.etcd.call("clean up", store.etcd.client.delete_prefix, PREFIX)


def test_records_round_trip_and_survive_reopening(open_store):
    with open_store() as store, store.transaction() as tx:
        tx.add_network(network())
        tx.add_endpoint(endpoint())
        tx.put_service(Service(id="s1", name="api", network_id="a" * 64, vip="172.17.0.9",
                               ports=(PortBinding(80),), backends=("c1c1",)))
    with open_store() as store:
        assert store.networks() == [network()]
        assert store.endpoints() == [endpoint()]
        with store.transaction(write=False) as tx:
            assert tx.services()[0].ports == (PortBinding(80),)
            assert tx.endpoint("a" * 64, "c1") == endpoint()


def test_the_database_runs_in_wal_mode(path):
    SqliteStore(path).close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_network_names_are_unique_per_host(open_store):
    with open_store() as store:
        with store.transaction() as tx:
            tx.add_network(network())
        with pytest.raises(Conflict, match="network with name web already exists"):
            with store.transaction() as tx:
                tx.add_network(network(net_id="b" * 64))
        with store.transaction() as tx:
            tx.add_network(network(net_id="c" * 64, host="/run/netns/other"))
        assert len(store.networks()) == 2


def test_a_failed_transaction_leaves_nothing(open_store):
    with open_store() as store:
        with pytest.raises(RuntimeError):
            with store.transaction() as tx:
                tx.add_network(network())
                raise RuntimeError("boom")
        assert store.networks() == []


def test_network_lookup_by_id_name_and_prefix(open_store):
    with open_store() as store:
        with store.transaction() as tx:
            tx.add_network(network())
            tx.add_network(network(name="db", net_id="ab" + "c" * 62))
        assert store.network("web").id == "a" * 64
        assert store.network("abc").name == "db"
        with pytest.raises(NotFound, match="network nope not found"):
            store.network("nope")


def test_a_name_on_two_hosts_is_ambiguous_without_the_host(open_store):
    with open_store() as store:
        with store.transaction() as tx:
            tx.add_network(network())
            tx.add_network(network(net_id="b" * 64, host="/run/netns/other"))
        with pytest.raises(Conflict, match="ambiguous"):
            store.network("web")
        assert store.network("web", "/run/netns/other").id == "b" * 64


def test_global_networks_are_listed_on_every_host(open_store):
    with open_store() as store:
        with store.transaction() as tx:
            tx.add_network(network(name="ov", scope=Scope.GLOBAL))
        assert [n.name for n in store.networks("/run/netns/elsewhere")] == ["ov"]


def test_ports_conflict_like_dockers(open_store):
    with open_store() as store, store.transaction() as tx:
        tx.take_port(HOST, PortBinding(80, host_port=8080, host_ip="10.0.0.1"), "e1", (1, 9))
        with pytest.raises(Conflict, match="Bind for 0.0.0.0:8080 failed: port is already "
                                           "allocated"):
            tx.take_port(HOST, PortBinding(80, host_port=8080, host_ip="0.0.0.0"), "e2", (1, 9))
        # Another address, another protocol or another host namespace is free.
        tx.take_port(HOST, PortBinding(80, host_port=8080, host_ip="10.0.0.2"), "e2", (1, 9))
        tx.take_port(HOST, PortBinding(80, "udp", 8080, "0.0.0.0"), "e2", (1, 9))
        tx.take_port("/run/netns/other", PortBinding(80, host_port=8080, host_ip="0.0.0.0"),
                     "e3", (1, 9))


def test_port_zero_takes_the_lowest_free_port_and_release_frees_it(open_store):
    with open_store() as store, store.transaction() as tx:
        picks = [tx.take_port(HOST, PortBinding(80, host_ip="0.0.0.0"), f"e{i}",
                              (5000, 5002)).host_port for i in range(3)]
        assert picks == [5000, 5001, 5002]
        with pytest.raises(Conflict, match="no free host port"):
            tx.take_port(HOST, PortBinding(80, host_ip="0.0.0.0"), "e9", (5000, 5002))
        tx.release_ports("e1")
        assert tx.take_port(HOST, PortBinding(80, host_ip="0.0.0.0"), "e9",
                            (5000, 5002)).host_port == 5001


def test_numbers_lowest_free_or_wanted(open_store):
    with open_store() as store, store.transaction() as tx:
        assert [tx.take_number("vni", 4096, 4100) for _ in range(2)] == [4096, 4097]
        assert tx.take_number("vni", 4096, 4100, wanted=4099) == 4099
        with pytest.raises(Conflict):
            tx.take_number("vni", 4096, 4100, wanted=4099)
        tx.release_number("vni", 4096)
        assert tx.take_number("vni", 4096, 4100) == 4096
        assert tx.take_number("fwmark", 256, 300) == 256  # spaces are independent
