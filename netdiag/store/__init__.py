"""The drivers' state: networks, endpoints, IPAM pools and addresses, published ports, services.

SQLite is the embedded default (one file per machine, lab or test; the path is a parameter).
The database runs in WAL mode and every change is one `BEGIN IMMEDIATE` transaction, which
takes the write lock before reading: two processes allocating at once are serialised by
SQLite, so they never hand out the same address, port or number. State survives a restart;
the controller reconciles it with the kernel.

Allocation primitives (lowest free address in a range, lowest free number or port) live here,
inside the transaction that records them; the policy — which pool, which range — is the
caller's (netdiag/drivers/ipam). The store many machines share is etcd.py beside this file, with the
same transactions and methods; `open_store` picks one by what it is given.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields, replace
from enum import Enum
from pathlib import Path
from typing import Protocol

from netdiag import private_files
from netdiag.errors import Conflict, DriverError, NotFound
from netdiag.model.facts import VXLAN_OVERHEAD
from netdiag.store.records import Endpoint, Network, Pool, PortBinding, Scope, Service

DEFAULT_PATH = Path("/var/lib/netdiag/drivers.db")
BUSY_TIMEOUT_MS = 60_000  # a writer waits this long for another process's transaction
MTU_OPTION = "com.docker.network.driver.mtu"  # every driver's network MTU, as Docker names it

SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, driver TEXT NOT NULL, host TEXT NOT NULL,
    scope TEXT NOT NULL, subnet TEXT, gateway TEXT, ip_range TEXT, pool_id TEXT,
    internal INTEGER, options TEXT, labels TEXT, created TEXT,
    UNIQUE (host, name));
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY, network_id TEXT NOT NULL REFERENCES networks(id), name TEXT NOT NULL,
    host TEXT NOT NULL, sandbox TEXT, address TEXT, mac TEXT, ifname TEXT, host_ifname TEXT,
    ports TEXT, aliases TEXT, data TEXT,
    UNIQUE (network_id, name));
CREATE TABLE IF NOT EXISTS pools (
    id TEXT PRIMARY KEY, space TEXT NOT NULL, subnet TEXT NOT NULL, ip_range TEXT,
    first INTEGER NOT NULL, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS addresses (
    pool_id TEXT NOT NULL REFERENCES pools(id), address INTEGER NOT NULL, owner TEXT,
    PRIMARY KEY (pool_id, address));
CREATE TABLE IF NOT EXISTS ports (
    host TEXT NOT NULL, proto TEXT NOT NULL, host_port INTEGER NOT NULL, host_ip TEXT NOT NULL,
    owner TEXT, PRIMARY KEY (host, proto, host_port, host_ip));
CREATE TABLE IF NOT EXISTS numbers (
    space TEXT NOT NULL, value INTEGER NOT NULL, owner TEXT, PRIMARY KEY (space, value));
CREATE TABLE IF NOT EXISTS services (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, network_id TEXT NOT NULL REFERENCES networks(id),
    vip TEXT, mode TEXT, ports TEXT, backends TEXT, data TEXT,
    UNIQUE (network_id, name));
"""

# Record fields that hold tuples of records, rebuilt on the way out of the database.
_NESTED = {"ports": PortBinding}


def _encode(record) -> dict:
    row = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, bool):
            value = int(value)
        elif isinstance(value, tuple):
            value = json.dumps([_plain(v) for v in value])
        row[f.name] = value
    return row


def _plain(value):
    if isinstance(value, PortBinding):
        return [value.container_port, value.proto, value.host_port, value.host_ip]
    return list(value) if isinstance(value, tuple) else value


def _decode(cls, row: sqlite3.Row):
    values = {}
    for f in fields(cls):
        value = row[f.name]
        if f.name in _NESTED:
            value = tuple(_NESTED[f.name](*item) for item in json.loads(value or "[]"))
        elif f.type.startswith("tuple"):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in json.loads(value or "[]"))
        elif f.type == "bool":
            value = bool(value)
        elif f.type == "Scope":
            value = Scope(value)
        elif value is None:
            value = ""
        values[f.name] = value
    return cls(**values)


def _insert(conn: sqlite3.Connection, table: str, record, replace_row: bool = False) -> None:
    row = _encode(record)
    verb = "INSERT OR REPLACE" if replace_row else "INSERT"
    names = ", ".join(row)
    marks = ", ".join(f":{n}" for n in row)
    conn.execute(f"{verb} INTO {table} ({names}) VALUES ({marks})", row)


class Lookups:
    """What every store's transaction answers from its own networks() and endpoints():
    lookups by reference, the way Docker looks them up."""

    def network(self, ref: str, host: str | None = None) -> Network:
        """A network by full id, name, or unique id prefix (Docker's lookup order)."""
        candidates = self.networks(host)
        for match in (lambda n: n.id == ref, lambda n: n.name == ref,
                      lambda n: n.id.startswith(ref)):
            found = [n for n in candidates if match(n)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                hosts = ", ".join(sorted({n.host for n in found}))
                raise Conflict(f"network {ref} is ambiguous (found on {hosts}); "
                               "name the host namespace")
        raise NotFound(f"network {ref} not found")

    def endpoint(self, network_id: str, ref: str) -> Endpoint:
        for endpoint in self.endpoints(network_id):
            if ref in (endpoint.id, endpoint.name) or endpoint.id.startswith(ref):
                return endpoint
        raise NotFound(f"endpoint {ref} not found in network {network_id[:12]}")

    def record_mtu(self, network_id: str, mtu: int) -> Network:
        """Record that the network's endpoints have MTU `mtu` (a repair set it): in each
        endpoint that keeps its MTU, and in the network's MTU option, which the drivers read
        for its next endpoints. An overlay's option is the MTU of what carries it, the
        endpoints' plus the VXLAN overhead (the overlay driver subtracts it again)."""
        network = next((n for n in self.networks() if n.id == network_id), None)
        if network is None:
            raise NotFound(f"network {network_id[:12]} not found")
        option = mtu + VXLAN_OVERHEAD[4] if network.driver == "overlay" else mtu
        options = dict(network.options) | {MTU_OPTION: str(option)}
        network = replace(network, options=tuple(options.items()))
        self.update_network(network)
        for endpoint in self.endpoints(network_id):
            if endpoint.datum("mtu"):
                data = dict(endpoint.data) | {"mtu": str(mtu)}
                self.update_endpoint(replace(endpoint, data=tuple(sorted(data.items()))))
        return network


class Tx(Lookups):
    """One open transaction: reads see a consistent state and writes commit together."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    # networks ---------------------------------------------------------------------------

    def add_network(self, network: Network) -> None:
        if self.conn.execute("SELECT 1 FROM networks WHERE host = ? AND name = ?",
                             (network.host, network.name)).fetchone():
            raise Conflict(f"network with name {network.name} already exists")
        _insert(self.conn, "networks", network)

    def update_network(self, network: Network) -> None:
        _insert(self.conn, "networks", network, replace_row=True)

    def delete_network(self, network_id: str) -> None:
        self.conn.execute("DELETE FROM services WHERE network_id = ?", (network_id,))
        self.conn.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    def networks(self, host: str | None = None) -> list[Network]:
        """Networks on `host` — local ones made there, and every global one — or all."""
        query, args = "SELECT * FROM networks", ()
        if host is not None:
            query, args = query + " WHERE host = ? OR scope = 'global'", (host,)
        return [_decode(Network, r) for r in self.conn.execute(query + " ORDER BY created", args)]

    # endpoints --------------------------------------------------------------------------

    def add_endpoint(self, endpoint: Endpoint) -> None:
        if self.conn.execute("SELECT 1 FROM endpoints WHERE network_id = ? AND name = ?",
                             (endpoint.network_id, endpoint.name)).fetchone():
            raise Conflict(f"endpoint with name {endpoint.name} already exists in network")
        _insert(self.conn, "endpoints", endpoint)

    def update_endpoint(self, endpoint: Endpoint) -> None:
        _insert(self.conn, "endpoints", endpoint, replace_row=True)

    def delete_endpoint(self, endpoint_id: str) -> None:
        self.conn.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))

    def endpoints(self, network_id: str | None = None, host: str | None = None,
                  sandbox: str | None = None) -> list[Endpoint]:
        clauses, args = [], []
        for column, value in (("network_id", network_id), ("host", host), ("sandbox", sandbox)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(f"SELECT * FROM endpoints{where} ORDER BY rowid", args)
        return [_decode(Endpoint, r) for r in rows]

    # IPAM pools and addresses ----------------------------------------------------------

    def pools(self, space: str) -> list[Pool]:
        rows = self.conn.execute("SELECT id, space, subnet, ip_range FROM pools WHERE space = ?",
                                 (space,))
        return [Pool(*r) for r in rows]

    def add_pool(self, pool: Pool) -> None:
        net = ipaddress.ip_network(pool.subnet)
        first, last = int(net.network_address), int(net.broadcast_address)
        if self.conn.execute("SELECT 1 FROM pools WHERE space = ? AND first <= ? AND last >= ?",
                             (pool.space, last, first)).fetchone():
            raise Conflict("Pool overlaps with other one on this address space")
        self.conn.execute("INSERT INTO pools VALUES (?, ?, ?, ?, ?, ?)",
                          (pool.id, pool.space, pool.subnet, pool.ip_range, first, last))

    def pool(self, pool_id: str) -> Pool:
        row = self.conn.execute("SELECT id, space, subnet, ip_range FROM pools WHERE id = ?",
                                (pool_id,)).fetchone()
        if row is None:
            raise NotFound(f"pool {pool_id} not found")
        return Pool(*row)

    def delete_pool(self, pool_id: str) -> None:
        self.conn.execute("DELETE FROM addresses WHERE pool_id = ?", (pool_id,))
        self.conn.execute("DELETE FROM pools WHERE id = ?", (pool_id,))

    def take_address(self, pool_id: str, first: int, last: int, owner: str = "") -> int:
        """The lowest free address in [first, last] of the pool, recorded as taken."""
        taken = self.conn.execute(
            "SELECT address FROM addresses WHERE pool_id = ? AND address BETWEEN ? AND ? "
            "ORDER BY address", (pool_id, first, last))
        value = _lowest_free(first, last, (row[0] for row in taken))
        if value is None:
            raise Conflict("no available IPv4 addresses on this network's address pools")
        self.conn.execute("INSERT INTO addresses VALUES (?, ?, ?)", (pool_id, value, owner))
        return value

    def reserve_address(self, pool_id: str, address: int, owner: str = "") -> None:
        try:
            self.conn.execute("INSERT INTO addresses VALUES (?, ?, ?)", (pool_id, address, owner))
        except sqlite3.IntegrityError:
            raise Conflict(f"Address already in use: {ipaddress.ip_address(address)}") from None

    def release_address(self, pool_id: str, address: int) -> None:
        self.conn.execute("DELETE FROM addresses WHERE pool_id = ? AND address = ?",
                          (pool_id, address))

    def addresses(self, pool_id: str) -> list[int]:
        rows = self.conn.execute("SELECT address FROM addresses WHERE pool_id = ? "
                                 "ORDER BY address", (pool_id,))
        return [row[0] for row in rows]

    # published ports --------------------------------------------------------------------

    def take_port(self, host: str, binding: PortBinding, owner: str,
                  port_range: tuple[int, int]) -> PortBinding:
        """Record `binding` on `host` (picking the lowest free port when host_port is 0)."""
        rows = self.conn.execute("SELECT host_port, host_ip FROM ports "
                                 "WHERE host = ? AND proto = ?",
                                 (host, binding.proto)).fetchall()
        chosen = choose_port(binding, rows, port_range)
        self.conn.execute("INSERT INTO ports VALUES (?, ?, ?, ?, ?)",
                          (host, chosen.proto, chosen.host_port, chosen.host_ip, owner))
        return chosen

    def release_ports(self, owner: str) -> None:
        self.conn.execute("DELETE FROM ports WHERE owner = ?", (owner,))

    def ports(self, host: str | None = None) -> list[tuple[str, str, int, str, str]]:
        """(host, proto, host_port, host_ip, owner) rows."""
        query, args = "SELECT * FROM ports", ()
        if host is not None:
            query, args = query + " WHERE host = ?", (host,)
        return list(self.conn.execute(query + " ORDER BY host, proto, host_port", args))

    # numbers (VNIs, fwmarks...) ---------------------------------------------------------

    def take_number(self, space: str, first: int, last: int, owner: str = "",
                    wanted: int | None = None) -> int:
        if wanted is not None:
            try:
                self.conn.execute("INSERT INTO numbers VALUES (?, ?, ?)", (space, wanted, owner))
            except sqlite3.IntegrityError:
                raise Conflict(f"{space} {wanted} is already in use") from None
            return wanted
        taken = self.conn.execute("SELECT value FROM numbers WHERE space = ? AND value "
                                  "BETWEEN ? AND ? ORDER BY value", (space, first, last))
        value = _lowest_free(first, last, (row[0] for row in taken))
        if value is None:
            raise Conflict(f"no free {space} in {first}-{last}")
        self.conn.execute("INSERT INTO numbers VALUES (?, ?, ?)", (space, value, owner))
        return value

    def release_number(self, space: str, value: int) -> None:
        self.conn.execute("DELETE FROM numbers WHERE space = ? AND value = ?", (space, value))

    def numbers(self, space: str) -> list[tuple[int, str]]:
        return list(self.conn.execute("SELECT value, owner FROM numbers WHERE space = ? "
                                      "ORDER BY value", (space,)))

    # services ---------------------------------------------------------------------------

    def put_service(self, service: Service) -> None:
        _insert(self.conn, "services", service, replace_row=True)

    def delete_service(self, service_id: str) -> None:
        self.conn.execute("DELETE FROM services WHERE id = ?", (service_id,))

    def services(self, network_id: str | None = None) -> list[Service]:
        query, args = "SELECT * FROM services", ()
        if network_id is not None:
            query, args = query + " WHERE network_id = ?", (network_id,)
        return [_decode(Service, r) for r in self.conn.execute(query + " ORDER BY rowid", args)]


def _lowest_free(first: int, last: int, taken_sorted) -> int | None:
    candidate = first
    for value in taken_sorted:
        if value > candidate:
            break
        if value == candidate:
            candidate += 1
    return candidate if candidate <= last else None


def choose_port(binding: PortBinding, held: Iterable[tuple[int, str]],
                port_range: tuple[int, int]) -> PortBinding:
    """`binding` with its host port, given the (port, host address) pairs already held for
    its protocol on its host: the one asked for if free, else the lowest free in the range."""
    clashing = sorted({port for port, ip in held if _ips_clash(ip, binding.host_ip)})
    if binding.host_port:
        if binding.host_port in clashing:
            raise Conflict(f"Bind for {binding.host_ip}:{binding.host_port} failed: "
                           "port is already allocated")
        return binding
    port = _lowest_free(port_range[0], port_range[1], clashing)
    if port is None:
        raise Conflict(f"no free host port in {port_range[0]}-{port_range[1]}")
    return replace(binding, host_port=port)


def _ips_clash(a: str, b: str) -> bool:
    """0.0.0.0 binds every address, so it clashes with any other binding on the port."""
    return a == b or "0.0.0.0" in (a, b)


class StoreVersion(Protocol):
    """A store's change counter, for readers that cache (the embedded DNS): `current()`
    differs from its last answer whenever somebody wrote since."""

    def current(self) -> int: ...

    def close(self) -> None: ...


class _DataVersion:
    """SQLite's `data_version` on a connection of its own (it counts other connections'
    commits, so the store's own connection cannot ask it)."""

    def __init__(self, path: Path):
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()

    def current(self) -> int:
        with self._lock:
            return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        self._conn.close()


class Reads:
    """Reads that need no transaction of their own, for every store."""

    def networks(self, host: str | None = None) -> list[Network]:
        with self.transaction(write=False) as tx:
            return tx.networks(host)

    def network(self, ref: str, host: str | None = None) -> Network:
        with self.transaction(write=False) as tx:
            return tx.network(ref, host)

    def endpoints(self, network_id: str | None = None, host: str | None = None,
                  sandbox: str | None = None) -> list[Endpoint]:
        with self.transaction(write=False) as tx:
            return tx.endpoints(network_id, host, sandbox)


class Store(Protocol):
    """What the drivers ask of a store, SQLite (SqliteStore, one machine) or etcd (EtcdStore,
    many machines): transactions over the records, reads without one, and a change counter."""

    def transaction(self, write: bool = True) -> AbstractContextManager[Lookups]: ...

    def networks(self, host: str | None = None) -> list[Network]: ...

    def network(self, ref: str, host: str | None = None) -> Network: ...

    def endpoints(self, network_id: str | None = None, host: str | None = None,
                  sandbox: str | None = None) -> list[Endpoint]: ...

    def versions(self) -> StoreVersion: ...

    def close(self) -> None: ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc) -> None: ...


class SqliteStore(Reads):
    """A SQLite store at `path` (created with its folder on first use)."""

    def __init__(self, path: str | os.PathLike = DEFAULT_PATH):
        self.path = Path(path)
        self._lock = threading.Lock()  # one connection, shared by the caller's threads
        try:
            private_files.make_dir(self.path.parent, own=self.path.parent == DEFAULT_PATH.parent)
            private_files.create(self.path)
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves.
            self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                         isolation_level=None, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across process crashes in WAL mode (fsync at checkpoints only).
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise DriverError(f"cannot open the driver store {self.path}: {exc}") from None
        except PermissionError:
            raise DriverError(f"cannot open the driver store {self.path}: permission denied") \
                from None
        except OSError as exc:  # making its folder or file
            raise DriverError(f"cannot open the driver store {self.path}: {exc.strerror}") \
                from None

    def close(self) -> None:
        self._conn.close()

    def versions(self) -> StoreVersion:
        """How a reader learns that others wrote: a number that changes when they did."""
        return _DataVersion(self.path)

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK when the body raises); a plain BEGIN to read."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as exc:
                raise DriverError(f"driver store {self.path} is busy: {exc}") from None
            try:
                yield Tx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")


def open_store(where: str | os.PathLike) -> Store:
    """The store `where` names: an etcd URL (etcd://HOST:PORT, http://HOST:PORT) for a store
    many machines share, else a SQLite file."""
    text = os.fspath(where)
    if text.startswith(("etcd://", "http://", "https://")):
        from netdiag.store.etcd import EtcdStore

        return EtcdStore(text)
    return SqliteStore(text)
