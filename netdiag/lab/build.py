"""Build a lab from its plan, and tear it down again.

`up` runs the plan's steps through the bundled drivers (netdiag.drivers, via their controller),
writing every namespace, process and file into the lab's journal before making it; if any step
fails, everything built so far is torn down and the error is raised. `down` works from the
journal alone, so it also cleans up after a crash or `kill -9` in the middle of `up`, and is
idempotent. Only namespaces the lab created are touched; the root namespace never is.

One host's part of a lab (`up(..., host=NAME, etcd=URL)`) is built the same way from that
host's plan, on the drivers' store in etcd that the lab's other hosts share; its journal is
LAB@HOST. The underlay switch is made by the first host under a lock of this machine and
removed by the last one down; `down` of a host part forgets its endpoints in the store and
deletes the lab networks no host uses any more.
"""

from __future__ import annotations

import ipaddress
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from netdiag import netns
from netdiag.drivers.bridge import addresses
from netdiag.drivers.common import device
from netdiag.drivers.controller import Controller
from netdiag.drivers.overlay import dataplane
from netdiag.errors import (
    Conflict,
    DriverError,
    KernelFeatureMissing,
    NetdiagError,
    NotFound,
    TopologyError,
)
from netdiag.findings import repair as steps
from netdiag.lab.teardown import down, underlay_lock
from netdiag.netns import LAB_DIR
from netdiag.repair.executor import inject
from netdiag.rtnl_write import Rtnl, VethPeer
from netdiag.store import open_store
from netdiag.store.records import PortBinding
from netdiag.topology import journal as journals
from netdiag.topology import plan as plans
from netdiag.topology.schema import (
    FdbFault,
    FirewallFault,
    ImpairmentFault,
    ListenerFault,
    MtuFault,
    RouteFault,
    SysctlFault,
    Topology,
)

RESOLVER_READY_TIMEOUT = 10.0
AGENT_READY_TIMEOUT = 10.0
NETWORK_WAIT = 120.0  # seconds: another host's `lab up` makes the network meanwhile
BuildProgress = Callable[[int, int, str], None]
# Each driver's key for Docker's second (IPv6) IPAM config of a dual-stack network.
SUBNET6_OPTIONS = {"bridge": "netdiag.bridge.ipv6_subnet", "macvlan": "netdiag.macvlan.ipv6_subnet",
                   "overlay": "netdiag.overlay.ipv6_subnet"}


def _options(network) -> dict[str, str]:
    """The schema's typed network fields → the drivers' Docker-style options."""
    options: dict[str, str] = {}
    if network.mtu:
        options["com.docker.network.driver.mtu"] = str(network.mtu)
    if network.driver == "bridge":
        options["com.docker.network.bridge.enable_icc"] = str(network.icc).lower()
        options["com.docker.network.bridge.enable_ip_masquerade"] = str(network.masquerade).lower()
    if network.subnet6:
        options[SUBNET6_OPTIONS[network.driver]] = network.subnet6
    if network.driver == "macvlan":
        options["macvlan_mode"] = network.mode
        if network.parent:
            options["parent"] = network.parent
    if network.driver == "overlay" and network.encrypted:
        options["encrypted"] = "true"
    return options


@dataclass
class Builder:
    """Carries out plan steps for one lab; owns its controller and journal while building."""

    topology: Topology
    journal: journals.Journal
    controller: Controller
    network_wait: float = NETWORK_WAIT
    starting: list[tuple[str, int, str]] = field(default_factory=list)  # node, port, protocol

    def ns_path(self, node: str) -> str:
        return str(netns.NAMED_DIR / self.journal.nodes[node])

    # --- steps ------------------------------------------------------------------------------

    def create_namespace(self, step: plans.CreateNamespace) -> None:
        netns.create_named(step.netns)  # `up` wrote it into the journal before
        with netns.entered(self.ns_path(step.node)), Rtnl() as rt:  # a plain socket: no pyroute2
            device.loopback_up(rt)

    def create_underlay(self, step: plans.CreateUnderlay) -> None:
        """The switch is also the hosts' default gateway: a router at the lab's edge. Shared
        by the hosts' parts of a lab, it is made by the first of them (the lock keeps the
        others from using a half-made one)."""
        if not step.shared:
            self._make_switch(step)
            return
        with underlay_lock():
            if (netns.NAMED_DIR / step.netns).exists():
                return
            netns.create_named(step.netns)
            with netns.entered(self.ns_path(plans.UNDERLAY_NODE)), Rtnl() as rt:
                device.loopback_up(rt)
            self._make_switch(step)

    def _make_switch(self, step: plans.CreateUnderlay) -> None:
        address, prefixlen = step.address.split("/")
        network = ipaddress.ip_interface(step.address).network
        with netns.entered(self.ns_path(plans.UNDERLAY_NODE)), Rtnl() as rt:
            rt.add_link("br0", "bridge", mtu=step.mtu)
            index, _ = rt.link("br0")
            rt.add_address(index, address, int(prefixlen), str(network.broadcast_address))
            if step.address6:
                address6, prefixlen6 = step.address6.split("/")
                addresses.add_address(rt, index, address6, int(prefixlen6))
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1")  # this thread's namespace

    def connect_host(self, step: plans.ConnectHost) -> None:
        switch = self.ns_path(plans.UNDERLAY_NODE)
        port = step.host[:15]
        address, prefixlen = step.address.split("/")
        network = ipaddress.ip_interface(step.address).network
        switch_fd = os.open(switch, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with netns.entered(self.ns_path(step.host)), Rtnl() as rt:
                rt.add_link("eth0", "veth", mtu=step.mtu, peer=VethPeer(
                    port, self.topology.underlay.mtu, "", switch_fd))
                index, _ = rt.link("eth0")
                rt.add_address(index, address, int(prefixlen), str(network.broadcast_address))
                rt.add_default_route(index, step.gateway)
                if step.address6:
                    address6, prefixlen6 = step.address6.split("/")
                    addresses.add_address(rt, index, address6, int(prefixlen6))
                    addresses.add_default_route(rt, index, step.gateway6)
        finally:
            os.close(switch_fd)
        with netns.entered(switch), Rtnl() as rt:
            rt.set_master(rt.link(port)[0], rt.link("br0")[0])

    def create_network(self, step: plans.CreateNetwork) -> None:
        net = step.network
        made = self.controller.create_network(
            net.name, self.ns_path(step.hosts[0]), net.driver, subnet=net.subnet or "",
            gateway=net.gateway or "", internal=net.internal, options=_options(net),
            labels={"netdiag.lab": self.topology.name})
        # Its id names the namespaces the overlay driver makes for it (`<host>-<n>-<id>`):
        # discovery labels them after the network.
        self.journal.networks[net.name] = made.id
        self.journal.save()

    def await_network(self, step: plans.AwaitNetwork) -> None:
        """Wait for the network another host's part of the lab makes."""
        deadline = time.monotonic() + self.network_wait
        while True:
            try:
                made = self.controller.network(step.network.name)
                break
            except NotFound:
                if time.monotonic() > deadline:
                    raise DriverError(
                        f"network {step.network.name} did not appear in {self.journal.store} "
                        f"within {self.network_wait:g} s: run `netdiag lab up ... --host "
                        f"{step.maker}` (it makes the network)") from None
                time.sleep(0.2)
        self.journal.networks[step.network.name] = made.id
        self.journal.save()

    def start_agent(self, step: plans.StartAgent) -> None:
        """The host's overlay agent, a process of the lab: it speaks for the host on the
        shared store (its endpoints live on the agent's lease) and programs the host with
        the other hosts' endpoints."""
        from netdiag.drivers.overlay.etcd_plane import agent_alive

        host = self.ns_path(step.host)
        log = open(LAB_DIR / f"{self.journal.name}.agent.log", "ab")
        self.journal.add_file(log.name)
        process = subprocess.Popen([sys.executable, "-m", "netdiag", "net", "--store",
                                    self.journal.store, "agent", "--host-ns", host],
                                   env=_store_environment(),
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.journal.add_process(journals.Process(process.pid,
                                                  journals.start_time(process.pid), ""))
        deadline = time.monotonic() + AGENT_READY_TIMEOUT
        while not agent_alive(self.controller.store, host):
            if process.poll() is not None or time.monotonic() > deadline:
                raise DriverError(f"the overlay agent of {step.host} did not start (see "
                                  f"{log.name})")
            time.sleep(0.05)

    def connect(self, step: plans.Connect) -> None:
        ports = [PortBinding(container_port=p.container_port, proto=p.protocol,
                             host_port=p.host_port) for p in step.publish]
        self.controller.connect(step.network, self.ns_path(step.container), step.container,
                                host=self.ns_path(step.host), address=step.ip or "",
                                ports=ports, aliases=step.aliases)

    def start_resolver(self, step: plans.StartResolver) -> None:
        argv = [sys.executable, "-m", "netdiag.drivers.dns", "--store", self.journal.store,
                "--no-forward", "--ready"]  # a lab never sends queries out of the machine
        if step.host:
            argv += ["--host-ns", self.ns_path(step.host)]
        log = open(LAB_DIR / f"{self.journal.name}.resolver.log", "ab")
        self.journal.add_file(log.name)
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env=_store_environment())
        log.close()
        self.journal.add_process(journals.Process(process.pid,
                                                  journals.start_time(process.pid), ""))
        ready, _, _ = select.select([process.stdout], [], [], RESOLVER_READY_TIMEOUT)
        line = process.stdout.readline().decode().strip() if ready else ""
        process.stdout.close()
        if line != "ready":
            raise DriverError(f"the lab's DNS resolver did not start (see {log.name})")

    def create_service(self, step: plans.CreateService) -> None:
        network = self.controller.network(step.service.network, self.ns_path(
            self.topology.hosts_of(self._network(step.service.network))[0]))
        endpoints = {e.name: e for e in self.controller.endpoints(network)}
        ports = [PortBinding(container_port=p.container_port, proto=p.protocol,
                             host_port=p.host_port) for p in step.service.publish]
        command = step.service.command
        if command and all(p.container_port != command.port for p in ports):
            ports.append(PortBinding(container_port=command.port))  # on the VIP, not published
        self.controller.create_service(step.service.name, network,
                                       [endpoints[task].id for task in step.tasks],
                                       endpoint_mode=step.service.endpoint_mode, ports=ports)

    def _network(self, name: str):
        return next(n for n in self.topology.networks if n.name == name)

    def run(self, step: plans.Run) -> None:
        command = step.command
        args = [command.app, "--port", str(command.port), "--name", step.container]
        if command.backend:
            args += ["--backend", command.backend]
        self.start_process(step.container, [sys.executable, "-m", "netdiag.lab.apps", *args])
        if command.app != "sleep":
            self.starting.append((step.container, command.port,
                                  "udp" if command.app == "udp-echo" else "tcp"))

    def wait_until_serving(self) -> None:
        """Programs start in parallel; the lab is up once every one of them listens."""
        for node, port, protocol in self.starting:
            _wait_for_listener(self.ns_path(node), port, protocol)

    def start_process(self, node: str, argv: list[str]) -> None:
        """Start a long-running program in a node, with the node's resolv.conf in place
        (`ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf)."""
        ns = self.journal.nodes[node]
        log = open(LAB_DIR / f"{self.journal.name}.{node}.log", "ab")
        self.journal.add_file(log.name)
        process = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        log.close()
        self.journal.add_process(journals.Process(process.pid, journals.start_time(process.pid),
                                                  ns))

    def inject_fault(self, step: plans.InjectFault) -> None:
        fault = step.fault
        if isinstance(fault, ListenerFault):
            app = "echo" if fault.protocol == "tcp" else "udp-echo"
            self.start_process(fault.node, [sys.executable, "-m", "netdiag.lab.apps", app,
                                            "--port", str(fault.port)])
            _wait_for_listener(self.ns_path(fault.node), fault.port, fault.protocol)
            return
        if isinstance(fault, ImpairmentFault):
            raise KernelFeatureMissing("kernel lacks sch_netem: link impairment faults cannot "
                                       "be injected on this machine")
        ns_id, path, step_ = self._fault_step(fault)
        [result] = inject([step_], {ns_id: path})
        if not result.applied:
            raise DriverError(f"fault {fault.kind} on {fault.node}: {result.message}")

    def _fault_step(self, fault) -> tuple[int, str, steps.RepairStep]:
        path = self.ns_path(fault.node)
        ns = netns.inode_of(path)
        if isinstance(fault, MtuFault):
            return ns, path, steps.SetMtu(ns, fault.link, fault.mtu)
        if isinstance(fault, RouteFault):
            return ns, path, steps.AddRoute(ns, fault.dst, dev=fault.dev or "",
                                            gateway=fault.via or "")
        if isinstance(fault, FirewallFault):
            return ns, path, steps.AddIptablesRule(ns, fault.table, fault.chain,
                                                   tuple(shlex.split(fault.rule)))
        if isinstance(fault, SysctlFault):
            return ns, path, steps.SetSysctl(ns, fault.name, fault.value)
        if isinstance(fault, FdbFault):
            network = self.controller.network(fault.network, path)
            sandbox = dataplane.sandbox_path(path, network)
            inode = netns.inode_of(sandbox)
            return inode, sandbox, steps.AddFdbEntry(inode, dataplane.VXLAN, fault.mac, fault.dst)
        raise TopologyError(f"fault kind {fault.kind} cannot be injected")

    def apply(self, step: plans.PlanStep) -> None:
        handlers = {
            plans.CreateNamespace: self.create_namespace,
            plans.CreateUnderlay: self.create_underlay,
            plans.ConnectHost: self.connect_host, plans.CreateNetwork: self.create_network,
            plans.AwaitNetwork: self.await_network, plans.StartAgent: self.start_agent,
            plans.Connect: self.connect, plans.StartResolver: self.start_resolver,
            plans.CreateService: self.create_service, plans.Run: self.run,
            plans.InjectFault: self.inject_fault,
        }
        handlers[type(step)](step)


def _wait_for_listener(path: str, port: int, protocol: str, timeout: float = 15.0) -> None:
    """Wait until something listens on `port` in the namespace (a started program is ready):
    an IPv4 socket, or an IPv6 one (the lab's programs listen on `::` for both families)."""
    tables = [Path(f"/proc/thread-self/net/{protocol}{six}") for six in ("", "6")]
    bound_states = ("0A", "07")  # tcp LISTEN, udp unconnected
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with netns.entered(path):
            rows = [line.split() for table in tables if table.exists()
                    for line in table.read_text().splitlines()[1:]]
        if any(row[1].endswith(f":{port:04X}") and row[3] in bound_states for row in rows):
            return
        time.sleep(0.05)
    raise DriverError(f"nothing listens on {protocol} port {port} after {timeout:g} s")


# --- up and down ------------------------------------------------------------------------------


def _store_environment() -> dict[str, str]:
    """The environment of the lab's own netdiag processes (its agent, its resolver): this
    one's, with the etcd access the command line chose (`--etcd-cacert`...) in the variables
    they read it from."""
    from netdiag.etcd import chosen_access

    return {**os.environ, **chosen_access().environment()}


def up(topology: Topology, source: str = "", progress: BuildProgress | None = None,
       replace: bool = False, host: str = "", etcd: str = "",
       network_wait: float = NETWORK_WAIT) -> journals.Journal:
    """Build the lab — or, given `host` and `etcd`, that host's part of it on the store the
    lab's hosts share; on any failure or Ctrl-C tear down what was built and raise.

    With `replace`, a lab (or host part) of that name, up or half-built, is removed first."""
    name = journals.host_part(topology.name, host) if host else topology.name
    all_steps = plans.plan(topology, host)  # a bad --host fails before anything is touched
    if name in journals.names():
        if not replace or _condition(name) == "building":
            _refuse_existing(name)
        down(name)
    _refuse_taken_names(all_steps, name)
    # Every namespace the plan makes is written down at once, before the first one exists
    # (one write instead of one per namespace); `down` skips the ones never made.
    made = [step for step in all_steps if isinstance(step, plans.CreateNamespace)]
    nodes = {step.node: step.netns for step in made}
    if host:  # the shared switch: named for exec and labels, removed by the last host only
        nodes[plans.UNDERLAY_NODE] = plans.namespace_name(topology.name, plans.UNDERLAY_NODE)
    journal = journals.Journal(name=name, topology=source,
                               definition=topology.model_dump_json(),
                               store=etcd if host else str(LAB_DIR / f"{name}.db"),
                               nodes=nodes, namespaces=[step.netns for step in made],
                               builder=journals.Process(os.getpid(),
                                                        journals.start_time(os.getpid()), ""),
                               lab=topology.name if host else "", host=host)
    store = None
    try:
        journal.save()
        store = open_store(journal.store)
        builder = Builder(topology, journal, Controller(store), network_wait)
        # Runs in one worker thread: netns.entered moves the thread it runs in, and the
        # caller's thread (a CLI, a test) stays where it is.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="netdiag-lab") as worker:
            # Its thread first: a Ctrl-C while `submit` starts it would leave a thread the
            # `with` does not wait for, building the first step during the rollback.
            worker.submit(int).result()
            for i, step in enumerate(all_steps, 1):
                if progress:
                    progress(i, len(all_steps), step.describe())
                worker.submit(builder.apply, step).result()
            worker.submit(builder.wait_until_serving).result()
        store.close()
        journal.state = "up"
        journal.builder = None
        journal.save()
        return journal
    except BaseException:
        # Everything a Ctrl-C may interrupt happens above, inside the try: a step (the worker
        # finishes it before the `with` lets go), the store, the journal's last save.
        with _no_interrupts():  # a second Ctrl-C must not leave the rollback half done
            journal.state = "failed"
            journal.save()
            if store is not None:
                store.close()
            down(name)
        raise


def undo(name: str) -> None:
    """Remove a lab this process has just built (Ctrl-C came right after `up` returned),
    also when another Ctrl-C comes meanwhile."""
    with _no_interrupts():
        down(name)


def _condition(name: str) -> str:
    try:
        return journals.load(name).condition
    except NetdiagError:
        return "half-built"  # a damaged journal


def _refuse_existing(name: str) -> None:
    condition = _condition(name)
    if condition == "up":
        raise Conflict(f"lab {name} is already up (`netdiag lab down {name}` removes it, "
                       f"`netdiag lab up {name} --replace` rebuilds it)")
    if condition == "building":
        raise Conflict(f"lab {name} is being built by another `netdiag lab up`")
    raise Conflict(f"lab {name} is half-built (its `lab up` was killed): remove it with "
                   f"`netdiag lab down {name}`, or rebuild it with `netdiag lab up {name} "
                   "--replace`")


class _no_interrupts:
    """Ignore SIGINT inside the block (main thread only: elsewhere signals are not ours)."""

    def __enter__(self):
        import threading

        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _refuse_taken_names(steps: tuple[plans.PlanStep, ...], name: str) -> None:
    for step in steps:
        if isinstance(step, plans.CreateNamespace) and (netns.NAMED_DIR / step.netns).exists():
            raise Conflict(f"namespace {step.netns} exists already: lab {name} would collide "
                           "with it")
