"""The one explicit list of network drivers.

Each entry maps a driver name to the module that provides it; the module exposes `DRIVER`, a
class built with the store (`DRIVER(store)`). Modules are imported on first use so that
`netdiag` starts fast and a driver that needs an optional library only costs when chosen.
An unknown name gets an error that lists the known ones.
"""

from __future__ import annotations

from importlib import import_module

from netdiag.drivers.api import Driver
from netdiag.errors import UsageError
from netdiag.store import Store

DRIVERS: dict[str, str] = {
    "bridge": "netdiag.drivers.bridge",
    "host": "netdiag.drivers.host",
    "none": "netdiag.drivers.none",
    "overlay": "netdiag.drivers.overlay",
    "macvlan": "netdiag.drivers.macvlan",
}


def names() -> tuple[str, ...]:
    return tuple(sorted(DRIVERS))


def get(name: str, store: Store) -> Driver:
    """The driver called `name`, built with `store`."""
    try:
        module_name = DRIVERS[name]
    except KeyError:
        raise UsageError(f"unknown network driver {name!r} "
                         f"(known drivers: {', '.join(names())})") from None
    return import_module(module_name).DRIVER(store)
