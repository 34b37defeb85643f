"""IPAM properties (hypothesis): no address, pool or port is ever handed out twice —
within one process under any sequence of requests and releases, and across processes
allocating at the same time from one SQLite file."""

import ipaddress
import multiprocessing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netdiag.drivers.ipam import DefaultIpam, local_space, predefined, usable_range
from netdiag.errors import Conflict
from netdiag.store import SqliteStore, Store
from netdiag.store.records import PortBinding

SPACE = local_space("/run/netns/h")
SUBNET = "10.7.0.0/27"  # 30 usable addresses: small enough to hit exhaustion
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

operations = st.lists(st.one_of(
    st.tuples(st.just("dynamic"), st.just(0)),
    st.tuples(st.just("static"), st.integers(0, 31)),
    st.tuples(st.just("release"), st.integers(0, 40)),
), max_size=80)


@SETTINGS
@given(ops=operations)
def test_no_address_is_held_twice(tmp_path_factory, ops):
    with SqliteStore(tmp_path_factory.mktemp("ipam") / "s.db") as store:
        ipam = DefaultIpam(store)
        pool = ipam.request_pool(SPACE, subnet=SUBNET)
        first, last = usable_range(pool)
        held: list[str] = []
        for op, arg in ops:
            if op == "release":
                if held:
                    ipam.release_address(pool.id, held.pop(arg % len(held)))
                continue
            wanted = str(ipaddress.ip_address(first - 1 + arg)) if op == "static" else ""
            try:
                address = ipam.request_address(pool.id, wanted)
            except Conflict:
                # Refused only when the address is held, or (dynamic) when all are.
                assert (wanted in held) if wanted else len(held) == last - first + 1
                continue
            except Exception:  # noqa: BLE001 - any refusal of an address outside the pool
                assert wanted and not first <= int(ipaddress.ip_address(wanted)) <= last
                continue
            assert address not in held
            assert first <= int(ipaddress.ip_address(address)) <= last
            held.append(address)
        assert sorted(held) == sorted(
            str(ipaddress.ip_address(a)) for a in store_addresses(store, pool.id))


def store_addresses(store: Store, pool_id: str) -> list[int]:
    with store.transaction(write=False) as tx:
        return tx.addresses(pool_id)


# --- across processes -------------------------------------------------------------------------


def _take_addresses(path: str, pool_id: str, count: int, queue) -> None:
    with SqliteStore(path) as store:
        ipam = DefaultIpam(store)
        queue.put([ipam.request_address(pool_id, owner=f"pid{i}") for i in range(count)])


def _take_pools(path: str, count: int, queue) -> None:
    with SqliteStore(path) as store:
        queue.put([DefaultIpam(store).request_pool(SPACE).subnet for _ in range(count)])


def _take_ports(path: str, count: int, queue) -> None:
    with SqliteStore(path) as store:
        taken = []
        for _ in range(count):
            with store.transaction() as tx:
                binding = tx.take_port("/run/netns/h", PortBinding(80, host_ip="0.0.0.0"),
                                       owner="x", port_range=(40000, 40999))
            taken.append(binding.host_port)
        queue.put(taken)


def _run_all(target, args_list) -> list:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=target, args=(*args, queue)) for args in args_list]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    return [item for result in results for item in result]


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(processes=st.integers(2, 4), each=st.integers(5, 25))
def test_concurrent_processes_never_share_an_address(tmp_path_factory, processes, each):
    path = str(tmp_path_factory.mktemp("conc") / "s.db")
    with SqliteStore(path) as store:
        pool = DefaultIpam(store).request_pool(SPACE, subnet="10.8.0.0/24")
    got = _run_all(_take_addresses, [(path, pool.id, each)] * processes)
    assert len(got) == processes * each
    assert len(set(got)) == len(got)


def test_concurrent_processes_never_share_a_pool(tmp_path):
    path = str(tmp_path / "s.db")
    SqliteStore(path).close()
    got = _run_all(_take_pools, [(path, 5)] * 4)
    assert len(set(got)) == 20
    assert set(got) == {str(p) for _, p in zip(range(20), predefined(SPACE))}


def test_concurrent_processes_never_share_a_port(tmp_path):
    path = str(tmp_path / "s.db")
    SqliteStore(path).close()
    got = _run_all(_take_ports, [(path, 15)] * 4)
    assert sorted(got) == list(range(40000, 40060))

