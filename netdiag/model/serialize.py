"""Snapshot ⇄ JSON, with a schema version.

The conversion is driven by the dataclasses' type hints, so adding a field to the model needs
no change here. Loading is strict about the schema version and translates every malformed
input into one CorruptSnapshot error that says where the problem is. Both directions go through
msgspec first (encoding, parsing and type checks in C, for big snapshots: a snapshot of 1000
namespaces is written in 0.06 s instead of 0.65 s); only input it rejects takes the slower path
below, which exists to name the malformed place. The text written is byte for byte what
`json.dumps(to_data(snapshot))` gives (ASCII only, the same separators and indentation).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import re
import types
import typing
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

import msgspec

from netdiag import private_files
from netdiag.errors import CorruptSnapshot, UsageError
from netdiag.model import READABLE_VERSIONS, SCHEMA_VERSION, Snapshot

_PLAIN = (str, int, bool, float, type(None))


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def to_data(obj: Any) -> Any:
    """A model object as plain JSON-ready data (dicts, lists, str, int, bool, None)."""
    kind = type(obj)
    if kind in _PLAIN:  # the common case first: a snapshot is mostly strings and numbers
        return obj
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (tuple, list)):
        return [to_data(item) for item in obj]
    if dataclasses.is_dataclass(obj):
        return {name: to_data(getattr(obj, name)) for name in _field_names(kind)}
    return obj


def dumps(snapshot: Snapshot, indent: int | None = None) -> str:
    return encode(snapshot, indent).decode("ascii")


def encode(snapshot: Snapshot, indent: int | None = None) -> bytes:
    """The snapshot as JSON bytes, the same as `json.dumps(to_data(snapshot), indent=indent)`
    (compact separators without indent) but encoded by msgspec, ten times faster."""
    try:
        data = _encoder().encode(snapshot)
    except (TypeError, ValueError, OverflowError):  # a value msgspec cannot encode: json can
        return json.dumps(to_data(snapshot), indent=indent,
                          separators=None if indent else (",", ":")).encode("ascii")
    if not data.isascii() or b"\x7f" in data:
        data = _ascii_only(data)
    return msgspec.json.format(data, indent=indent) if indent else data


@cache
def _encoder() -> msgspec.json.Encoder:
    return msgspec.json.Encoder()


# msgspec writes DEL and non-ASCII characters as they are; json.dumps (ensure_ascii) escapes
# them. Outside strings JSON text is pure ASCII, so escaping them anywhere is escaping them in
# strings.
_NOT_ASCII = re.compile("[^\x00-\x7e]")  # (a negated class compiles in microseconds)


def _escape(found: re.Match) -> str:
    code = ord(found.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"


def _ascii_only(data: bytes) -> bytes:
    return _NOT_ASCII.sub(_escape, data.decode("utf-8")).encode("ascii")


def save(snapshot: Snapshot, path: str | Path) -> None:
    """Compact JSON (`jq .` makes a saved file readable)."""
    try:
        private_files.write(path, encode(snapshot) + b"\n")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def loads(text: str | bytes) -> Snapshot:
    # The cyclic GC is paused meanwhile: decoding makes millions of records (acyclic, like
    # every Snapshot) and its passes over the growing heap of them took half the time
    # (1M routes: 2.1 s with it, 1.0 s without).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        # Fast path: msgspec parses and type-checks against the dataclasses in C (a snapshot
        # of 100k routes loads in a fifth of the time). Anything it rejects is read again
        # below, slowly, to say precisely what is wrong.
        snapshot = _decoder().decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError, TypeError):
        pass
    else:
        _check_version(snapshot.schema_version)
        return dataclasses.replace(snapshot, schema_version=SCHEMA_VERSION)
    finally:
        if was_enabled:
            gc.enable()
    try:
        data = json.loads(text)
    except UnicodeDecodeError:
        raise CorruptSnapshot("not JSON: the file is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        # json's messages may end in "at" ("Unterminated string starting at"): said once.
        raise CorruptSnapshot(f"not JSON: {exc.msg.removesuffix(' at')} at line "
                              f"{exc.lineno}, column {exc.colno}") from None
    if not isinstance(data, dict) or "namespaces" not in data:
        raise CorruptSnapshot("not a netdiag snapshot (no 'namespaces' key)")
    _check_version(data.get("schema_version"))
    return dataclasses.replace(from_data(Snapshot, data, "snapshot"),
                               schema_version=SCHEMA_VERSION)


@cache
def _decoder() -> msgspec.json.Decoder:
    # Built on first use: a model type msgspec cannot handle raises TypeError here (and
    # loading takes the slow path) instead of breaking the import.
    return msgspec.json.Decoder(Snapshot)


def _check_version(version: Any) -> None:
    """Versions this netdiag reads; an older file loads as the current version (what it lacks
    takes the default: a version-1 file has no `docker` section)."""
    if version not in READABLE_VERSIONS:
        raise CorruptSnapshot(f"schema version {version!r} is not supported (this netdiag "
                              f"reads versions {', '.join(map(str, READABLE_VERSIONS))})")


def load(path: str | Path) -> Snapshot:
    try:
        text = Path(path).read_bytes()
    except FileNotFoundError:
        raise CorruptSnapshot(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptSnapshot(f"{path}: cannot read: {exc}") from None
    try:
        return loads(text)
    except CorruptSnapshot as exc:
        raise CorruptSnapshot(f"{path}: {exc}") from None


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_data(tp: Any, data: Any, where: str) -> Any:
    """Rebuild a value of type `tp` from plain data; `where` names the place for errors."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return from_data(inner, data, where)
    if origin is tuple:
        if not isinstance(data, list):
            raise CorruptSnapshot(f"{where}: expected a list")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], item, f"{where}[{i}]") for i, item in enumerate(data))
        return tuple(from_data(a, item, f"{where}[{i}]")
                     for i, (a, item) in enumerate(zip(args, data)))
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise CorruptSnapshot(f"{where}: expected an object")
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = from_data(hints[f.name], data[f.name], f"{where}.{f.name}")
        try:
            return tp(**kwargs)
        except TypeError as exc:
            raise CorruptSnapshot(f"{where}: {exc}") from None
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(data)
        except ValueError:
            raise CorruptSnapshot(f"{where}: unknown value {data!r}") from None
    if tp is Any:
        return data
    if tp in (int, str, bool):
        if not isinstance(data, tp) or (tp is int and isinstance(data, bool)):
            raise CorruptSnapshot(f"{where}: expected {tp.__name__}, got {type(data).__name__}")
        return data
    raise CorruptSnapshot(f"{where}: cannot read type {tp!r}")
