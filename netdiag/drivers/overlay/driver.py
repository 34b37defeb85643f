"""The overlay driver: one L2 network across hosts, VXLAN between them.

create_network takes a VNI (from 4096) and checks encryption support; the first endpoint of a
host builds that host's overlay namespace (dataplane) and gateway bridge; join plugs the
container (eth0 on br0, eth1 on docker_gwbridge with the default route), programs the remote
peers the control plane knows into this host and announces the new endpoint to the others;
leave and delete undo it, and the last endpoint of a host removes its overlay namespace.
Published ports (ExternalConnectivity, programmed after join and revoked before leave) are
DNATed from the endpoint's host to its docker_gwbridge address, with the bridge driver's rules.

A dual-stack network (option `netdiag.overlay.ipv6_subnet`) gives br0 the IPv6 gateway and each
container's eth0 its IPv6 address (the host number of its IPv4 one, `nodad`); there is no IPv6
default route, as docker_gwbridge is IPv4 only (moby daemon/libnetwork/default_gateway_linux.go,
createGWNetwork: NetworkOptionEnableIPv6(false)), so IPv6 stays on the overlay and published
ports are IPv4 only.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from netdiag import netns
from netdiag.drivers.api import Capability
from netdiag.drivers.common import links
from netdiag.drivers.common import ports as published
from netdiag.drivers.ipam import IPV6_ADDRESS, DefaultIpam, ipv6_companion, with_ipv6
from netdiag.drivers.overlay import check as overlay_check
from netdiag.drivers.overlay import dataplane, encryption, gateway
from netdiag.drivers.overlay.controlplane import ControlPlane, EmbeddedControlPlane, Event, Peer
from netdiag.drivers.overlay.options import (
    FIRST_VNI,
    LAST_VNI,
    VNI_KEY,
    OverlayOptions,
    parse,
)
from netdiag.errors import Conflict
from netdiag.findings.finding import Finding
from netdiag.model.docker import docker_mac
from netdiag.model.facts import VXLAN_OVERHEAD
from netdiag.store import Store
from netdiag.store.records import Endpoint, Network, Scope

VNI_SPACE = "vxlan-id"


def _control_plane(store: Store, deliver) -> ControlPlane:
    """On a store machines share (etcd), the control plane of agents watching etcd; else
    the embedded one, which programs every host of this machine itself."""
    from netdiag.store.etcd import EtcdStore

    if isinstance(store, EtcdStore):
        from netdiag.drivers.overlay.etcd_plane import EtcdControlPlane

        return EtcdControlPlane(store.etcd)
    return EmbeddedControlPlane(store, deliver)


def _with_data(endpoint: Endpoint, **values: str) -> Endpoint:
    data = dict(endpoint.data) | values
    return replace(endpoint, data=tuple(sorted(data.items())))


def _next_ifname(name: str) -> str:
    """eth0 → eth1: the gateway leg follows the overlay leg."""
    stem = name.rstrip("0123456789")
    return f"{stem}{int(name[len(stem):] or 0) + 1}"


class OverlayDriver:
    name = "overlay"
    capability = Capability(Scope.GLOBAL)
    uses_ipam = True

    def __init__(self, store: Store, control_plane: ControlPlane | None = None):
        self.store = store
        self.ipam = DefaultIpam(store)
        self.control = control_plane or _control_plane(store, self.deliver)

    def parse_options(self, options: Mapping[str, str]) -> OverlayOptions:
        return parse(options)

    # --- networks ---------------------------------------------------------------------------

    def create_network(self, network: Network) -> Network:
        options = parse(dict(network.options))
        if options.encrypted:
            encryption.require(network.host)
        with self.store.transaction() as tx:
            vni = tx.take_number(VNI_SPACE, FIRST_VNI, LAST_VNI, owner=network.id,
                                 wanted=options.vni or None)
        kept = tuple((k, v) for k, v in network.options if k != VNI_KEY)
        return replace(network, options=kept + ((VNI_KEY, str(vni)),))

    def delete_network(self, network: Network) -> None:
        suffix = f"-{dataplane.EPOCH}-{network.id[:10]}"
        for path in netns.NAMED_DIR.glob(f"*{suffix}"):  # leftovers on any host
            netns.delete_named(path.name)
        with self.store.transaction() as tx:
            tx.release_number(VNI_SPACE, int(network.option(VNI_KEY) or 0))

    # --- endpoints ----------------------------------------------------------------------------

    def create_endpoint(self, network: Network, endpoint: Endpoint) -> Endpoint:
        options = parse(dict(network.options))
        dataplane.host_name(endpoint.host)  # refuses anything but a named, non-root namespace
        vtep, underlay_mtu = dataplane.underlay(endpoint.host)
        mtu = (options.mtu or underlay_mtu) - VXLAN_OVERHEAD[4]
        if not Path(dataplane.sandbox_path(endpoint.host, network)).exists():
            gateway6 = ipv6_companion(network.subnet, network.gateway, options.subnet6) \
                if options.subnet6 and network.gateway else ""
            dataplane.create_sandbox(endpoint.host, network, int(network.option(VNI_KEY)), mtu,
                                     gateway6)
        endpoint = with_ipv6(_with_data(endpoint, vtep=vtep, mtu=str(mtu)), network.subnet,
                             options.subnet6)
        endpoint = replace(endpoint, mac=endpoint.mac or docker_mac(endpoint.ip))
        if network.internal:
            return endpoint
        bridge = gateway.ensure(self.ipam, endpoint.host)
        address = self.ipam.request_address(bridge.pool.id, owner=endpoint.id)
        return _with_data(endpoint, gw_pool=bridge.pool.id, gw_gateway=bridge.gateway,
                          gw_address=f"{address}/{bridge.prefixlen}")

    def delete_endpoint(self, network: Network, endpoint: Endpoint) -> None:
        if endpoint.datum("gw_pool"):
            self.ipam.release_address(endpoint.datum("gw_pool"),
                                      endpoint.datum("gw_address").split("/")[0])
        others = [e for e in self.store.endpoints(network.id, host=endpoint.host)
                  if e.id != endpoint.id]
        if not others:
            dataplane.delete_sandbox(endpoint.host, network)

    # --- sandboxes ----------------------------------------------------------------------------

    def join(self, network: Network, endpoint: Endpoint, sandbox: str) -> Endpoint:
        ifname = endpoint.ifname or "eth0"
        mtu = int(endpoint.datum("mtu"))
        overlay_ns = dataplane.sandbox_path(endpoint.host, network)
        host_side = f"veth{endpoint.id[:7]}"
        links.plug_veth(overlay_ns, dataplane.BRIDGE, host_side, sandbox, f"ov{endpoint.id[:8]}",
                        mtu)
        prefix = ipaddress.ip_network(network.subnet).prefixlen
        links.configure(sandbox, f"ov{endpoint.id[:8]}", ifname, endpoint.mac, mtu,
                        f"{endpoint.ip}/{prefix}", cidr6=endpoint.datum(IPV6_ADDRESS))
        endpoint = replace(endpoint, sandbox=sandbox, ifname=ifname, host_ifname=host_side)
        if endpoint.datum("gw_address"):
            gw_ifname = _next_ifname(ifname)
            links.plug_veth(endpoint.host, gateway.NAME, host_side, sandbox,
                            f"gw{endpoint.id[:8]}", 1500)
            links.configure(sandbox, f"gw{endpoint.id[:8]}", gw_ifname, "", 1500,
                            endpoint.datum("gw_address"), endpoint.datum("gw_gateway"))
            endpoint = _with_data(endpoint, gw_ifname=gw_ifname)
        self._publish(network, endpoint)
        return endpoint

    def hand_over(self, network: Network, endpoint: Endpoint, name: str) -> Endpoint:
        """The join a container engine finishes itself (Docker's remote drivers): the veth
        from this host's overlay namespace, its container side left in the host namespace as
        `name` for the engine to move, name and address; the other hosts learn of it. The
        engine gives an overlay network that is not internal its own gateway leg."""
        host_side = f"veth{endpoint.id[:7]}"
        links.plug_veth(dataplane.sandbox_path(endpoint.host, network), dataplane.BRIDGE,
                        host_side, endpoint.host, name, int(endpoint.datum("mtu")))
        endpoint = replace(endpoint, host_ifname=host_side)
        self._publish(network, endpoint)
        return endpoint

    def take_back(self, network: Network, endpoint: Endpoint) -> None:
        self.control.withdraw(network, Peer.of(endpoint))

    def _publish(self, network: Network, endpoint: Endpoint) -> None:
        """Teach this host every remote peer if this is the network's first endpoint here,
        and announce the endpoint to the other hosts. After the first, announcements
        (deliver) keep the host current: re-adding all peers on every join made an
        N-container overlay O(N²) netlink requests (2,550 for 2 × 50 containers, not 100)."""
        others_here = any(e.sandbox for e in self.store.endpoints(network.id, host=endpoint.host)
                          if e.id != endpoint.id)
        if not others_here:
            overlay_ns = dataplane.sandbox_path(endpoint.host, network)
            for peer in self.control.peers(network):
                if peer.host != endpoint.host:
                    dataplane.add_peer(overlay_ns, peer)
        self.control.announce(network, Peer.of(endpoint))

    def leave(self, network: Network, endpoint: Endpoint) -> Endpoint:
        self.control.withdraw(network, Peer.of(endpoint))
        links.delete_link_in(dataplane.sandbox_path(endpoint.host, network), endpoint.host_ifname)
        if endpoint.datum("gw_ifname"):
            links.delete_link_in(endpoint.host, endpoint.host_ifname)
        return replace(endpoint, sandbox="")

    def deliver(self, network: Network, host: str, event: Event, peer: Peer) -> None:
        """What a host does with a control-plane event about a remote endpoint."""
        overlay_ns = dataplane.sandbox_path(host, network)
        if not Path(overlay_ns).exists():
            return
        if event is Event.JOIN:
            dataplane.add_peer(overlay_ns, peer)
        else:
            dataplane.remove_peer(overlay_ns, peer)

    # --- published ports (optional capability) ------------------------------------------------

    def program_external_connectivity(self, network: Network, endpoint: Endpoint) -> Endpoint:
        """Publish the endpoint's ports on its host through docker_gwbridge (Docker's `-p` on
        an overlay network): host ports are allocated per host, like the bridge driver's."""
        if not endpoint.ports:
            return endpoint
        if not gateway.address_of(endpoint):
            raise Conflict(f"network {network.name} is internal: it cannot publish ports")
        ports = published.publish(self.store, endpoint.host, endpoint.id, gateway.NAME,
                                  gateway.address_of(endpoint), endpoint.ports,
                                  default_host_ip="0.0.0.0", hairpin=False,
                                  chains=gateway.PORT_CHAINS,
                                  prerequisites=gateway.port_prerequisites())
        return replace(endpoint, ports=ports)

    def revoke_external_connectivity(self, network: Network, endpoint: Endpoint) -> None:
        if not endpoint.ports:
            return
        if not gateway.address_of(endpoint) or not os.path.exists(endpoint.host):
            # Nothing was written, or the host took its rules with it: forget the ports.
            with self.store.transaction() as tx:
                tx.release_ports(endpoint.id)
            return
        published.unpublish(self.store, endpoint.host, endpoint.id, gateway.NAME,
                            gateway.address_of(endpoint), endpoint.ports, hairpin=False)

    def check(self, network: Network, endpoints: Sequence[Endpoint]) -> Iterator[Finding]:
        return overlay_check.check(network, endpoints)
