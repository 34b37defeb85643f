"""The lab topology file: YAML → validated, typed model (pydantic).

A topology names the lab, its hosts (each a namespace acting as a container host; several hosts
are joined by an underlay network), its networks, containers, services and deliberate faults.
Errors name the key path and the line of the offending value, in one line. `netdiag lab
schema` prints the JSON Schema generated from these models, never kept by hand.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from netdiag.errors import TopologyError, is_plain_key, yaml_position, yaml_problem

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,14}")


def _name(value: str) -> str:
    # Short, because lab and node names end up in namespace and interface names.
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a name: use 1-15 lowercase letters, digits or '-', "
                         "starting with a letter")
    return value


Name = Annotated[str, AfterValidator(_name)]


class _Model(BaseModel):
    # Each field's docstring is its description in the JSON Schema (`netdiag lab schema`).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"not a subnet: {exc}") from None


def _cidr6(value: str) -> str:
    # A ULA prefix only: a lab never claims addresses of the global IPv6 space. At most /120
    # leaves room for the gateway and containers; the IPv4 subnet's host numbers are reused
    # (netdiag/drivers/ipam: ipv6_companion), so it needs as many host bits as the IPv4 one.
    subnet = _cidr(value)
    net = ipaddress.ip_network(subnet)
    if net.version != 6:
        raise ValueError(f"subnet6 {value} is not an IPv6 subnet")
    if not net.subnet_of(ipaddress.ip_network("fd00::/8")):
        raise ValueError(f"subnet6 {value} is not a unique local (fd00::/8) prefix")
    if not 64 <= net.prefixlen <= 120:
        raise ValueError(f"subnet6 {value}: use a prefix length from /64 to /120")
    return subnet


def _room(subnet: str | None, subnet6: str | None) -> None:
    """An IPv6 subnet reuses the IPv4 subnet's host numbers: it needs as many host bits."""
    if subnet and subnet6 and 128 - ipaddress.ip_network(subnet6).prefixlen < \
            32 - ipaddress.ip_network(subnet).prefixlen:
        raise ValueError(f"subnet6 {subnet6} has fewer addresses than subnet {subnet}")


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"not an IP address: {value!r}") from None


class Underlay(_Model):
    subnet: str = "10.99.0.0/24"
    """The network joining the hosts (their eth0), e.g. 10.99.0.0/24."""
    mtu: int = Field(1500, ge=576, le=9000)
    """The MTU of the hosts' underlay links, e.g. 1500 (576 to 9000)."""
    subnet6: str | None = None
    """Its IPv6 subnet, which makes the underlay dual stack, e.g. fd00:99::/64 (a ULA prefix,
    /64 to /120): each host and the switch get the host number of their IPv4 address in it
    (10.99.0.254 → fd00:99::fe)."""

    _subnet = field_validator("subnet")(_cidr)
    _subnet6 = field_validator("subnet6")(lambda v: v if v is None else _cidr6(v))

    @model_validator(mode="after")
    def _room_for_hosts(self) -> Underlay:
        _room(self.subnet, self.subnet6)
        return self


class Host(_Model):
    name: Name
    """The host's name: a lab node (lowercase letters, digits, -), e.g. host1."""
    mtu: int | None = Field(None, ge=576, le=9000)  # this host's underlay link, if not the default
    """This host's underlay link MTU when it differs from the underlay's, e.g. 1400."""


class NetworkSpec(_Model):
    name: Name
    """The network's name, as containers and services refer to it, e.g. front."""
    driver: Literal["bridge", "overlay", "macvlan", "host", "none"] = "bridge"
    """bridge (one host), overlay (VXLAN across hosts), macvlan, host or none."""
    subnet: str | None = None
    """Its IPv4 subnet, e.g. 172.30.0.0/24 (default: the next free pool)."""
    gateway: str | None = None
    """The gateway address inside the subnet (default: its first address)."""
    subnet6: str | None = None  # Docker's second IPAM config: the network is then dual stack
    """bridge, macvlan or overlay: its IPv6 subnet, which makes it dual stack, e.g.
    fd00:30::/64 (a ULA prefix, /64 to /120). The gateway and each container get the host
    number of their IPv4 address in it (172.30.0.2 → fd00:30::2)."""
    hosts: tuple[str, ...] = ()  # bridge/macvlan: one host (default: the first); overlay: several
    """The hosts it lives on: one for bridge/macvlan (default: the first host), several for an
    overlay (default: all)."""
    mtu: int | None = Field(None, ge=576, le=9000)
    """The network's MTU, e.g. 1450 (default: the driver's)."""
    internal: bool = False
    """No way out: no default route and no masquerading."""
    icc: bool = True
    """Containers on it reach each other (Docker's enable_icc)."""
    masquerade: bool = True
    """Traffic leaving the network is masqueraded (Docker's ip_masquerade)."""
    encrypted: bool = False
    """Overlay only: encrypt the VXLAN traffic (IPsec)."""
    parent: str | None = None  # macvlan parent interface
    """macvlan only: the host interface it sits on, e.g. eth0."""
    mode: Literal["bridge", "private", "vepa", "passthru"] = "bridge"
    """macvlan only: bridge, private, vepa or passthru."""

    _subnet = field_validator("subnet")(lambda v: v if v is None else _cidr(v))
    _gateway = field_validator("gateway")(lambda v: v if v is None else _ip(v))
    _subnet6 = field_validator("subnet6")(lambda v: v if v is None else _cidr6(v))

    @model_validator(mode="after")
    def _gateway_in_subnet(self) -> NetworkSpec:
        if self.gateway and not self.subnet:
            raise ValueError("gateway needs a subnet")
        if self.gateway and \
                ipaddress.ip_address(self.gateway) not in ipaddress.ip_network(self.subnet):
            raise ValueError(f"gateway {self.gateway} is outside subnet {self.subnet}")
        if self.subnet and ipaddress.ip_network(self.subnet).version != 4:
            raise ValueError(f"subnet {self.subnet} is not IPv4: put an IPv6 subnet in subnet6")
        if self.subnet6 and self.driver not in ("bridge", "macvlan", "overlay"):
            raise ValueError(f"subnet6: a {self.driver} network has no subnet of its own")
        _room(self.subnet, self.subnet6)
        return self


class Attachment(_Model):
    network: str
    """The network's name, e.g. front."""
    ip: str | None = None
    """A fixed address on it, e.g. 172.30.0.10 (default: the next free one)."""
    aliases: tuple[str, ...] = ()
    """More names the lab's DNS answers for it on this network."""

    _ip = field_validator("ip")(lambda v: v if v is None else _ip(v))


class PublishSpec(_Model):
    host_port: int = Field(ge=1, le=65535)
    """The port on the host, e.g. 8080."""
    container_port: int = Field(ge=1, le=65535)
    """The port in the container, e.g. 80."""
    protocol: Literal["tcp", "udp"] = "tcp"
    """tcp or udp."""


def _publish(value: Any) -> Any:
    """Accept Docker's short form "8080:80[/udp]" as well as a mapping."""
    if isinstance(value, str):
        match = re.fullmatch(r"(\d+):(\d+)(?:/(tcp|udp))?", value)
        if not match:
            raise ValueError(f"publish {value!r} is not HOST:CONTAINER[/tcp|udp]")
        return {"host_port": int(match[1]), "container_port": int(match[2]),
                "protocol": match[3] or "tcp"}
    return value


class Command(_Model):
    """What runs inside a container: one of the lab's small built-in programs."""

    app: Literal["web", "kv", "echo", "udp-echo", "http", "sleep"]
    """The program: web (HTTP front end calling its backend), kv (key-value store), echo, udp-echo,
    http (answers its name) or sleep."""
    port: int = Field(80, ge=1, le=65535)
    """The port it listens on, e.g. 5000."""
    backend: str | None = None  # web: "NAME:PORT" of the key-value store it calls
    """web only: NAME:PORT of the key-value store it calls, e.g. db:6379."""


class Container(_Model):
    name: Name
    """The container's name: a lab node, and its name in the lab's DNS."""
    host: str | None = None  # default: the first host
    """The host it runs on (default: the first host)."""
    networks: tuple[Attachment, ...] = ()
    """The networks it is attached to: names, or {network, ip, aliases}."""
    publish: tuple[PublishSpec, ...] = ()
    """Published ports: \"8080:80\", \"8080:80/udp\" or {host_port, container_port, protocol}."""
    command: Command | None = None
    """The program it runs (default: none)."""

    @field_validator("networks", mode="before")
    @classmethod
    def _short_networks(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"network": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("publish", mode="before")
    @classmethod
    def _short_publish(cls, value: Any) -> Any:
        return [_publish(v) for v in value] if isinstance(value, list) else value


class ServiceSpec(_Model):
    name: Name
    """The service's name, answered by the lab's DNS (its VIP or its tasks)."""
    network: str
    """The network its tasks are on."""
    replicas: int = Field(1, ge=1, le=64)
    """How many tasks (NAME-1, NAME-2, ...), 1 to 64."""
    hosts: tuple[str, ...] = ()  # tasks are spread over these (default: the network's hosts)
    """The hosts its tasks are spread over (default: the network's hosts)."""
    endpoint_mode: Literal["vip", "dnsrr"] = "vip"
    """vip (one virtual address, load-balanced) or dnsrr (DNS answers every task)."""
    publish: tuple[PublishSpec, ...] = ()
    """Ports published on every host of the network (the routing mesh)."""
    command: Command | None = None
    """The program each task runs."""

    @field_validator("publish", mode="before")
    @classmethod
    def _short_publish(cls, value: Any) -> Any:
        return [_publish(v) for v in value] if isinstance(value, list) else value


class MtuFault(_Model):
    kind: Literal["mtu"]
    """mtu: a link's MTU set to a wrong value."""
    node: str  # a host or container name
    """The host or container whose link it is."""
    link: str
    """The interface, e.g. eth0."""
    mtu: int = Field(ge=68, le=65535)
    """The MTU it gets, e.g. 1400."""


class RouteFault(_Model):
    kind: Literal["route"]
    """route: a route added (a wrong or blackhole route)."""
    node: str
    """The host or container it is added in."""
    dst: str
    """Its destination, e.g. 10.0.9.0/24 or default."""
    via: str | None = None
    """Its gateway, e.g. 10.99.0.9."""
    dev: str | None = None
    """Its device, e.g. eth0."""

    _dst = field_validator("dst")(_cidr)


class FdbFault(_Model):
    kind: Literal["fdb"]
    """fdb: a wrong VXLAN forwarding entry on an overlay."""
    node: str  # a host; the entry goes on the overlay network's vxlan device there
    """The host whose overlay device gets the entry."""
    network: str
    """The overlay network."""
    mac: str = Field(pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
    """The MAC address it is for, e.g. 02:42:0a:00:09:03."""
    dst: str
    """The VTEP it (wrongly) points at, e.g. 10.99.0.9."""

    _dst = field_validator("dst")(_ip)


class FirewallFault(_Model):
    kind: Literal["firewall"]
    """firewall: an iptables rule added."""
    node: str
    """The host or container it is added in."""
    table: Literal["filter", "nat", "mangle", "raw"] = "filter"
    """filter, nat, mangle or raw."""
    chain: str
    """The chain, e.g. FORWARD."""
    rule: str  # iptables arguments after the chain, e.g. "-p tcp --dport 80 -j DROP"
    """The iptables arguments after the chain, e.g. \"-p tcp --dport 80 -j DROP\"."""


class SysctlFault(_Model):
    kind: Literal["sysctl"]
    """sysctl: a network sysctl set."""
    node: str
    """The host or container it is set in."""
    name: str = Field(pattern=r"^net\.[a-z0-9_.-]+$")
    """The sysctl, e.g. net.ipv4.ip_forward."""
    value: str
    """Its value, e.g. \"0\"."""


class ListenerFault(_Model):
    kind: Literal["listener"]
    """listener: a program that takes a port first."""
    node: str
    """The host or container it runs in."""
    port: int = Field(ge=1, le=65535)
    """The port it listens on, e.g. 8080."""
    protocol: Literal["tcp", "udp"] = "tcp"
    """tcp or udp."""


class ImpairmentFault(_Model):
    kind: Literal["impairment"]
    """impairment: delay and loss on a link."""
    node: str
    """The host or container whose link it is."""
    link: str
    """The interface, e.g. eth0."""
    delay_ms: int = Field(0, ge=0)
    """Added delay in milliseconds, e.g. 100."""
    loss_percent: float = Field(0, ge=0, le=100)
    """Packets dropped at random, in percent, e.g. 5."""


Fault = Annotated[MtuFault | RouteFault | FdbFault | FirewallFault | SysctlFault | ListenerFault
                  | ImpairmentFault, Field(discriminator="kind")]


class Topology(_Model):
    name: Name
    """The lab's name: it prefixes every namespace, e.g. demo."""
    description: str = ""
    """What the lab shows, for `netdiag lab examples`."""
    hosts: tuple[Host, ...] = (Host(name="host1"),)
    """The machines of the lab, each a namespace (default: one, host1)."""
    underlay: Underlay = Underlay()
    """The network between the hosts."""
    networks: tuple[NetworkSpec, ...] = ()
    """The container networks, made by netdiag's drivers."""
    containers: tuple[Container, ...] = ()
    """The containers, each a namespace on a host."""
    services: tuple[ServiceSpec, ...] = ()
    """Replicated services behind a VIP or DNS round robin."""
    faults: tuple[Fault, ...] = ()
    """What to break once the lab is up: mtu, route, fdb, firewall, sysctl, listener or
    impairment."""

    @model_validator(mode="after")
    def _references(self) -> Topology:
        """Cross-references: every name a topology uses must be defined, and only once. Every
        broken one is reported, not only the first."""
        problems: list[_Ref] = []
        for what, names in (("hosts", [h.name for h in self.hosts]),
                            ("networks", [n.name for n in self.networks]),
                            ("containers and services", [c.name for c in self.containers]
                             + [s.name for s in self.services])):
            problems += _twice(what, names)
        hosts = {h.name for h in self.hosts}
        networks = {n.name: n for n in self.networks}
        for i, net in enumerate(self.networks):
            for host in net.hosts:
                if host not in hosts:
                    problems.append(_Ref(f"networks.{i}.hosts", f"unknown host {host!r}"))
            if net.driver != "overlay" and len(net.hosts) > 1:
                problems.append(_Ref(f"networks.{i}.hosts",
                                     f"a {net.driver} network lives on one host"))
        for i, c in enumerate(self.containers):
            if c.host is not None and c.host not in hosts:
                problems.append(_Ref(f"containers.{i}.host", f"unknown host {c.host!r}"))
            for j, att in enumerate(c.networks):
                net = networks.get(att.network)
                if net is None:
                    problems.append(_Ref(f"containers.{i}.networks.{j}.network",
                                         f"unknown network {att.network!r}"))
                elif att.ip and net.subnet and ipaddress.ip_address(att.ip) not in \
                        ipaddress.ip_network(net.subnet):
                    problems.append(_Ref(f"containers.{i}.networks.{j}.ip",
                                         f"{att.ip} is outside {net.name}'s subnet "
                                         f"{net.subnet}"))
        for i, s in enumerate(self.services):
            if s.network not in networks:
                problems.append(_Ref(f"services.{i}.network",
                                     f"unknown network {s.network!r}"))
                continue
            for host in s.hosts:
                if host not in self.hosts_of(networks[s.network]):
                    problems.append(_Ref(f"services.{i}.hosts",
                                         f"host {host!r} does not have network {s.network!r}"))
        nodes = hosts | {c.name for c in self.containers} | {
            f"{s.name}-{i}" for s in self.services for i in range(1, s.replicas + 1)}
        for i, fault in enumerate(self.faults):
            if fault.node not in nodes:
                problems.append(_Ref(f"faults.{i}.node",
                                     f"unknown host or container {fault.node!r}"))
        if problems:
            raise _Refs(problems)
        return self

    def host_of(self, container: Container) -> str:
        return container.host or self.hosts[0].name

    def hosts_of(self, network: NetworkSpec) -> tuple[str, ...]:
        if network.hosts:
            return network.hosts
        if network.driver == "overlay":
            return tuple(h.name for h in self.hosts)
        return (self.hosts[0].name,)


class _Ref(ValueError):
    """A cross-reference error that knows its key path (pydantic only knows the model's)."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


class _Refs(ValueError):
    """Every cross-reference error of a topology, raised together."""

    def __init__(self, problems: list[_Ref]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _twice(what: str, names: list[str]) -> list[_Ref]:
    seen, found = set(), []
    for name in names:
        if name in seen:
            found.append(_Ref(what.split()[0], f"{name!r} is defined twice"))
        seen.add(name)
    return found


# --- loading --------------------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False):
    mapping = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        mapping[key] = loader.construct_object(value_node, deep=deep)
        loader.lines.setdefault(id(mapping), {})[key] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_of(data: Any, path: tuple, lines: dict[int, dict]) -> int | None:
    """The line of the deepest key along `path` that the YAML had."""
    line = None
    node = data
    for part in path:
        if isinstance(node, dict) and part in node:
            line = lines.get(id(node), {}).get(part, line)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    return line


def parse(text: str, source: str = "topology") -> Topology:
    """YAML text → Topology, or one TopologyError naming the key path and line."""
    loader = _LineLoader(text)
    loader.lines = {}
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise TopologyError(f"{source}{yaml_position(exc)}: not valid YAML: "
                            f"{yaml_problem(exc)}") from None
    finally:
        loader.dispose()
    # A file that is not a topology (a password file given by mistake) is named, never
    # quoted: its keys would be its lines.
    if not isinstance(data, dict) or not data.keys() & Topology.model_fields.keys():
        raise TopologyError(f"{source}: not a topology: expected a mapping with at least a "
                            "'name' key")
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        problems = sorted(_problems(exc, data, loader.lines))
        lines = [f"{source}{f':{line}' if line else ''}: {key}: {message}"
                 for line, key, message in problems]
        if len(lines) == 1:
            raise TopologyError(lines[0]) from None
        raise TopologyError(f"{source}: {len(lines)} errors:\n  " + "\n  ".join(lines)) \
            from None


def _problems(exc: ValidationError, data: dict, lines: dict) -> list[tuple[int, str, str]]:
    """(line, key path, message) of every error pydantic found — each field's, or every
    cross-reference's."""
    found = []
    for error in exc.errors():
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _Refs):
            for problem in cause.problems:
                path = tuple(int(p) if p.isdigit() else p for p in problem.path.split("."))
                found.append((path, str(problem)))
        else:
            found.append((_without_union_tag(error["loc"]),
                          error["msg"].removeprefix("Value error, ")))
    return [(_line_of(data, path, lines) or 0, _key_path(path), message)
            for path, message in found]


def _key_path(path: tuple) -> str:
    """The dotted path of a fault; a key that does not look like a name is not echoed."""
    return ".".join(str(p) if is_plain_key(p) else "<key>" for p in path) or "(top level)"


def _without_union_tag(loc: tuple) -> tuple:
    """pydantic puts the discriminator's value in the path of a fault (faults.0.mtu.link)."""
    if len(loc) >= 3 and loc[0] == "faults" and isinstance(loc[1], int):
        return loc[:2] + loc[3:]
    return tuple(loc)


def load(path: str | Path) -> Topology:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise TopologyError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError(f"{path}: cannot read: {exc}") from None
    return parse(text, str(path))


def json_schema() -> dict:
    return Topology.model_json_schema()
