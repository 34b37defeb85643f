"""Benchmark: `lab up` / `lab down` of big labs, beside their baselines from the same run.

Run as root: `.venv/bin/python bench/lab.py [--containers 100] [--rounds 2] [--no-docker]`.

Two topologies, each built and removed `--rounds` times:

* **bridge**: one host, one bridge network, N containers (no programs in them). Timed with the
  Python API (netdiag.lab.build.up/down on a generated Topology) and with the CLI
  (`netdiag lab up FILE`, `netdiag lab down NAME`, wall time of the processes). Baselines: a
  real Docker engine in a namespace of its own (tests/docker_engine.py) running N
  `docker run -d --network NET IMAGE sleep` on a user-defined bridge network, one after the
  other, then `docker rm -f` of all of them in one command; and a shell script of `ip` commands
  doing the same wiring (namespaces, loopback, bridge, veths, addresses, default routes; one
  `ip` process per command), removed with `ip netns del`.
* **overlay**: two hosts joined by an underlay switch, one overlay network, N/2 containers on
  each host. Baseline: a shell script of `ip`/`bridge` commands doing Docker's overlay wiring
  (per host a namespace with br0 and a vxlan device made in the host and moved there, a
  docker_gwbridge, per container an overlay veth and a gateway veth, and on the other host a
  permanent FDB and neighbour entry for every remote container). With `--swarm`, also a real
  two-node Docker Swarm (tests/docker_engine.py's Swarm, namespaces `ndb-lab-dk-...`): an
  attachable overlay network and N/2 `docker run -d --network OV` on each node.

What each side does that the other does not: the lab also writes its journal and driver store,
installs Docker's firewall rules (DOCKER chains, NAT) in the host, and starts the embedded DNS
resolver (NAT rules + resolv.conf in every container); the shell scripts do neither. Docker also
starts a process per container and sets up DNS and firewall rules.

Every round is checked before it counts (the last container pings the first; across hosts for
the overlay). Everything is made in namespaces named `ndb-lab-<pid>...` (labs named
`ndb-lab-<pid><x><round>`), the Docker engine in `ndb-lab-dk-<random>`; all of it is removed
afterwards, also on failure or Ctrl-C. The root namespace is never touched.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netdiag import netns  # noqa: E402
from netdiag.lab import build, teardown  # noqa: E402
from netdiag.topology import schema  # noqa: E402

NETDIAG = ROOT / ".venv" / "bin" / "netdiag"
TAG = f"{os.getpid() % 100000}"
PREFIX = f"ndb-lab-{TAG}"  # every namespace of this run starts with it
BRIDGE_SUBNET, BRIDGE_GW = "172.30.0.0/16", "172.30.0.1"
OVERLAY_SUBNET, OVERLAY_GW = "10.40.0.0/16", "10.40.0.1"
GW_SUBNET_GW = "172.18.0.1"
UNDERLAY = "10.99.0.{}/24"
TARGET_UP_S = 3.0
TARGET_SPEEDUP = 10.0


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def ours(name: str) -> bool:
    return name.startswith(PREFIX)


def remove_namespaces(names: list[str]) -> None:
    """Remove the named namespaces of this run (and only those), each by name."""
    for name in names:
        if ours(name) and (netns.NAMED_DIR / name).exists():
            netns.delete_named(name)


def host_ip(i: int, base: int = 2) -> str:
    """The i-th address of a /16 counted from .0.<base>."""
    n = i + base
    return f"{n // 256}.{n % 256}"


def first_ip(ns: str, dev: str = "eth0") -> str:
    out = subprocess.run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", dev],
                         capture_output=True, text=True, check=True).stdout
    return re.search(r"inet (\S+)/", out)[1]


def pings(ns: str, ip: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W2", ip],
                          capture_output=True).returncode == 0


def must_ping(what: str, ns: str, ip: str) -> None:
    if not pings(ns, ip):
        raise SystemExit(f"{what}: {ns} cannot reach {ip}")


def run_script(text: str) -> float:
    began = time.perf_counter()
    done = subprocess.run(["bash", "-e", "-c", text], capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"shell baseline failed: {done.stderr.strip()[-500:]}")
    return elapsed


# --- topologies ---------------------------------------------------------------------------------


def bridge_topology(name: str, count: int) -> dict:
    return {"name": name,
            "networks": [{"name": "net", "driver": "bridge", "subnet": BRIDGE_SUBNET}],
            "containers": [{"name": f"c{i}", "networks": ["net"]} for i in range(count)]}


def overlay_topology(name: str, count: int) -> dict:
    half = count // 2
    return {"name": name,
            "hosts": [{"name": "h1"}, {"name": "h2"}],
            "networks": [{"name": "ov", "driver": "overlay", "subnet": OVERLAY_SUBNET}],
            "containers": [{"name": f"c{i}", "host": "h1" if i < half else "h2",
                            "networks": ["ov"]} for i in range(count)]}


def to_yaml(data: dict) -> str:
    import yaml
    return yaml.safe_dump(data, sort_keys=False)


# --- netdiag ------------------------------------------------------------------------------------


def lab_round_api(data: dict, check) -> tuple[float, float]:
    """(up seconds, down seconds) of build.up/down; checked in between."""
    topology = schema.Topology.model_validate(data)
    name = topology.name
    try:
        began = time.perf_counter()
        build.up(topology)
        up = time.perf_counter() - began
        check(name)
    finally:
        began = time.perf_counter()
        teardown.down(name)
        down = time.perf_counter() - began
    left = [p.name for p in netns.NAMED_DIR.iterdir() if p.name.startswith(f"{name}-")]
    if left:
        raise SystemExit(f"lab down left namespaces behind: {left[:5]}")
    return up, down


def lab_round_cli(data: dict, folder: str, check) -> tuple[float, float]:
    name = data["name"]
    path = Path(folder) / f"{name}.yaml"
    path.write_text(to_yaml(data))
    try:
        began = time.perf_counter()
        done = subprocess.run([str(NETDIAG), "lab", "up", str(path)], capture_output=True,
                              text=True)
        up = time.perf_counter() - began
        if done.returncode != 0:
            raise SystemExit(f"netdiag lab up failed: {done.stderr.strip()[-500:]}")
        check(name)
    finally:
        began = time.perf_counter()
        subprocess.run([str(NETDIAG), "lab", "down", name], capture_output=True)
        down = time.perf_counter() - began
        teardown.down(name)  # in case the CLI did not (idempotent)
    return up, down


def check_bridge_lab(count: int):
    def check(name: str) -> None:
        must_ping("bridge lab", f"{name}-c{count - 1}", first_ip(f"{name}-c0"))
    return check


def check_overlay_lab(count: int):
    def check(name: str) -> None:
        must_ping("overlay lab", f"{name}-c{count - 1}", first_ip(f"{name}-c0"))
    return check


# --- shell baselines ----------------------------------------------------------------------------


def shell_bridge(tag: str, count: int) -> tuple[float, float]:
    host = f"{PREFIX}{tag}h"
    names = [f"{PREFIX}{tag}c{i}" for i in range(count)]
    lines = [f"ip netns add {host}", f"ip -n {host} link set lo up",
             f"ip -n {host} link add br0 type bridge",
             f"ip -n {host} addr add {BRIDGE_GW}/16 dev br0",
             f"ip -n {host} link set br0 up"]
    for i, ns in enumerate(names):
        lines += [f"ip netns add {ns}",
                  f"ip -n {ns} link set lo up",
                  f"ip -n {host} link add vh{i} mtu 1500 type veth peer name eth0 mtu 1500 "
                  f"netns {ns}",
                  f"ip -n {host} link set vh{i} master br0 up",
                  f"ip -n {ns} addr add 172.30.{host_ip(i)}/16 dev eth0",
                  f"ip -n {ns} link set eth0 up",
                  f"ip -n {ns} route add default via {BRIDGE_GW}"]
    made = [host] + names
    try:
        up = run_script("\n".join(lines))
        must_ping("shell bridge", names[-1], f"172.30.{host_ip(0)}")
        down = run_script("\n".join(f"ip netns del {ns}" for ns in reversed(made)))
    finally:
        remove_namespaces(made)
    return up, down


def mac(ip: str) -> str:
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def shell_overlay(tag: str, count: int) -> tuple[float, float]:
    switch = f"{PREFIX}{tag}ul"
    hosts = [f"{PREFIX}{tag}h1", f"{PREFIX}{tag}h2"]
    overlays = [f"{h}-ov" for h in hosts]
    names = [f"{PREFIX}{tag}c{i}" for i in range(count)]
    half = count // 2
    lines = [f"ip netns add {switch}", f"ip -n {switch} link set lo up",
             f"ip -n {switch} link add br0 type bridge",
             f"ip -n {switch} addr add {UNDERLAY.format(254)} dev br0",
             f"ip -n {switch} link set br0 up"]
    for k, (host, ov) in enumerate(zip(hosts, overlays), 1):
        lines += [f"ip netns add {host}", f"ip -n {host} link set lo up",
                  f"ip -n {host} link add eth0 type veth peer name p{k} netns {switch}",
                  f"ip -n {switch} link set p{k} master br0 up",
                  f"ip -n {host} addr add {UNDERLAY.format(k)} dev eth0",
                  f"ip -n {host} link set eth0 up",
                  f"ip -n {host} route add default via {UNDERLAY.format(254)[:-3]}",
                  f"ip -n {host} link add docker_gwbridge type bridge",
                  f"ip -n {host} addr add {GW_SUBNET_GW}/16 dev docker_gwbridge",
                  f"ip -n {host} link set docker_gwbridge up",
                  f"ip netns add {ov}", f"ip -n {ov} link set lo up",
                  f"ip -n {ov} link add br0 mtu 1450 type bridge",
                  f"ip -n {ov} addr add {OVERLAY_GW}/16 dev br0",
                  f"ip -n {ov} link set br0 up",
                  f"ip -n {host} link add vxlan0 mtu 1450 type vxlan id 4096 dstport 4789 "
                  "proxy learning l2miss l3miss",
                  f"ip -n {host} link set vxlan0 netns {ov}",
                  f"ip -n {ov} link set vxlan0 master br0 up"]
    for i, ns in enumerate(names):
        k = 0 if i < half else 1
        host, ov, other = hosts[k], overlays[k], overlays[1 - k]
        ip = f"10.40.{host_ip(i)}"
        lines += [f"ip netns add {ns}",
                  f"ip -n {ns} link set lo up",
                  f"ip -n {ov} link add v{i} mtu 1450 type veth peer name eth0 mtu 1450 netns {ns}",
                  f"ip -n {ov} link set v{i} master br0 up",
                  f"ip -n {ns} link set eth0 address {mac(ip)}",
                  f"ip -n {ns} addr add {ip}/16 dev eth0",
                  f"ip -n {ns} link set eth0 up",
                  f"ip -n {host} link add g{i} type veth peer name eth1 netns {ns}",
                  f"ip -n {host} link set g{i} master docker_gwbridge up",
                  f"ip -n {ns} addr add 172.18.{host_ip(i)}/16 dev eth1",
                  f"ip -n {ns} link set eth1 up",
                  f"ip -n {ns} route add default via {GW_SUBNET_GW}",
                  f"bridge -n {other} fdb append {mac(ip)} dev vxlan0 "
                  f"dst {UNDERLAY.format(k + 1)[:-3]} self permanent",
                  f"ip -n {other} neigh add {ip} lladdr {mac(ip)} dev vxlan0 nud permanent"]
    made = [switch] + hosts + overlays + names
    try:
        up = run_script("\n".join(lines))
        must_ping("shell overlay", names[-1], f"10.40.{host_ip(0)}")
        down = run_script("\n".join(f"ip netns del {ns}" for ns in reversed(made)))
    finally:
        remove_namespaces(made)
    return up, down


# --- Docker -------------------------------------------------------------------------------------


class Docker:
    """A real Docker engine in a namespace of this run (`ndb-lab-dk-<random>`)."""

    def __init__(self):
        from tests.docker_engine import DockerEngine, build_busybox_image, unavailable_reason
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self.engine = DockerEngine("bench")
        self.engine.netns = f"ndb-lab-dk-{self.engine.tag}"  # our prefix, not the tests' one
        self._build_image = build_busybox_image
        self.image = ""
        self.start_seconds = 0.0

    def start(self) -> None:
        began = time.perf_counter()
        self.engine.start()
        self.image = self._build_image(self.engine)
        self.start_seconds = time.perf_counter() - began

    def stop(self) -> None:
        self.engine.stop()

    def bridge_round(self, tag: str, count: int, driver: str = "",
                     subnet: str = BRIDGE_SUBNET) -> tuple[float, float]:
        """(seconds for N sequential `docker run -d --network`, seconds for `docker rm -f`
        of all N in one command); the network is made before and removed after, untimed.
        `driver`: a network and IPAM plugin's name (netdiag's), instead of Docker's bridge.
        Docker 20.10 sometimes miscounts a network's endpoints when `docker rm -f` removes
        many containers at once (measured: 1 in 6 rounds of 100, on its own bridge too;
        moby#42119) and then refuses to remove the network: rounds that follow each other
        take a `subnet` each, and a network left so is said, not fatal."""
        net = f"ndbnet{tag}"
        names = [f"ndb{tag}c{i}" for i in range(count)]
        plugin = ["-d", driver, "--ipam-driver", driver] if driver else []
        self.engine.docker("network", "create", *plugin, "--subnet", subnet, net)
        try:
            began = time.perf_counter()
            for name in names:
                self.engine.docker("run", "-d", "--network", net, "--name", name, self.image,
                                   "sleep", "3600")
            up = time.perf_counter() - began
            first = self.engine.container_ip(names[0], net)
            last = self.engine.docker("exec", names[-1], "ping", "-c1", "-W2", first, check=False)
            if "1 packets received" not in last:
                raise SystemExit(f"docker round: {names[-1]} cannot reach {first}")
            began = time.perf_counter()
            self.engine.docker("rm", "-f", *names, timeout=600)
            down = time.perf_counter() - began
        finally:
            left = self.engine.docker("ps", "-aq", check=False).split()
            if left:
                self.engine.docker("rm", "-f", *left, check=False, timeout=600)
            from tests.docker_engine import DOCKER_CLI, run

            done = run([DOCKER_CLI, "-H", self.engine.host, "network", "rm", net], check=False)
            if done.returncode:
                print(f"docker network rm {net}: {done.stderr.decode().strip()} (Docker's "
                      "endpoint count; the engine is removed at the end)", file=sys.stderr)
        return up, down


def make_swarm():
    """tests/docker_engine.py's two-node Swarm, with namespaces of this run's prefix."""
    from tests import docker_engine as de

    class BenchSwarm(de.Swarm):
        def __init__(self):
            super().__init__()
            self.switch = f"ndb-lab-dk-{self.tag}-sw"

        def _add_node(self, index: int) -> None:  # as de.Swarm's, with our namespace name
            engine = de.DockerEngine(f"n{index + 1}")
            engine.netns = f"ndb-lab-dk-{engine.tag}-n{index + 1}"
            self.nodes.append(engine)
            engine.create_netns()
            name, port = engine.netns, f"p{index + 1}"
            de.run(["ip", "-n", self.switch, "link", "add", port, "type", "veth", "peer",
                    "name", "eth0", "netns", name])
            de.run(["ip", "-n", self.switch, "link", "set", port, "master", "br0", "up"])
            de.run(["ip", "-n", name, "addr", "add", self.UNDERLAY.format(index + 1), "dev",
                    "eth0"])
            de.run(["ip", "-n", name, "link", "set", "eth0", "up"])
            engine.start()
            de.build_busybox_image(engine)

    return BenchSwarm()


def swarm_overlay_round(swarm, tag: str, count: int) -> tuple[float, float]:
    """(seconds for N/2 `docker run -d --network OV` on each node, one after the other;
    seconds for `docker rm -f` of each node's containers); network made and removed untimed."""
    manager = swarm.nodes[0]
    net = f"ndbov{tag}"
    half = count // 2
    placed = [(swarm.nodes[0 if i < half else 1], f"ndb{tag}c{i}") for i in range(count)]
    manager.docker("network", "create", "-d", "overlay", "--attachable", "--subnet",
                   OVERLAY_SUBNET, net)
    try:
        began = time.perf_counter()
        for engine, name in placed:
            engine.docker("run", "-d", "--network", net, "--name", name, "ndt-busybox:1",
                          "sleep", "3600")
        up = time.perf_counter() - began
        first_engine, first = placed[0]
        last_engine, last = placed[-1]
        ip = first_engine.container_ip(first, net)
        out = last_engine.docker("exec", last, "ping", "-c1", "-W2", ip, check=False)
        if "1 packets received" not in out:
            raise SystemExit(f"swarm round: {last} cannot reach {ip}")
        began = time.perf_counter()
        for engine in swarm.nodes:
            names = [n for e, n in placed if e is engine]
            engine.docker("rm", "-f", *names, timeout=600)
        down = time.perf_counter() - began
    finally:
        for engine in swarm.nodes:
            left = engine.docker("ps", "-aq", check=False).split()
            if left:
                engine.docker("rm", "-f", *left, check=False, timeout=600)
        manager.docker("network", "rm", net, check=False)
    return up, down


# --- main ---------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def row(name: str, value: float, base_name: str = "", base: float = float("nan"),
        target: str = "") -> str:
    base_text = f"{base:8.2f} s" if base_name else ""
    ratio = f"{base / value:6.1f}×" if base_name and value > 0 else ""
    return f"{name:38} {value:8.2f} s  {base_name:36} {base_text:>10} {ratio:>7}  {target}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-docker", action="store_true", help="skip the Docker baseline")
    parser.add_argument("--no-overlay", action="store_true")
    parser.add_argument("--no-cli", action="store_true")
    parser.add_argument("--swarm", action="store_true",
                        help="also time a two-node Docker Swarm overlay (slow; off by default)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark builds namespaces")
    n = args.containers
    results: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    load_before = loadavg()
    docker = None
    docker_note = ""
    swarm = None
    labs: list[str] = []
    try:
        if not args.no_docker:
            try:
                docker = Docker()
                docker.start()
            except Exception as exc:  # noqa: BLE001 - reported, the rest still runs
                docker_note = f"Docker baseline skipped: {exc}"
                if docker is not None:
                    docker.stop()
                docker = None
        with tempfile.TemporaryDirectory(prefix="ndb-lab-") as folder:
            for r in range(args.rounds):
                name = f"{PREFIX}b{r}"
                labs.append(name)
                up, down = lab_round_api(bridge_topology(name, n), check_bridge_lab(n))
                add("bridge api up", up)
                add("bridge api down", down)
                up, down = shell_bridge(f"s{r}", n)
                add("bridge shell up", up)
                add("bridge shell down", down)
                if not args.no_cli:
                    name = f"{PREFIX}c{r}"
                    labs.append(name)
                    up, down = lab_round_cli(bridge_topology(name, n), folder,
                                             check_bridge_lab(n))
                    add("bridge cli up", up)
                    add("bridge cli down", down)
                if docker is not None:
                    up, down = docker.bridge_round(f"{TAG}r{r}", n)
                    add("bridge docker up", up)
                    add("bridge docker down", down)
                if not args.no_overlay:
                    name = f"{PREFIX}o{r}"
                    labs.append(name)
                    up, down = lab_round_api(overlay_topology(name, n), check_overlay_lab(n))
                    add("overlay api up", up)
                    add("overlay api down", down)
                    up, down = shell_overlay(f"t{r}", n)
                    add("overlay shell up", up)
                    add("overlay shell down", down)
                    if not args.no_cli:
                        name = f"{PREFIX}p{r}"
                        labs.append(name)
                        up, down = lab_round_cli(overlay_topology(name, n), folder,
                                                 check_overlay_lab(n))
                        add("overlay cli up", up)
                        add("overlay cli down", down)
                if args.swarm:
                    if swarm is None:
                        swarm = make_swarm()
                        swarm.start()
                    up, down = swarm_overlay_round(swarm, f"{TAG}s{r}", n)
                    add("overlay swarm up", up)
                    add("overlay swarm down", down)
                print(f"round {r + 1}/{args.rounds} done (load {loadavg()})", file=sys.stderr)
    finally:
        for name in labs:
            teardown.down(name)
        remove_namespaces(sorted(p.name for p in netns.NAMED_DIR.iterdir() if ours(p.name)))
        if docker is not None:
            docker.stop()
        if swarm is not None:
            swarm.stop()

    m = {key: med(values) for key, values in results.items()}
    print(f"\nbench/lab.py: {n} containers, median of {args.rounds} rounds, "
          f"every figure beside its baselines from this run")
    print(f"load average: before {load_before}, after {loadavg()} (2 cores)\n")
    print(f"{'figure':38} {'netdiag':>10}  {'baseline':36} {'baseline':>10} {'ratio':>7}  target")
    print(row(f"bridge lab up ({n} containers, API)", m["bridge api up"],
              "shell script of `ip`", m["bridge shell up"], f"≤ {TARGET_UP_S:g} s"))
    if "bridge docker up" in m:
        print(row("", m["bridge api up"], f"Docker: {n} × docker run -d",
                  m["bridge docker up"], f"≥ {TARGET_SPEEDUP:g}×"))
    if "bridge cli up" in m:
        print(row("bridge lab up, CLI wall", m["bridge cli up"], "shell script of `ip`",
                  m["bridge shell up"]))
    print(row("bridge lab down (API)", m["bridge api down"], "ip netns del each",
              m["bridge shell down"], "≤ baseline"))
    if "bridge docker down" in m:
        print(row("", m["bridge api down"], "Docker: docker rm -f (all)",
                  m["bridge docker down"]))
    if "bridge cli down" in m:
        print(row("bridge lab down, CLI wall", m["bridge cli down"], "ip netns del each",
                  m["bridge shell down"], "≤ baseline"))
    if "overlay api up" in m:
        print(row(f"overlay lab up (2 hosts × {n // 2}, API)", m["overlay api up"],
                  "shell script of `ip`/`bridge`", m["overlay shell up"]))
        if "overlay swarm up" in m:
            print(row("", m["overlay api up"], f"Swarm: {n // 2} docker run -d per node",
                      m["overlay swarm up"]))
        print(row("overlay lab down (API)", m["overlay api down"], "ip netns del each",
                  m["overlay shell down"], "≤ baseline"))
        if "overlay cli down" in m:
            print(row("overlay lab down, CLI wall", m["overlay cli down"], "ip netns del each",
                      m["overlay shell down"], "≤ baseline"))
        if "overlay swarm down" in m:
            print(row("", m["overlay api down"], "Swarm: docker rm -f per node",
                      m["overlay swarm down"]))
    print("\nall rounds (s):")
    for key, values in results.items():
        print(f"  {key:20} " + " ".join(f"{v:7.2f}" for v in values))
    if docker is not None:
        print(f"\nDocker engine start + image import (untimed in the table): "
              f"{docker.start_seconds:.1f} s")
    if docker_note:
        print(docker_note)
    if not args.swarm:
        print("Docker Swarm overlay baseline: not run (optional and slow: --swarm).")
    ok = m["bridge api up"] <= TARGET_UP_S and (
        "bridge docker up" not in m or m["bridge docker up"] / m["bridge api up"] >= TARGET_SPEEDUP)
    up_met = "met" if m["bridge api up"] <= TARGET_UP_S else "MISSED"
    line = f"\ntargets: up ≤ {TARGET_UP_S:g} s: {up_met}"
    if "bridge docker up" in m:
        speed_met = "met" if m["bridge docker up"] / m["bridge api up"] >= TARGET_SPEEDUP \
            else "MISSED"
        line += f"; ≥ {TARGET_SPEEDUP:g}× Docker: {speed_met}"
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
