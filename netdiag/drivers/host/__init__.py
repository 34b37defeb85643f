"""The host driver: the container shares its host's network namespace.

There is nothing to build: joining means the sandbox *is* the host namespace, so an endpoint
records the host as its sandbox and no device, address or rule is made. As in Docker, a host
namespace has at most one network of this driver.
"""

from __future__ import annotations

from dataclasses import replace

from netdiag.drivers.common.nothing import NothingToBuild
from netdiag.errors import UsageError
from netdiag.store.records import Endpoint, Network


class HostDriver(NothingToBuild):
    name = "host"

    def join(self, network: Network, endpoint: Endpoint, sandbox: str) -> Endpoint:
        if sandbox and sandbox != network.host:
            raise UsageError(f"a container on the host network lives in the host namespace "
                             f"{network.host}, not in {sandbox}")
        return replace(endpoint, sandbox=network.host)


DRIVER = HostDriver
