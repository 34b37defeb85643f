"""The controller: networks and endpoints as whole operations over store, IPAM and driver.

This is the programmatic entry point (the lab builder and `netdiag net` both use it), in the
role of libnetwork's controller: it validates the request, allocates the pool, gateway,
address and interface name, records the objects in the store, and calls the driver's verbs —
as named steps, so a failure anywhere undoes what was done and leaves neither kernel state
nor store rows behind. `reconcile` drops what the store remembers but the kernel has lost
(a sandbox or host namespace that is gone); `check` collects every driver's findings.

Host and sandbox namespaces are given by path or /run/netns name; the root namespace is
refused as either, so nothing built here ever touches the machine's own network.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from netdiag.drivers import registry
from netdiag.drivers.api import Driver, ExternalConnectivity, SetupStep, run_steps
from netdiag.drivers.common.namespaces import namespace_path
from netdiag.drivers.ipam import GLOBAL_SPACE, DefaultIpam, local_space
from netdiag.drivers.ipam.host import networks_to_avoid
from netdiag.drivers.lb.store_services import put_service, sync
from netdiag.errors import Conflict, UsageError
from netdiag.findings.finding import Finding
from netdiag.store import Store
from netdiag.store.records import Endpoint, Network, PortBinding, Scope, Service

NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
class Controller:
    """The drivers, IPAM and store together, as libnetwork's controller. `serving` is the one
    namespace it may build in although it is the machine's root namespace: the engine a
    `plugin serve` answers (empty for labs and `netdiag net`: never the root namespace)."""

    def __init__(self, store: Store, serving: str = ""):
        self.store = store
        self.serving = serving
        self.ipam = DefaultIpam(store)
        self._drivers: dict[str, Driver] = {}

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc) -> None:
        self.store.close()

    def driver(self, name: str) -> Driver:
        if name not in self._drivers:
            self._drivers[name] = registry.get(name, self.store)
        return self._drivers[name]

    # networks -----------------------------------------------------------------------------

    def create_network(self, name: str, host: str, driver: str = "bridge", *,
                       subnet: str = "", gateway: str = "", ip_range: str = "",
                       internal: bool = False, options: Mapping[str, str] | None = None,
                       labels: Mapping[str, str] | None = None) -> Network:
        if not NAME_RE.fullmatch(name):
            raise UsageError(f"invalid network name {name!r}: letters, digits, _ . - "
                             "(starting with a letter or digit)")
        drv = self.driver(driver)
        options = dict(options or {})
        drv.parse_options(options)  # refuse bad options before anything is built
        host = namespace_path(host, self.serving)
        if not drv.uses_ipam and (subnet or gateway or ip_range):
            raise UsageError(f"the {driver} driver takes no subnet, gateway or ip-range")
        if gateway and not subnet:
            raise UsageError("a gateway needs an explicit subnet")
        network = Network(id=secrets.token_hex(32), name=name, driver=driver, host=host,
                          scope=drv.capability.scope, internal=internal,
                          options=tuple(sorted(options.items())),
                          labels=tuple(sorted((labels or {}).items())),
                          created=datetime.now(UTC).isoformat(timespec="microseconds"))

        def take_pool() -> None:
            nonlocal network
            space = GLOBAL_SPACE if network.scope is Scope.GLOBAL else local_space(host)
            avoid = () if subnet else networks_to_avoid(host)
            pool = self.ipam.request_pool(space, subnet, ip_range, avoid)
            network = replace(network, subnet=pool.subnet, ip_range=ip_range, pool_id=pool.id)

        def take_gateway() -> None:
            nonlocal network
            address = self.ipam.request_address(network.pool_id, gateway, owner="gateway")
            network = replace(network, gateway=address)

        def build() -> None:
            nonlocal network
            network = drv.create_network(network)

        def record() -> None:
            with self.store.transaction() as tx:
                tx.add_network(network)

        # The network is recorded once its driver has built it: whoever reads the store (a
        # resolver, another host's `lab up`) never sees a half-made one. The name is checked
        # first too, so that a clash costs nothing; two creating at once clash at `record`.
        if any(n.name == name and n.host == host for n in self.store.networks()):
            raise Conflict(f"network with name {name} already exists")
        steps = [SetupStep(driver, build, lambda: drv.delete_network(network)),
                 SetupStep("record", record)]
        if drv.uses_ipam:
            steps = [SetupStep("pool", take_pool, lambda: self.ipam.release_pool(network.pool_id)),
                     SetupStep("gateway", take_gateway)] + steps
        run_steps(f"create network {name}", steps)
        return network

    def delete_network(self, ref: str, host: str | None = None, force: bool = False) -> None:
        network = self.network(ref, host)
        endpoints = self.store.endpoints(network.id)
        if endpoints and not force:
            raise Conflict(f"error while removing network: network {network.name} id "
                           f"{network.id} has active endpoints")
        # A host namespace that is gone took the devices and rules with it: forget only.
        host_alive = os.path.exists(network.host)
        for endpoint in endpoints:
            if host_alive:
                self._disconnect(network, endpoint)
            else:
                self.release(network, endpoint)
        # A global network lives on every host that has its endpoints, not on the one it was
        # created from: its driver undoes what is left (a VNI) even when that host is gone.
        if host_alive or network.scope is Scope.GLOBAL:
            self.driver(network.driver).delete_network(network)
        if network.pool_id:
            self.ipam.release_pool(network.pool_id)
        self.forget_network(network.id)

    def forget_network(self, network_id: str) -> None:
        with self.store.transaction() as tx:
            tx.delete_network(network_id)

    def network(self, ref: str, host: str | None = None) -> Network:
        return self.store.network(ref, namespace_path(host, self.serving) if host else None)

    def networks(self, host: str | None = None) -> list[Network]:
        return self.store.networks(namespace_path(host, self.serving) if host else None)

    def endpoints(self, network: Network) -> list[Endpoint]:
        return self.store.endpoints(network.id)

    # endpoints ----------------------------------------------------------------------------

    def connect(self, ref: str, sandbox: str, name: str = "", *, host: str | None = None,
                address: str = "", ports: Sequence[PortBinding] = (),
                aliases: Sequence[str] = ()) -> Endpoint:
        """Attach the container namespace `sandbox` to a network (Docker's network connect).

        `host` picks the network by host namespace and, for a global network, is the host
        the endpoint lives on (default: the network's first host).
        """
        network = self.network(ref, host)
        drv = self.driver(network.driver)
        sandbox = namespace_path(sandbox)
        on_host = namespace_path(host, self.serving) if host and network.scope is Scope.GLOBAL \
            else network.host
        name = name or Path(sandbox).name
        if ports and not isinstance(drv, ExternalConnectivity):
            raise UsageError(f"the {network.driver} driver cannot publish ports")
        endpoint = Endpoint(id=secrets.token_hex(32), network_id=network.id, name=name,
                            host=on_host, ifname=self._next_ifname(sandbox),
                            ports=tuple(ports), aliases=tuple(aliases))

        def take_address() -> None:
            nonlocal endpoint
            ip = self.ipam.request_address(network.pool_id, address, owner=endpoint.id)
            prefixlen = ipaddress.ip_network(network.subnet).prefixlen
            endpoint = replace(endpoint, address=f"{ip}/{prefixlen}")

        def record() -> None:
            with self.store.transaction() as tx:
                tx.add_endpoint(endpoint)

        def create() -> None:
            nonlocal endpoint
            endpoint = drv.create_endpoint(network, endpoint)

        def join() -> None:
            nonlocal endpoint
            endpoint = drv.join(network, endpoint, sandbox)

        def publish() -> None:
            nonlocal endpoint
            endpoint = drv.program_external_connectivity(network, endpoint)

        steps = []
        if drv.uses_ipam:
            steps.append(SetupStep("address", take_address,
                              lambda: self.ipam.release_address(network.pool_id, endpoint.ip)))
        steps += [SetupStep("record", record, lambda: self.forget_endpoint(endpoint.id)),
                  SetupStep("endpoint", create, lambda: drv.delete_endpoint(network, endpoint)),
                  SetupStep("join", join, lambda: drv.leave(network, endpoint))]
        if ports:
            steps.append(SetupStep("ports", publish))
        run_steps(f"connect {name} to {network.name}", steps)
        with self.store.transaction() as tx:
            tx.update_endpoint(endpoint)
        return endpoint

    def disconnect(self, ref: str, endpoint_ref: str, host: str | None = None) -> None:
        network = self.network(ref, host)
        with self.store.transaction(write=False) as tx:
            endpoint = tx.endpoint(network.id, endpoint_ref)
        self._disconnect(network, endpoint)

    def _disconnect(self, network: Network, endpoint: Endpoint) -> None:
        drv = self.driver(network.driver)
        if endpoint.ports and isinstance(drv, ExternalConnectivity):
            drv.revoke_external_connectivity(network, endpoint)
        if endpoint.sandbox:
            endpoint = drv.leave(network, endpoint)
        drv.delete_endpoint(network, endpoint)
        if endpoint.address and network.pool_id:
            self.ipam.release_address(network.pool_id, endpoint.ip)
        self.forget_endpoint(endpoint.id)

    def forget_endpoint(self, endpoint_id: str) -> None:
        with self.store.transaction() as tx:
            tx.release_ports(endpoint_id)
            tx.delete_endpoint(endpoint_id)

    def _next_ifname(self, sandbox: str) -> str:
        # An overlay endpoint has a second leg (to the host's gateway bridge) by a name of its own.
        used = {name for ep in self.store.endpoints(sandbox=sandbox)
                for name in (ep.ifname, ep.datum("gw_ifname")) if name}
        index = 0
        while f"eth{index}" in used:
            index += 1
        return f"eth{index}"

    # state against the kernel ------------------------------------------------------------

    # services -----------------------------------------------------------------------------

    def create_service(self, name: str, network: Network, backends: Sequence[str], *,
                       endpoint_mode: str = "vip", ports: Sequence[PortBinding] = ()
                       ) -> Service:
        """A service of `network` balanced over the endpoints `backends` (their ids): in VIP
        mode its VIP comes from the network's pool and every sandbox of the network balances
        to it (client side, as Docker's); in DNS round-robin mode the resolver answers it."""
        vip = ""
        if endpoint_mode == "vip":
            address = self.ipam.request_address(network.pool_id, owner=f"vip:{name}")
            vip = f"{address}/{ipaddress.ip_network(network.subnet).prefixlen}"
        service = put_service(self.store, Service(
            id=secrets.token_hex(32), name=name, network_id=network.id, vip=vip,
            mode=endpoint_mode, ports=tuple(ports), backends=tuple(backends)))
        if vip and ports:
            for endpoint in self.endpoints(network):
                if endpoint.sandbox:
                    sync(self.store, endpoint.sandbox)
        return service

    def check(self, ref: str | None = None, host: str | None = None) -> list[Finding]:
        networks = [self.network(ref, host)] if ref else self.networks(host)
        findings: list[Finding] = []
        for network in networks:
            if not os.path.exists(network.host):
                continue  # reconcile reports (and forgets) networks whose host is gone
            drv = self.driver(network.driver)
            findings.extend(drv.check(network, self.store.endpoints(network.id)))
        return findings

    def reconcile(self) -> list[str]:
        """Forget endpoints whose sandbox and networks whose host namespace are gone."""
        done = []
        for network in self.store.networks():
            host_gone = not os.path.exists(network.host)
            for endpoint in self.store.endpoints(network.id):
                if host_gone or (endpoint.sandbox and not os.path.exists(endpoint.sandbox)):
                    self.release(network, endpoint)
                    done.append(f"forgot endpoint {endpoint.name} of {network.name}: "
                                "its namespace is gone")
            if host_gone:
                if network.pool_id:
                    self.ipam.release_pool(network.pool_id)
                self.forget_network(network.id)
                done.append(f"forgot network {network.name}: host namespace "
                            f"{network.host} is gone")
        return done

    def release(self, network: Network, endpoint: Endpoint) -> None:
        """Drop an endpoint whose namespaces died (or are about to: a lab's host part going
        down): the kernel removes its devices, but its host-side firewall rules may remain,
        so those are revoked when possible."""
        drv = self.driver(network.driver)
        if endpoint.ports and isinstance(drv, ExternalConnectivity) and \
                os.path.exists(endpoint.host):
            drv.revoke_external_connectivity(network, endpoint)
        if endpoint.address and network.pool_id:
            self.ipam.release_address(network.pool_id, endpoint.ip)
        self.forget_endpoint(endpoint.id)
