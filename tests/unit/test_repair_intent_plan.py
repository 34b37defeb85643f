"""A repair updates the intent it repairs: the drivers' store records the MTU a repair set
(store.Lookups.record_mtu, applied by the RecordNetworkMtu step) — a SQLite store under
tmp_path, no root, no namespace."""

from dataclasses import replace

from netdiag.checks.output.data import step_data
from netdiag.findings.repair import RecordNetworkMtu
from netdiag.repair.apply import apply
from netdiag.store import MTU_OPTION, SqliteStore
from tests.unit.test_store import endpoint, network


def _stored(path, driver: str):
    with SqliteStore(path) as store, store.transaction() as tx:
        tx.add_network(replace(network(), driver=driver))
        tx.add_endpoint(replace(endpoint("c1"), data=(("mtu", "1450"), ("vtep", "10.99.0.1"))))
        tx.add_endpoint(endpoint("c2"))  # keeps no MTU of its own (a bridge endpoint)


def test_an_overlays_record_keeps_the_endpoint_mtu_and_the_mtu_of_what_carries_it(tmp_path):
    path = tmp_path / "store.db"
    _stored(path, "overlay")
    apply(RecordNetworkMtu(str(path), "a" * 64, "web", 1350))
    with SqliteStore(path) as store:
        [net] = store.networks()
        assert net.option(MTU_OPTION) == "1400"  # the overlay driver subtracts 50 again
        by_name = {e.name: e for e in store.endpoints()}
    assert by_name["c1"].datum("mtu") == "1350" and by_name["c1"].datum("vtep") == "10.99.0.1"
    assert by_name["c2"] == endpoint("c2")


def test_a_bridges_record_is_the_endpoint_mtu(tmp_path):
    path = tmp_path / "store.db"
    _stored(path, "bridge")
    apply(RecordNetworkMtu(str(path), "a" * 64, "web", 1300))
    with SqliteStore(path) as store:
        assert store.networks()[0].option(MTU_OPTION) == "1300"
        assert dict(store.networks()[0].labels) == {"netdiag.lab": "demo"}  # the rest kept


def test_the_step_is_printed_and_serialised_without_a_namespace():
    step = RecordNetworkMtu("/run/netdiag/labs/x.db", "a" * 64, "petnet", 1350)
    assert step.command() == ("# record MTU 1350 for network petnet in the drivers' store "
                              "/run/netdiag/labs/x.db")
    data = step_data(step, {})
    assert data["action"] == "record-network-mtu" and data["namespace"] is None
