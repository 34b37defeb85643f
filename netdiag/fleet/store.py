"""The fleet's keys in etcd: what an agent publishes and what `fleet` and `check --fleet` read.

Layout (everything under one versioned prefix, every key of a node on that node's lease, so a
node whose agent stops refreshing it disappears when the lease's TTL runs out):

    /netdiag/fleet/v1/node/NODE                 the latest snapshot's Meta (JSON)
    /netdiag/fleet/v1/history/NODE/SLOT         the Meta of each snapshot still kept
    /netdiag/fleet/v1/blob/NODE/SLOT/PART       the snapshot's JSON, zlib-compressed, in parts

A snapshot is written into a slot (its sequence number modulo the history's length plus one),
part by part — etcd takes requests of at most 1.5 MiB, and a big host's snapshot is larger —
and only then is the node's Meta switched to it, so a reader never sees half a snapshot. Each
Meta carries the blob's SHA-256, which a reader checks: a history slot being rewritten just
then is reported as such, never decoded. etcd is reached through netdiag/etcd.py, which turns
every failure of it into one StoreUnavailable.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import asdict, dataclass, field

from netdiag.errors import CorruptSnapshot, UsageError
from netdiag.etcd import Etcd, StoreUnavailable

PREFIX = "/netdiag/fleet/v1/"
PART_BYTES = 1 << 20  # under etcd's 1.5 MiB request limit, with room for base64
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class Meta:
    """What a node published, without the snapshot itself: enough for `fleet ls`."""

    node: str
    sequence: int  # 1 for the agent's first snapshot since it started
    slot: int
    parts: int
    sha256: str  # of the compressed blob
    size: int  # bytes of JSON
    stored: int  # bytes in etcd (compressed)
    published_at: str  # ISO 8601, UTC
    created_at: str  # when the snapshot was read
    interval: float  # the agent publishes at least this often (seconds)
    agent_version: str = ""
    schema_version: int = 0
    hostname: str = ""
    kernel: str = ""
    reason: str = ""  # start, change, interval, reconnect
    namespaces: int = 0
    findings: dict[str, int] = field(default_factory=dict)  # severity → count, by the agent
    read_seconds: float = 0.0  # how long reading the snapshot took

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes, key: str) -> Meta:
        try:
            fields = json.loads(data)
            known = {k: v for k, v in fields.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        except (ValueError, TypeError) as exc:
            raise CorruptSnapshot(f"etcd key {key}: not a netdiag fleet record ({exc})") \
                from None


def check_node_name(name: str) -> str:
    if not NODE_NAME.fullmatch(name):
        raise UsageError(f"node name {name!r}: use letters, digits, '.', '_' and '-' "
                         "(at most 64, starting with a letter or digit)")
    return name


class FleetStore:
    """One etcd endpoint. Every call has `timeout` seconds; none retries (the agent does)."""

    def __init__(self, url: str, timeout: float = 5.0):
        self.etcd = Etcd(url, timeout)
        self.url = self.etcd.url
        self._client = self.etcd.client
        self._call = self.etcd.call

    # --- leases -----------------------------------------------------------------------------

    def grant(self, ttl: int) -> int:
        lease = self._call("lease grant", self._client.lease, ttl)
        return lease.id

    def refresh(self, lease: int) -> bool:
        """Keep the lease alive; False when etcd no longer knows it (it expired)."""
        from etcd3gw.lease import Lease

        return self._call("lease keepalive", Lease(lease, self._client).refresh) > 0

    def revoke(self, lease: int) -> None:
        from etcd3gw.lease import Lease

        self._call("lease revoke", Lease(lease, self._client).revoke)

    # --- writing ----------------------------------------------------------------------------

    def publish(self, meta: Meta, blob: bytes, lease: int) -> None:
        """Write `blob` into `meta.slot`, then point the node (and that history slot) at it."""
        node, slot = meta.node, meta.slot
        folder = f"{PREFIX}blob/{node}/{slot}/"
        self._call("delete", self._client.delete_prefix, folder)
        for number in range(meta.parts):
            part = blob[number * PART_BYTES:(number + 1) * PART_BYTES]
            self._put(f"{folder}{number:04d}", part, lease)
        record = meta.encode()
        self._txn([_put(f"{PREFIX}history/{node}/{slot}", record, lease),
                   _put(f"{PREFIX}node/{node}", record, lease)])

    def _put(self, key: str, value: bytes, lease: int) -> None:
        self._txn([_put(key, value, lease)])

    def _txn(self, puts: list[dict]) -> None:
        answer = self._call("write", self._client.transaction,
                            {"compare": [], "success": puts, "failure": []})
        if not answer.get("succeeded", False):
            raise StoreUnavailable(f"etcd at {self.url}: a write was refused")

    # --- reading ----------------------------------------------------------------------------

    def nodes(self) -> tuple[list[Meta], list[str]]:
        """Every node's latest Meta, by name, and what was under the prefix but is no node's
        record (one line each: a foreign or damaged key must not hide the fleet)."""
        found = self._call("read", self._client.get_prefix, f"{PREFIX}node/")
        metas, unreadable = [], []
        for value, info in found:
            try:
                metas.append(Meta.decode(value, _key(info)))
            except CorruptSnapshot as exc:
                unreadable.append(str(exc))
        return sorted(metas, key=lambda meta: meta.node), unreadable

    def node(self, name: str) -> Meta | None:
        found = self._call("read", self._client.get, f"{PREFIX}node/{name}")
        return Meta.decode(found[0], name) if found else None

    def history(self, name: str) -> list[Meta]:
        found = self._call("read", self._client.get_prefix, f"{PREFIX}history/{name}/")
        metas = [Meta.decode(value, _key(info)) for value, info in found]
        return sorted(metas, key=lambda meta: meta.sequence)

    def snapshot_bytes(self, meta: Meta) -> bytes:
        """The JSON of the snapshot `meta` describes; CorruptSnapshot when what is stored is
        not it (a history slot being rewritten, or a part gone with its lease)."""
        folder = f"{PREFIX}blob/{meta.node}/{meta.slot}/"
        found = self._call("read", self._client.get_prefix, folder, sort_order="ascend",
                           sort_target="key")
        blob = b"".join(value for value, _ in found)
        if len(found) != meta.parts or hashlib.sha256(blob).hexdigest() != meta.sha256:
            raise CorruptSnapshot(f"node {meta.node}: snapshot {meta.sequence} is being "
                                  "replaced or is gone; read again")
        try:
            return zlib.decompress(blob)
        except zlib.error as exc:
            raise CorruptSnapshot(f"node {meta.node}: stored snapshot does not decompress "
                                  f"({exc})") from None

    def usage(self, name: str) -> int:
        """Bytes of values a node keeps in etcd (its latest record, history and blobs)."""
        latest = self._call("read", self._client.get, f"{PREFIX}node/{name}")
        total = sum(len(value) for value in latest)
        for folder in (f"history/{name}/", f"blob/{name}/"):
            found = self._call("read", self._client.get_prefix, f"{PREFIX}{folder}")
            total += sum(len(value) for value, _ in found)
        return total


def blob_of(snapshot_json: bytes) -> tuple[bytes, str, int]:
    """(compressed blob, its SHA-256, how many parts it takes)."""
    blob = zlib.compress(snapshot_json, 6)
    return blob, hashlib.sha256(blob).hexdigest(), max(1, -(-len(blob) // PART_BYTES))


def _put(key: str, value: bytes, lease: int) -> dict:
    from etcd3gw.utils import _encode

    request = {"key": _encode(key), "value": _encode(value)}
    if lease:
        request["lease"] = lease
    return {"request_put": request}


def _key(info) -> str:
    key = info.get("key", b"")  # etcd3gw decodes it from base64 already
    return key.decode(errors="replace") if isinstance(key, bytes) else str(key)
