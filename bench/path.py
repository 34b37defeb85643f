"""Benchmark: the flow engine's answers against asking the kernel with real packets.

Run by hand as root: `.venv/bin/python bench/path.py --n 1000` (`--docker-containers 200`
adds the Docker row: one engine, that many containers on 20 networks).

Row 1 — `path` queries: builds bench/snapshot.py's N namespaces (`ndb-<N>-<i>`, each with a
veth into one bridge in `ndb-hub`), saves their snapshot and loads it back, then times random
`path` queries (ICMP and TCP between the namespaces) after load; the baseline in the same
run is one real probe per query for a sample of them (`ping -c 1 -W 1` or a TCP connect with
a 1 s timeout, from the source namespace).

Row 2 — expected flows: a real engine (tests/docker_engine.py) runs the containers on 20
user networks, one publishing a port per network; times every expected flow of the host
(netdiag/flows/expected.py: gateways, peers, DNS, published ports) from one snapshot, and the
baseline: the same flows tested with real packets, one probe each (1 s timeout), one after
the other.

Row 3 (`--ipv6 N`, default 200) — the same queries over IPv6 (ULA addresses, ip6tables),
beside real IPv6 probes; see ipv6_row. Everything made is removed afterwards, also on failure.

Row 4 (`--no-nftables` leaves it out) — `path` on a host whose native nftables ruleset is the
corpus's largest (tests/corpus/nftables/), beside real probes; see nftables_row.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import snapshot as namespaces_bench  # noqa: E402

from netdiag.collect import collect_snapshot, discovery, docker, namespace_refs  # noqa: E402
from netdiag.flows import expected  # noqa: E402
from netdiag.flows.packet import Packet  # noqa: E402
from netdiag.flows.walk import Engine  # noqa: E402
from netdiag.model.serialize import load, save  # noqa: E402

QUERIES = 200
SAMPLE = 20
PROBE = ("import socket,sys\n"
         "s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)\n"
         "s.settimeout(1)\n"
         "try:\n s.connect((sys.argv[1],int(sys.argv[2])));print('ok')\n"
         "except OSError as e:print(type(e).__name__)")


def real_probe(netns_path: str, packet: Packet) -> float:
    """Seconds one real probe takes from the namespace (ping, or a TCP connect)."""
    began = time.perf_counter()
    if packet.proto == "icmp":
        argv = ["nsenter", f"--net={netns_path}", "ping", "-n", "-c", "1", "-W", "1",
                packet.dst]
    else:
        argv = ["nsenter", f"--net={netns_path}", sys.executable, "-c", PROBE, packet.dst,
                str(packet.dport)]
    subprocess.run(argv, capture_output=True, check=False)
    return time.perf_counter() - began


def time_queries(title: str, engine: Engine, queries: list[tuple[int, str, Packet]]) -> None:
    """Ask the engine each (namespace id, its path, packet), the first apart (it builds the
    indexes); send the first SAMPLE for real beside them; print the row."""
    first = time.perf_counter()
    engine.path(queries[0][0], queries[0][2])
    first = time.perf_counter() - first
    times, outcomes = [], {}
    for ns_id, _, packet in queries:
        start = time.perf_counter()
        result = engine.path(ns_id, packet)
        times.append(time.perf_counter() - start)
        outcomes[str(result.disposition)] = outcomes.get(str(result.disposition), 0) + 1
    probes = [real_probe(path, packet) for _, path, packet in queries[:SAMPLE]]
    print(f"{title}: first {first * 1e3:.1f} ms (indexes built), then median "
          f"{statistics.median(times) * 1e3:.2f} ms, p95 "
          f"{sorted(times)[int(0.95 * len(times))] * 1e3:.2f} ms, max "
          f"{max(times) * 1e3:.2f} ms over {len(times)} ({outcomes}); real probe: median "
          f"{statistics.median(probes) * 1e3:.1f} ms over {len(probes)}", flush=True)


def path_row(n: int) -> None:
    namespaces_bench.remove_ours()
    try:
        began = time.perf_counter()
        namespaces_bench.build(n, 4)
        names = namespaces_bench.names(n)
        refs = namespace_refs.resolve_all([namespaces_bench.HUB, *names])
        with tempfile.TemporaryDirectory() as tmp:
            saved = Path(tmp) / "snap.json"
            save(collect_snapshot(refs, intent=docker.Intent()), saved)
            snapshot = load(saved)
        gc.freeze()  # as `netdiag path` does: the snapshot lives until exit
        made = time.perf_counter() - began
        engine = Engine(snapshot)
        ids = {ref.path: ref.id for ref in refs}
        rng = random.Random(7)
        queries = []
        for _ in range(QUERIES):
            a, b = rng.sample(range(n), 2)
            hi, lo = divmod(b, 250)
            proto = rng.choice(("icmp", "tcp"))
            queries.append((a, Packet("", f"10.77.{hi}.{lo + 2}", proto,
                                      43210 if proto == "tcp" else 0,
                                      22 if proto == "tcp" else 0)))
        time_queries(f"path queries, {n} namespaces (set-up {made:.0f} s)", engine,
                     [(ids[f"/run/netns/{names[a]}"], f"/run/netns/{names[a]}", packet)
                      for a, packet in queries])
    finally:
        namespaces_bench.remove_ours()


IP6TABLES_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -s fd77::/64 -p tcp --dport 22 -j ACCEPT
-A INPUT -p tcp --dport 9000 -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s fd77::/64 ! -o eth0 -j MASQUERADE
COMMIT
"""


def _add_ipv6(index: int, name: str) -> None:
    """A ULA address (no duplicate address detection), an IPv6 default route and an
    ip6tables ruleset in one of bench/snapshot.py's namespaces."""
    a, b = divmod(index, 250)
    namespaces_bench.ip_batch([f"addr add fd77::{a}:{b + 2}/64 dev eth0 nodad",
                               "route add ::/0 via fd77::ffff:fffe dev eth0"], name)
    subprocess.run(["ip", "netns", "exec", name, "ip6tables-restore"], input=IP6TABLES_RULES,
                   text=True, capture_output=True, check=True)


def ipv6_row(n: int) -> None:
    """Row 3 — IPv6 `path` queries: the same N namespaces with a ULA address each, an IPv6
    default route and ip6tables rules; random ICMPv6 and TCP queries between them timed after
    the snapshot is saved and loaded back, beside one real probe (ping -6, or a TCP connect
    over IPv6) per query for a sample of them."""
    namespaces_bench.remove_ours()
    try:
        began = time.perf_counter()
        namespaces_bench.build(n, 4)
        names = namespaces_bench.names(n)
        for index, name in enumerate(names):
            _add_ipv6(index, name)
        refs = namespace_refs.resolve_all([namespaces_bench.HUB, *names])
        with tempfile.TemporaryDirectory() as tmp:
            saved = Path(tmp) / "snap.json"
            save(collect_snapshot(refs, intent=docker.Intent()), saved)
            snapshot = load(saved)
        gc.freeze()
        made = time.perf_counter() - began
        engine = Engine(snapshot)
        ids = {ref.path: ref.id for ref in refs}
        rng = random.Random(7)
        queries = []
        for _ in range(QUERIES):
            a, b = rng.sample(range(n), 2)
            hi, lo = divmod(b, 250)
            proto = rng.choice(("icmp", "tcp"))
            queries.append((a, Packet("", f"fd77::{hi}:{lo + 2}", proto,
                                      43210 if proto == "tcp" else 0,
                                      rng.choice((22, 9000)) if proto == "tcp" else 0)))
        time_queries(f"IPv6 path queries, {n} namespaces (set-up {made:.0f} s)", engine,
                     [(ids[f"/run/netns/{names[a]}"], f"/run/netns/{names[a]}", packet)
                      for a, packet in queries])
    finally:
        namespaces_bench.remove_ours()


def docker_row(containers: int, version: str, networks: int = 20) -> None:
    from tests.docker_engine import DockerEngine, build_busybox_image, unavailable_reason

    reason = unavailable_reason(version)
    if reason:
        raise SystemExit(f"--docker-containers: {reason}")
    engine = DockerEngine("bpath", version=version)
    engine.netns = f"ndb-dk-{engine.tag}"
    began = time.perf_counter()
    try:
        engine.start()
        image = build_busybox_image(engine)
        subprocess.run(["ip", "-n", engine.netns, "link", "add", "up0", "type", "veth", "peer",
                        "name", "up1"], check=True)
        for command in ("addr add 198.19.9.2/24 dev up0", "link set up0 up",
                        "link set up1 up", "route add default via 198.19.9.1"):
            subprocess.run(["ip", "-n", engine.netns, *command.split()], check=True)
        for i in range(networks):
            engine.docker("network", "create", "--subnet", f"10.124.{i}.0/24", f"ndbn{i}")
        for i in range(containers):
            publish = ["-p", f"{9000 + i}:80"] if i < networks else []
            engine.docker("run", "-d", "--network", f"ndbn{i % networks}", "--name",
                          f"ndb{i}", *publish, image, "httpd", "-f", "-p", "80", "-h", "/")
        made = time.perf_counter() - began
        intent = docker.read([engine.host])
        refs = discovery.discover(engines=intent.engines)
        ours = [ref for ref in refs if ref.path == engine.netns_path
                or any(c.netns == ref.id for e in intent.engines for c in e.containers)]
        snapshot = collect_snapshot(ours, intent=intent)
        start = time.perf_counter()
        model = Engine(snapshot)
        flows = list(expected.expectations(snapshot))
        failed = list(expected.judge(snapshot, engine=model))
        simulated = time.perf_counter() - start
        paths = {ref.id: ref.path for ref in ours}
        start = time.perf_counter()
        for expectation in flows:
            if not expectation.arrive_on:  # from beyond the host: nothing of ours to send from
                real_probe(paths[expectation.source], expectation.packet)
        probed = time.perf_counter() - start
        print(f"Docker {engine.server_version}: expected flows, {containers} containers on "
              f"{networks} networks (set-up "
              f"{made:.0f} s): {len(flows)} flows simulated in {simulated:.2f} s "
              f"({len(failed)} failing); the same with real packets, one probe each: "
              f"{probed:.1f} s ({probed / simulated:.0f}x)", flush=True)
    finally:
        # Many containers take the daemon longer to remove than engine.stop() waits for:
        # remove them first, a hundred at a time.
        ids = engine.docker("ps", "-aq", check=False, timeout=120).split()
        for first in range(0, len(ids), 100):
            engine.docker("rm", "-f", *ids[first:first + 100], check=False, timeout=600)
        engine.stop()


CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "nftables"
NFT_NAMESPACES = ("h", "out", "c0", "c1")  # as in tests/integration/test_nftables_corpus.py
NFT_ADDRESSES = ("10.99.0.1", "10.99.0.2", "172.17.0.1", "172.17.0.2", "192.0.2.1",
                 "192.0.2.2", "127.0.0.1")
NFT_LISTENER = ("import socket,threading\n"
                "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                "s.bind(('0.0.0.0',80));s.listen(64);print('ready',flush=True)\n"
                "while True:\n c,_=s.accept();c.close()")


def _rule_lines(ruleset: Path) -> int:
    """How many rules a corpus file holds (lines of either syntax that are not structure)."""
    structure = ("#", "table", "chain", "}", "type", "policy", "elements", "flags", "map",
                 "set", "add table", "add chain", "add set", "add map", "add element")
    return sum(1 for line in ruleset.read_text().splitlines()
               if line.strip() and not line.lstrip().startswith(structure))


def nftables_row() -> None:
    """Row 4 — `path` on a host whose ruleset is the corpus's largest (by rules): loaded with
    `nft -f` into the host of tests/integration/test_nftables_corpus.py's topology (an uplink
    to `out`, bridges docker0 and bridge1 with a container each, listeners on tcp 80), the
    snapshot saved and loaded back, random TCP and ICMP queries timed after load, beside one
    real probe per query for a sample of them."""
    largest = max(CORPUS.glob("*.nft"), key=_rule_lines)
    names = {role: f"ndb-nft-{role}" for role in NFT_NAMESPACES}
    servers: list[subprocess.Popen] = []

    def sh(*commands: str) -> None:
        for command in commands:
            subprocess.run(command.split(), check=True, capture_output=True)

    def remove() -> None:
        for server in servers:
            server.kill()
            server.wait()
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)

    remove()
    try:
        began = time.perf_counter()
        for name in names.values():
            sh(f"ip netns add {name}", f"ip -n {name} link set lo up")
        h, out = names["h"], names["out"]
        sh(f"ip netns exec {h} sysctl -qw net.ipv4.ip_forward=1",
           f"ip -n {h} link add eth0 type veth peer name eth0 netns {out}",
           f"ip -n {h} addr add 10.99.0.1/24 dev eth0", f"ip -n {h} link set eth0 up",
           f"ip -n {out} addr add 10.99.0.2/24 dev eth0", f"ip -n {out} link set eth0 up",
           f"ip -n {out} route add default via 10.99.0.1")
        for bridge, gateway, role, address, prefix in (
                ("docker0", "172.17.0.1", "c0", "172.17.0.2", 16),
                ("bridge1", "192.0.2.1", "c1", "192.0.2.2", 24)):
            ns = names[role]
            sh(f"ip -n {h} link add {bridge} type bridge",
               f"ip -n {h} addr add {gateway}/{prefix} dev {bridge}",
               f"ip -n {h} link set {bridge} up",
               f"ip -n {h} link add v{role} type veth peer name eth0 netns {ns}",
               f"ip -n {h} link set v{role} master {bridge} up",
               f"ip -n {ns} addr add {address}/{prefix} dev eth0", f"ip -n {ns} link set eth0 up",
               f"ip -n {ns} route add default via {gateway}")
        sh(f"ip netns exec {h} nft -f {largest}")
        for name in names.values():
            server = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c",
                                       NFT_LISTENER], stdout=subprocess.PIPE, text=True)
            servers.append(server)
            server.stdout.readline()
        for _ in range(50):  # the veths' carriers come up a moment after both ends are up
            if all("NO-CARRIER" not in subprocess.run(
                    ["ip", "-n", name, "link", "show", "eth0"], capture_output=True,
                    text=True).stdout for role, name in names.items() if role != "h"):
                break
            time.sleep(0.1)
        refs = namespace_refs.resolve_all(list(names.values()))
        with tempfile.TemporaryDirectory() as tmp:
            saved = Path(tmp) / "snap.json"
            save(collect_snapshot(refs, intent=docker.Intent()), saved)
            snapshot = load(saved)
        gc.freeze()
        made = time.perf_counter() - began
        rules = sum(len(s.firewall.nft_rules) for s in snapshot.namespaces)
        engine = Engine(snapshot)
        ids = {ref.path: ref.id for ref in refs}
        rng = random.Random(7)
        queries = []
        for _ in range(QUERIES):
            proto = rng.choice(("icmp", "tcp"))
            queries.append((rng.choice(NFT_NAMESPACES),
                            Packet("", rng.choice(NFT_ADDRESSES), proto,
                                   43210 if proto == "tcp" else 0,
                                   rng.choice((22, 80, 222, 2222, 3333)) if proto == "tcp"
                                   else 0)))
        paths = {role: f"/run/netns/{name}" for role, name in names.items()}
        time_queries(f"nftables path queries, {largest.name} ({rules} rules; set-up "
                     f"{made:.0f} s)", engine,
                     [(ids[paths[role]], paths[role], packet) for role, packet in queries])
    finally:
        remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="namespaces for the path row")
    parser.add_argument("--ipv6", type=int, metavar="N", default=200,
                        help="namespaces for the IPv6 row (0: none; default 200)")
    parser.add_argument("--docker-containers", type=int, metavar="N", default=0,
                        help="also the expected-flows row: N containers on 20 networks")
    parser.add_argument("--docker-versions", default="20.10,28",
                        help="the engines of the Docker rows, one row each (default 20.10,28)")
    parser.add_argument("--nftables", action=argparse.BooleanOptionalAction, default=True,
                        help="the row of the corpus's largest nftables ruleset (default on)")
    args = parser.parse_args()
    if args.n:
        path_row(args.n)
    if args.nftables:
        nftables_row()
    if args.ipv6:
        ipv6_row(args.ipv6)
    for version in args.docker_versions.split(",") if args.docker_containers else ():
        docker_row(args.docker_containers, version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
