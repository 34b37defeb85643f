"""netdiag's drivers as a Docker remote network and IPAM plugin (libnetwork's remote API).

Docker POSTs JSON to /Plugin.Activate, /NetworkDriver.* and /IpamDriver.* on a Unix socket
(/run/docker/plugins/NAME.sock). `Plugin` answers each call from the same store, IPAM and
drivers the lab uses; `serve` is the HTTP server around it. The engine allocates nothing
itself when the network is made with `--ipam-driver NAME` too: pools and addresses come from
netdiag's IPAM, recorded in the store, so a restarted plugin keeps them.

The division of work is Docker's: at Join the driver makes the interface in the engine's
namespace (the network's host namespace) and answers its name; the engine moves it into the
container, names it ethN and gives it the address and gateway. A network is recorded under
Docker's own network id, so `netdiag net ls --store ...` and Docker speak of the same ids.

A plugin of scope "global" serves overlay networks that span engines: the engines share a
cluster store (Docker 20.10's --cluster-store), every engine runs its own plugin, and those
plugins share one etcd as their store. Each engine asks its plugin to create the network (the
first one makes it, the others find it made); endpoints live on the engine they were asked
on, and the host's overlay agent (a thread of the plugin) programs the other engines' ones.

Every failure is answered, never raised: {"Err": "..."} to the network calls, {"Error":
"..."} to the IPAM calls (the field names libnetwork reads), with HTTP 200, and the `docker`
CLI prints the text as it is.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

from netdiag import netns, private_files
from netdiag.drivers import registry
from netdiag.drivers.api import ExternalConnectivity, HandsOver, SetupStep, run_steps
from netdiag.drivers.common import links
from netdiag.drivers.controller import Controller
from netdiag.drivers.ipam import GLOBAL_SPACE, local_space
from netdiag.drivers.ipam.host import networks_to_avoid
from netdiag.errors import NetdiagError, NotFound, UsageError
from netdiag.store import Store
from netdiag.store.records import Endpoint, Network, PortBinding, Scope

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
GENERIC = "com.docker.network.generic"  # where `docker network create -o K=V` options arrive
DRIVER_OPTION = "netdiag.driver"  # -o netdiag.driver=macvlan picks the driver (default: bridge)
GATEWAY_REQUEST = "com.docker.network.gateway"  # RequestAddressType of the gateway's address
PROTOCOLS = {6: "tcp", 17: "udp"}


class BadRequest(NetdiagError):
    """The engine's request lacks a field or has one of the wrong kind."""


@dataclass(frozen=True, slots=True)
class Call:
    """One request: its JSON body, with typed access that answers BadRequest, not KeyError."""

    body: dict

    def text(self, key: str, required: bool = True) -> str:
        value = self.body.get(key)
        if value is None or value == "":
            if required:
                raise BadRequest(f"the request has no {key}")
            return ""
        if not isinstance(value, str):
            raise BadRequest(f"{key} must be a string")
        return value

    def mapping(self, key: str) -> dict:
        value = self.body.get(key) or {}
        if not isinstance(value, dict):
            raise BadRequest(f"{key} must be an object")
        return value


class Plugin:
    """The handlers, one method per call, over one store; `host` is the engine's namespace,
    `scope` the networks it serves (local: bridge, macvlan; global: overlay)."""

    def __init__(self, store: Store, host: str, name: str, scope: Scope = Scope.LOCAL):
        self.store, self.host, self.name, self.scope = store, host, name, scope
        # The lab's controller, for its drivers, IPAM and bookkeeping; the calls' order is
        # the engine's, so the plugin runs their steps itself.
        self.controller = Controller(store, serving=host)
        self.ipam = self.controller.ipam
        self.driver = self.controller.driver
        self._lock = threading.Lock()  # one call at a time: the engine serialises them anyway

    def handle(self, path: str, body: object) -> dict:
        """The answer to a POST of `body` to `path`, errors included."""
        kind, _, verb = path.strip("/").partition(".")
        error_field = "Error" if kind == "IpamDriver" else "Err"
        handler = getattr(self, f"{kind}_{verb}", None) if verb else None
        if handler is None:
            return {error_field: f"{self.name}: unknown call {path}"}
        if not isinstance(body, dict):
            return {error_field: f"{self.name}: {path}: the body must be a JSON object"}
        try:
            with self._lock:
                return handler(Call(body))
        except NetdiagError as exc:
            return {error_field: f"{self.name}: {exc}"}
        except Exception as exc:  # noqa: BLE001 - the engine gets an answer, the plugin lives
            return {error_field: f"{self.name}: internal error: {type(exc).__name__}: {exc}"}

    def Plugin_Activate(self, call: Call) -> dict:  # noqa: N802 - the API's names
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    # --- NetworkDriver ------------------------------------------------------------------

    def NetworkDriver_GetCapabilities(self, call: Call) -> dict:  # noqa: N802
        return {"Scope": self.scope.value, "ConnectivityScope": self.scope.value}

    def NetworkDriver_CreateNetwork(self, call: Call) -> dict:  # noqa: N802
        network_id = call.text("NetworkID")
        options = {str(k): str(v) for k, v in call.mapping("Options").get(GENERIC, {}).items()}
        default = "overlay" if self.scope is Scope.GLOBAL else "bridge"
        driver_name = options.pop(DRIVER_OPTION, default)
        driver = self.driver(driver_name)
        if driver.capability.scope is not self.scope:
            wanted = driver.capability.scope.value
            raise UsageError(f"the {driver_name} driver is {wanted}-scoped; this plugin serves "
                             f"{self.scope.value} networks (netdiag plugin serve --scope "
                             f"{wanted})")
        # Every engine of a global network asks its plugin; the first one made it. There is
        # no race: libnetwork calls the creating engine's driver before it writes the network
        # to the cluster store, so the other engines learn of it (and ask) once it is recorded.
        if self.scope is Scope.GLOBAL and self._network(call, missing_ok=True):
            return {}
        if not isinstance(driver, HandsOver):
            served = [n for n in registry.names() if isinstance(self.driver(n), HandsOver)]
            raise UsageError(f"the {driver_name} driver cannot be used by Docker yet "
                             f"(this plugin serves: {', '.join(served)})")
        driver.parse_options(options)
        ipv4 = call.body.get("IPv4Data") or []
        if len(ipv4) != 1 or not isinstance(ipv4[0], dict):
            raise BadRequest("a network needs exactly one IPv4 pool")
        if call.body.get("IPv6Data"):
            raise UsageError("IPv6 is not supported")
        subnet, gateway = ipv4[0].get("Pool", ""), ipv4[0].get("Gateway", "")
        if not subnet or not gateway:
            raise BadRequest("the IPv4 pool has no Pool or no Gateway")
        network = Network(id=network_id, name=f"docker-{network_id[:12]}", driver=driver_name,
                          host=self.host, scope=self.scope, subnet=subnet,
                          gateway=gateway.split("/")[0],
                          internal=bool(call.mapping("Options").get(
                              "com.docker.network.internal")),
                          options=tuple(sorted(options.items())),
                          labels=(("netdiag.plugin", self.name),),
                          created=datetime.now(UTC).isoformat(timespec="microseconds"))

        def build() -> None:
            nonlocal network
            network = driver.create_network(network)  # the driver may add what it chose

        def record() -> None:  # once built, as the controller does: never half-made
            with self.store.transaction() as tx:
                tx.add_network(network)

        run_steps(f"create network {network_id[:12]}", [
            SetupStep(driver_name, build, lambda: driver.delete_network(network)),
            SetupStep("record", record)])
        return {}

    def NetworkDriver_DeleteNetwork(self, call: Call) -> dict:  # noqa: N802
        network = self._network(call, missing_ok=True)
        if network is None:
            return {}  # already gone: `docker network rm` must not be stuck on it
        for endpoint in self.store.endpoints(network.id):
            self._delete_endpoint(network, endpoint)
        self.driver(network.driver).delete_network(network)
        with self.store.transaction() as tx:
            tx.delete_network(network.id)
        return {}

    def NetworkDriver_CreateEndpoint(self, call: Call) -> dict:  # noqa: N802
        network = self._network(call)
        driver = self.driver(network.driver)
        interface = call.mapping("Interface")
        address, given_mac = interface.get("Address", ""), interface.get("MacAddress", "")
        if not address:
            raise BadRequest("the endpoint has no IPv4 address")
        endpoint_id = call.text("EndpointID")
        endpoint = Endpoint(id=endpoint_id, network_id=network.id, name=endpoint_id[:12],
                            host=self.host, address=address, mac=given_mac)
        # The engine brings a global network's way out (docker_gwbridge, see Join), so the
        # driver builds the endpoint as on an internal network: no gateway leg of its own.
        endpoint = driver.create_endpoint(
            replace(network, internal=True) if network.scope is Scope.GLOBAL else network,
            endpoint)
        if given_mac:  # the engine's MAC stands (it refuses a driver that changes it)
            endpoint = replace(endpoint, mac=given_mac)
        with self.store.transaction() as tx:
            tx.add_endpoint(endpoint)
        return {"Interface": {} if given_mac else {"MacAddress": endpoint.mac}}

    def NetworkDriver_EndpointOperInfo(self, call: Call) -> dict:  # noqa: N802
        endpoint = self._endpoint(call)
        return {"Value": {"host_ifname": endpoint.host_ifname, "sandbox": endpoint.sandbox}}

    def NetworkDriver_DeleteEndpoint(self, call: Call) -> dict:  # noqa: N802
        network = self._network(call, missing_ok=True)
        endpoint = self._endpoint(call, network, missing_ok=True) if network else None
        if endpoint is not None:
            self._delete_endpoint(network, endpoint)
        return {}

    def NetworkDriver_Join(self, call: Call) -> dict:  # noqa: N802
        network = self._network(call)
        endpoint = self._endpoint(call, network)
        sandbox = call.text("SandboxKey")
        name = _handed_over(endpoint)
        endpoint = self.driver(network.driver).hand_over(network, endpoint, name)
        with self.store.transaction() as tx:
            tx.update_endpoint(replace(endpoint, sandbox=sandbox))
        answer = {"InterfaceName": {"SrcName": name, "DstPrefix": "eth"}}
        if not network.internal and network.scope is Scope.LOCAL:
            answer["Gateway"] = network.gateway
        # A network across engines has no gateway of its own: without one in the answer, the
        # engine gives the container a leg on its docker_gwbridge, as for Docker's overlay.
        return answer

    def NetworkDriver_Leave(self, call: Call) -> dict:  # noqa: N802
        # The engine has moved the interface back out of the sandbox by now; DeleteEndpoint
        # removes the pair.
        network = self._network(call)
        endpoint = self._endpoint(call, network)
        self.driver(network.driver).take_back(network, endpoint)
        with self.store.transaction() as tx:
            tx.update_endpoint(replace(endpoint, sandbox=""))
        return {}

    def NetworkDriver_ProgramExternalConnectivity(self, call: Call) -> dict:  # noqa: N802
        network = self._network(call)
        endpoint = self._endpoint(call, network)
        driver = self.driver(network.driver)
        ports = _port_bindings(call.mapping("Options").get("com.docker.network.portmap"))
        if not ports:
            return {}
        if not isinstance(driver, ExternalConnectivity):
            raise UsageError(f"the {network.driver} driver cannot publish ports")
        published = driver.program_external_connectivity(network, replace(endpoint, ports=ports))
        with self.store.transaction() as tx:
            tx.update_endpoint(published)
        return {}

    def NetworkDriver_RevokeExternalConnectivity(self, call: Call) -> dict:  # noqa: N802
        network = self._network(call)
        endpoint = self._endpoint(call, network)
        driver = self.driver(network.driver)
        if endpoint.ports and isinstance(driver, ExternalConnectivity):
            driver.revoke_external_connectivity(network, endpoint)
            with self.store.transaction() as tx:
                tx.release_ports(endpoint.id)
                tx.update_endpoint(replace(endpoint, ports=()))
        return {}

    def NetworkDriver_DiscoverNew(self, call: Call) -> dict:  # noqa: N802
        return {}

    def NetworkDriver_DiscoverDelete(self, call: Call) -> dict:  # noqa: N802
        return {}

    # --- IpamDriver -----------------------------------------------------------------------

    def IpamDriver_GetCapabilities(self, call: Call) -> dict:  # noqa: N802
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    def IpamDriver_GetDefaultAddressSpaces(self, call: Call) -> dict:  # noqa: N802
        return {"LocalDefaultAddressSpace": local_space(self.host),
                "GlobalDefaultAddressSpace": GLOBAL_SPACE}

    def IpamDriver_RequestPool(self, call: Call) -> dict:  # noqa: N802
        if call.body.get("V6"):
            raise UsageError("IPv6 pools are not supported")
        default = GLOBAL_SPACE if self.scope is Scope.GLOBAL else local_space(self.host)
        space = call.text("AddressSpace", required=False) or default
        subnet = call.text("Pool", required=False)
        avoid = () if subnet else networks_to_avoid(self.host)
        pool = self.ipam.request_pool(space, subnet, call.text("SubPool", required=False), avoid)
        return {"PoolID": pool.id, "Pool": pool.subnet, "Data": {}}

    def IpamDriver_ReleasePool(self, call: Call) -> dict:  # noqa: N802
        self.ipam.release_pool(call.text("PoolID"))
        return {}

    def IpamDriver_RequestAddress(self, call: Call) -> dict:  # noqa: N802
        pool_id = call.text("PoolID")
        options = call.mapping("Options")
        gateway = options.get("RequestAddressType") == GATEWAY_REQUEST
        address = self.ipam.request_address(pool_id, call.text("Address", required=False),
                                            owner="gateway" if gateway else "docker")
        prefixlen = ipaddress.ip_network(self._pool_subnet(pool_id)).prefixlen
        return {"Address": f"{address}/{prefixlen}", "Data": {}}

    def IpamDriver_ReleaseAddress(self, call: Call) -> dict:  # noqa: N802
        self.ipam.release_address(call.text("PoolID"), call.text("Address").split("/")[0])
        return {}

    # --- helpers --------------------------------------------------------------------------

    def _network(self, call: Call, missing_ok: bool = False) -> Network | None:
        network_id = call.text("NetworkID")
        try:
            network = self.store.network(network_id)
        except NotFound:
            if missing_ok:
                return None
            raise NotFound(f"network {network_id[:12]} is not one of this plugin's") from None
        if network.id != network_id:  # a prefix or a name matched: not the one asked for
            raise NotFound(f"network {network_id[:12]} is not one of this plugin's")
        return network

    def _endpoint(self, call: Call, network: Network | None = None,
                  missing_ok: bool = False) -> Endpoint | None:
        network = network or self._network(call)
        endpoint_id = call.text("EndpointID")
        found = [e for e in self.store.endpoints(network.id) if e.id == endpoint_id]
        if not found and not missing_ok:
            raise NotFound(f"endpoint {endpoint_id[:12]} not found in network "
                           f"{network.id[:12]}")
        return found[0] if found else None

    def _delete_endpoint(self, network: Network, endpoint: Endpoint) -> None:
        driver = self.driver(network.driver)
        if endpoint.ports and isinstance(driver, ExternalConnectivity):
            driver.revoke_external_connectivity(network, endpoint)
        driver.delete_endpoint(network, endpoint)
        # What the engine gave back at Leave (a veth went with its host side already).
        links.delete_link_in(endpoint.host, _handed_over(endpoint))
        self.controller.forget_endpoint(endpoint.id)

    def _pool_subnet(self, pool_id: str) -> str:
        with self.store.transaction(write=False) as tx:
            return tx.pool(pool_id).subnet


def _handed_over(endpoint: Endpoint) -> str:
    """The name an endpoint's interface has in the host namespace, before the engine moves it
    into the container and after it gives it back."""
    return "ndp" + endpoint.id[:8]


def _port_bindings(portmap: object) -> tuple[PortBinding, ...]:
    """Docker's portmap ([{"Proto": 6, "Port": 80, "HostIP": "", "HostPort": 8080}...])."""
    if not portmap:
        return ()
    if not isinstance(portmap, list):
        raise BadRequest("com.docker.network.portmap must be a list")
    bindings = []
    for item in portmap:
        try:
            proto = PROTOCOLS[int(item.get("Proto", 6))]
            bindings.append(PortBinding(container_port=int(item["Port"]), proto=proto,
                                        host_port=int(item.get("HostPort") or 0),
                                        host_ip=item.get("HostIP") or ""))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BadRequest(f"unreadable port mapping {item!r}") from None
    return tuple(bindings)


# --- the HTTP server on a Unix socket -----------------------------------------------------


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # `docker rm -f` of 100 containers calls the plugin for all of them at once; with
    # socketserver's backlog of 5, connecting failed (EAGAIN) and the engine kept endpoints
    # it could not revoke — a network that `docker network rm` then refused.
    request_queue_size = socket.SOMAXCONN
    plugin: Plugin

    def server_bind(self) -> None:
        super().server_bind()
        # Root only, before listen(): nothing can connect in between. The engine is root.
        os.chmod(self.server_address, private_files.FILE_MODE)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None  # answered as a bad request by Plugin.handle
        plugin = self.server.plugin
        # Answered from inside the engine's namespace: the plugin reaches its store (an etcd
        # the engines share) from where the engine reaches its own cluster store.
        with netns.entered(plugin.host):
            answer = json.dumps(plugin.handle(self.path, body)).encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's name
        pass  # the engine polls; a line per call would drown what matters


def serve(plugin: Plugin, socket_path: str, ready: Callable[[], None] = lambda: None) -> None:
    """Answer the engine on `socket_path` until interrupted (SIGTERM, SIGINT: the caller turns
    them into exceptions); the socket file is made here and removed at the end."""
    if os.path.exists(socket_path):
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(socket_path)
        except OSError:
            os.unlink(socket_path)  # a stale socket of a plugin that died
        else:
            raise UsageError(f"{socket_path}: another plugin is serving there")
        finally:
            probe.close()
    os.makedirs(os.path.dirname(socket_path) or ".", exist_ok=True)
    server = _Server(socket_path, _Handler)
    server.plugin = plugin
    try:
        ready()
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        try:
            os.unlink(socket_path)
        except FileNotFoundError:
            pass
