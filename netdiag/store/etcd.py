"""The drivers' store on etcd: the same transactions as the SQLite store, shared by machines.

Layout, under one versioned prefix (key parts percent-quoted, numbers zero-padded so that keys
sort as numbers do):

    /netdiag/drivers/v1/lock                          the writers' lock (on a lease)
    /netdiag/drivers/v1/network/ID                    a Network (JSON)
    /netdiag/drivers/v1/endpoint/ID                   an Endpoint
    /netdiag/drivers/v1/pool/POOL                     a Pool and its first/last address
    /netdiag/drivers/v1/address/POOL/0000000042       an address taken, its owner the value
    /netdiag/drivers/v1/port/HOST/PROTO/08080/IP      a published host port
    /netdiag/drivers/v1/number/SPACE/0000004096       a VNI, a fwmark...
    /netdiag/drivers/v1/service/ID                    a Service

A write transaction is SQLite's BEGIN IMMEDIATE rebuilt on etcd: it first takes the lock — a
key created only if absent (a compare-and-swap on its create revision), on a lease of
LOCK_TTL seconds so that a writer that dies frees it — then reads, and commits every write and
the lock's release in one etcd transaction that succeeds only while the lock is still this
writer's and every address, port or number it takes is still absent. Two machines therefore
never hand out the same one, even if a lock's lease ran out under a stalled writer. A read
transaction reads every key at one revision: a consistent view, without the lock.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, unquote

from netdiag.errors import Conflict, DriverError, NotFound
from netdiag.etcd import Etcd, StoreUnavailable, decode, encode, prefix_end
from netdiag.store import (
    BUSY_TIMEOUT_MS,
    Lookups,
    Reads,
    _decode,
    _encode,
    _lowest_free,
    choose_port,
)
from netdiag.store.records import Endpoint, Network, Pool, PortBinding, Service

PREFIX = "/netdiag/drivers/v1/"
LOCK = PREFIX + "lock"
LOCK_TTL = 10  # seconds: a transaction holds the lock for milliseconds


def _part(text: str) -> str:
    return quote(text, safe="")


def _number(value: int) -> str:
    return f"{value:010d}"


class EtcdTx(Lookups):
    """One transaction: reads at one revision (or under the lock), writes kept until commit."""

    def __init__(self, etcd: Etcd):
        self.etcd = etcd
        self.revision = 0  # of the first read; every later read is at it
        self.writes: dict[str, bytes | None] = {}  # key → value, or None: deleted
        self.deleted_prefixes: list[str] = []  # whole folders deleted (one request each)
        self.must_be_new: set[str] = set()  # allocation keys: absent at commit, or it fails
        self.released: set[str] = set()  # deleted here: taking them again needs no check

    # --- key-value, with this transaction's own writes seen --------------------------------

    def _range(self, prefix: str) -> list[tuple[str, bytes]]:
        """(key, value) under `prefix`, in the order the keys were created."""
        payload = {"key": encode(prefix), "range_end": prefix_end(prefix)}
        if self.revision:
            payload["revision"] = self.revision
        answer = self.etcd.post("read", "/kv/range", payload)
        self.revision = self.revision or int(answer["header"]["revision"])
        found = sorted(answer.get("kvs", []), key=lambda kv: int(kv.get("create_revision", 0)))
        items = {decode(kv["key"]).decode(): decode(kv.get("value", "")) for kv in found}
        items = {k: v for k, v in items.items()
                 if not any(k.startswith(gone) for gone in self.deleted_prefixes)}
        for key, value in self.writes.items():
            if key.startswith(prefix):
                if value is None:
                    items.pop(key, None)
                else:
                    items[key] = value
        return list(items.items())

    def _get(self, key: str) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return next((value for k, value in self._range(key) if k == key), None)

    def _put(self, key: str, value: bytes) -> None:
        self.writes[key] = value

    def _delete(self, key: str) -> None:
        self.writes[key] = None
        self.must_be_new.discard(key)
        self.released.add(key)

    def _delete_prefix(self, prefix: str) -> None:
        # One delete-range request, not one per key: etcd takes at most 128 per transaction.
        self.deleted_prefixes.append(prefix)
        for key in [k for k in self.writes if k.startswith(prefix)]:
            del self.writes[key]
            self.must_be_new.discard(key)

    def _records(self, kind: str, cls) -> list:
        return [_decode(cls, json.loads(value)) for _, value in self._range(f"{PREFIX}{kind}/")]

    def _put_record(self, kind: str, record) -> None:
        self._put(f"{PREFIX}{kind}/{_part(record.id)}", json.dumps(_encode(record)).encode())

    # --- networks ---------------------------------------------------------------------------

    def add_network(self, network: Network) -> None:
        if any(n.host == network.host and n.name == network.name
               for n in self._records("network", Network)):
            raise Conflict(f"network with name {network.name} already exists")
        self._put_record("network", network)

    def update_network(self, network: Network) -> None:
        self._put_record("network", network)

    def delete_network(self, network_id: str) -> None:
        for service in self.services(network_id):
            self.delete_service(service.id)
        self._delete(f"{PREFIX}network/{_part(network_id)}")

    def networks(self, host: str | None = None) -> list[Network]:
        found = [n for n in self._records("network", Network)
                 if host is None or n.host == host or n.scope.value == "global"]
        return sorted(found, key=lambda n: n.created)

    # --- endpoints --------------------------------------------------------------------------

    def add_endpoint(self, endpoint: Endpoint) -> None:
        if any(e.network_id == endpoint.network_id and e.name == endpoint.name
               for e in self._records("endpoint", Endpoint)):
            raise Conflict(f"endpoint with name {endpoint.name} already exists in network")
        self._put_record("endpoint", endpoint)

    def update_endpoint(self, endpoint: Endpoint) -> None:
        self._put_record("endpoint", endpoint)

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._delete(f"{PREFIX}endpoint/{_part(endpoint_id)}")

    def endpoints(self, network_id: str | None = None, host: str | None = None,
                  sandbox: str | None = None) -> list[Endpoint]:
        wanted = {"network_id": network_id, "host": host, "sandbox": sandbox}
        return [e for e in self._records("endpoint", Endpoint)
                if all(value is None or getattr(e, name) == value
                       for name, value in wanted.items())]

    # --- IPAM pools and addresses ----------------------------------------------------------

    def _pool_rows(self) -> list[dict]:
        return [json.loads(value) for _, value in self._range(f"{PREFIX}pool/")]

    def pools(self, space: str) -> list[Pool]:
        return [Pool(r["id"], r["space"], r["subnet"], r["ip_range"]) for r in self._pool_rows()
                if r["space"] == space]

    def add_pool(self, pool: Pool) -> None:
        net = ipaddress.ip_network(pool.subnet)
        first, last = int(net.network_address), int(net.broadcast_address)
        if any(r["space"] == pool.space and r["first"] <= last and r["last"] >= first
               for r in self._pool_rows()):
            raise Conflict("Pool overlaps with other one on this address space")
        row = {"id": pool.id, "space": pool.space, "subnet": pool.subnet,
               "ip_range": pool.ip_range, "first": first, "last": last}
        self._put(f"{PREFIX}pool/{_part(pool.id)}", json.dumps(row).encode())

    def pool(self, pool_id: str) -> Pool:
        value = self._get(f"{PREFIX}pool/{_part(pool_id)}")
        if value is None:
            raise NotFound(f"pool {pool_id} not found")
        row = json.loads(value)
        return Pool(row["id"], row["space"], row["subnet"], row["ip_range"])

    def delete_pool(self, pool_id: str) -> None:
        self._delete_prefix(f"{PREFIX}address/{_part(pool_id)}/")
        self._delete(f"{PREFIX}pool/{_part(pool_id)}")

    def _address_key(self, pool_id: str, address: int) -> str:
        return f"{PREFIX}address/{_part(pool_id)}/{_number(address)}"

    def _take(self, key: str, owner: str) -> None:
        self._put(key, owner.encode())
        if key not in self.released:  # one released in this transaction exists until commit
            self.must_be_new.add(key)

    def take_address(self, pool_id: str, first: int, last: int, owner: str = "") -> int:
        """The lowest free address in [first, last] of the pool, recorded as taken."""
        taken = (a for a in self.addresses(pool_id) if first <= a <= last)
        value = _lowest_free(first, last, taken)
        if value is None:
            raise Conflict("no available IPv4 addresses on this network's address pools")
        self._take(self._address_key(pool_id, value), owner)
        return value

    def reserve_address(self, pool_id: str, address: int, owner: str = "") -> None:
        key = self._address_key(pool_id, address)
        if self._get(key) is not None:
            raise Conflict(f"Address already in use: {ipaddress.ip_address(address)}")
        self._take(key, owner)

    def release_address(self, pool_id: str, address: int) -> None:
        self._delete(self._address_key(pool_id, address))

    def addresses(self, pool_id: str) -> list[int]:
        return sorted(int(key.rsplit("/", 1)[1])
                      for key, _ in self._range(f"{PREFIX}address/{_part(pool_id)}/"))

    # --- published ports --------------------------------------------------------------------

    def _port_rows(self) -> list[tuple[str, str, int, str, str]]:
        rows = []
        for key, owner in self._range(f"{PREFIX}port/"):
            host, proto, port, ip = key.removeprefix(f"{PREFIX}port/").split("/")
            rows.append((unquote(host), proto, int(port), unquote(ip), owner.decode()))
        return rows

    def take_port(self, host: str, binding: PortBinding, owner: str,
                  port_range: tuple[int, int]) -> PortBinding:
        """Record `binding` on `host` (picking the lowest free port when host_port is 0)."""
        held = [(port, ip) for h, proto, port, ip, _ in self._port_rows()
                if h == host and proto == binding.proto]
        chosen = choose_port(binding, held, port_range)
        self._take(f"{PREFIX}port/{_part(host)}/{chosen.proto}/{chosen.host_port:05d}/"
                   f"{_part(chosen.host_ip)}", owner)
        return chosen

    def release_ports(self, owner: str) -> None:
        for host, proto, port, ip, held_by in self._port_rows():
            if held_by == owner:
                self._delete(f"{PREFIX}port/{_part(host)}/{proto}/{port:05d}/{_part(ip)}")

    def ports(self, host: str | None = None) -> list[tuple[str, str, int, str, str]]:
        """(host, proto, host_port, host_ip, owner) rows."""
        return sorted(row for row in self._port_rows() if host is None or row[0] == host)

    # --- numbers (VNIs, fwmarks...) ---------------------------------------------------------

    def take_number(self, space: str, first: int, last: int, owner: str = "",
                    wanted: int | None = None) -> int:
        if wanted is not None:
            key = f"{PREFIX}number/{_part(space)}/{_number(wanted)}"
            if self._get(key) is not None:
                raise Conflict(f"{space} {wanted} is already in use")
            self._take(key, owner)
            return wanted
        taken = (value for value, _ in self.numbers(space) if first <= value <= last)
        value = _lowest_free(first, last, taken)
        if value is None:
            raise Conflict(f"no free {space} in {first}-{last}")
        self._take(f"{PREFIX}number/{_part(space)}/{_number(value)}", owner)
        return value

    def release_number(self, space: str, value: int) -> None:
        self._delete(f"{PREFIX}number/{_part(space)}/{_number(value)}")

    def numbers(self, space: str) -> list[tuple[int, str]]:
        return sorted((int(key.rsplit("/", 1)[1]), owner.decode())
                      for key, owner in self._range(f"{PREFIX}number/{_part(space)}/"))

    # --- services ---------------------------------------------------------------------------

    def put_service(self, service: Service) -> None:
        self._put_record("service", service)

    def delete_service(self, service_id: str) -> None:
        self._delete(f"{PREFIX}service/{_part(service_id)}")

    def services(self, network_id: str | None = None) -> list[Service]:
        return [s for s in self._records("service", Service)
                if network_id is None or s.network_id == network_id]


class _Revision:
    """The store's change counter on etcd: the revision of its newest key (every write
    transaction changes at least the lock key)."""

    def __init__(self, etcd: Etcd):
        self.etcd = etcd

    def current(self) -> int:
        answer = self.etcd.post("read", "/kv/range", {"key": encode(PREFIX),
                                                      "range_end": prefix_end(PREFIX),
                                                      "count_only": True})
        return int(answer["header"]["revision"])

    def close(self) -> None:
        pass


class EtcdStore(Reads):
    """The drivers' store in the etcd at `url` (etcd://HOST:PORT or http://HOST:PORT)."""

    def __init__(self, url: str, timeout: float = 5.0):
        self.etcd = Etcd(url.replace("etcd://", "http://", 1), timeout)
        self.path = self.etcd.url  # what messages name the store by, as the SQLite one's path
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._lease_id, self._lease_granted = 0, 0.0

    def close(self) -> None:
        pass  # one HTTP session; nothing is held between transactions

    def versions(self) -> _Revision:
        return _Revision(self.etcd)

    def __enter__(self) -> EtcdStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[EtcdTx]:
        """Like the SQLite store's: the body's writes commit together, or (when it raises)
        not at all; a write transaction holds the writers' lock from start to commit, and the
        commit releases it in the same etcd transaction."""
        tx = EtcdTx(self.etcd)
        if not write:
            yield tx
            if tx.writes or tx.deleted_prefixes:
                raise DriverError("a read transaction of the driver store wrote")
            return
        lock_revision = self._lock()
        try:
            yield tx
        except BaseException:
            self._unlock(lock_revision)
            raise
        self._commit(tx, lock_revision)

    def _lease(self) -> int:
        """A lease for the lock, granted afresh when the last one has half its TTL left: one
        request every few seconds, not one per transaction, and no keep-alive to run."""
        now = time.monotonic()
        if self._lease_id == 0 or now > self._lease_granted + LOCK_TTL / 2:
            answer = self.etcd.post("lease grant", "/lease/grant", {"TTL": LOCK_TTL})
            self._lease_id, self._lease_granted = int(answer["ID"]), now
        return self._lease_id

    def _lock(self) -> int:
        """Take the writers' lock; the revision that created it (it is ours while its key
        still has that revision)."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        wait = 0.001
        while True:
            answer = self.etcd.post("lock", "/kv/txn", {
                "compare": [{"key": encode(LOCK), "target": "CREATE", "result": "EQUAL",
                             "create_revision": 0}],
                "success": [{"request_put": {"key": encode(LOCK), "value": encode(self.owner),
                                             "lease": self._lease()}}]})
            if answer.get("succeeded"):
                return int(answer["header"]["revision"])
            if time.monotonic() > deadline:
                raise DriverError(f"driver store {self.path} is busy: another writer held its "
                                  f"lock for {BUSY_TIMEOUT_MS // 1000} s")
            time.sleep(wait * (1 + random.random()))
            wait = min(wait * 2, 0.01)

    def _ours(self, lock_revision: int) -> dict:
        return {"key": encode(LOCK), "target": "MOD", "result": "EQUAL",
                "mod_revision": lock_revision}

    def _unlock(self, lock_revision: int) -> None:
        try:
            self.etcd.post("unlock", "/kv/txn", {
                "compare": [self._ours(lock_revision)],
                "success": [{"request_delete_range": {"key": encode(LOCK)}}]})
        except StoreUnavailable:
            pass  # its lease runs out by itself within LOCK_TTL

    def _commit(self, tx: EtcdTx, lock_revision: int) -> None:
        compare = [self._ours(lock_revision)]
        compare += [{"key": encode(key), "target": "CREATE", "result": "EQUAL",
                     "create_revision": 0} for key in sorted(tx.must_be_new)]
        success = [{"request_delete_range": {"key": encode(prefix),
                                              "range_end": prefix_end(prefix)}}
                   for prefix in tx.deleted_prefixes]
        success += [{"request_put": {"key": encode(key), "value": encode(value)}}
                    if value is not None else {"request_delete_range": {"key": encode(key)}}
                    for key, value in tx.writes.items()]
        success.append({"request_delete_range": {"key": encode(LOCK)}})
        try:
            answer = self.etcd.post("write", "/kv/txn", {"compare": compare,
                                                         "success": success})
        except StoreUnavailable:
            self._unlock(lock_revision)
            raise
        if not answer.get("succeeded"):
            self._unlock(lock_revision)
            raise DriverError(f"driver store {self.path}: the transaction lost its lock (its "
                              f"lease of {LOCK_TTL} s ran out) or raced another writer; "
                              "nothing was written")
