"""Benchmark: `netdiag check --all --from FILE` on synthetic snapshots of 10k, 100k and 1M routes.

Run by hand (no root needed): `.venv/bin/python bench/checks.py [--sizes 10000 100000 1000000]`.

Each snapshot is one host namespace with N routes in its main table (prefixes /16 to /28 via
four uplinks, the shape of a big VPN or BGP-fed table) plus N/1000 bridge networks, each with a
container namespace (veth pair, address, default route, listener) and a published port. For
each size it prints the file size, then times, in separate processes:

* the floor — starting Python and importing netdiag (`netdiag --version`);
* the raw JSON parse of the file (`json.load`) — what any loader must pay;
* `netdiag check --all --from FILE --format json --exit-zero`, the real CLI, end to end;

and in this process the two halves of the CLI's work: loading the snapshot
(serialize.load) and running the rules (engine.run), with the slowest rules named.
Target: the 100k case under 2 s end to end. Files go to a temporary folder removed afterwards.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netdiag.checks import engine  # noqa: E402
from netdiag.checks.output.formats import FORMATS  # noqa: E402
from netdiag.model import (  # noqa: E402
    Address,
    Firewall,
    HostInfo,
    IptablesChain,
    IptablesRule,
    Link,
    Match,
    NamespaceRef,
    NamespaceState,
    NsKind,
    Route,
    Snapshot,
    Socket,
    Sysctl,
)
from netdiag.model.index import index  # noqa: E402
from netdiag.model.serialize import load, save  # noqa: E402

UPLINKS = ("eth0", "eth1", "tun0", "tun1")


def synthetic(routes: int) -> Snapshot:
    networks = max(1, routes // 1000)
    host_id = 4026531840
    host_links = [Link(index=1, name="lo", kind="loopback", mtu=65536, admin_up=True,
                       oper_state="unknown")]
    host_addresses, host_routes = [], [Route(family=4, dst="default", gateway="192.0.2.1",
                                             dev="eth0")]
    for i, name in enumerate(UPLINKS):
        host_links.append(Link(index=2 + i, name=name, kind="device", mtu=1500, admin_up=True,
                               oper_state="up"))
        host_addresses.append(Address(ifindex=2 + i, ifname=name, family=4,
                                      address=f"192.0.{2 + i}.10", prefixlen=24))
    step = ((1 << 32) - (1 << 24)) // routes  # spread over the whole space from 1.0.0.0 up
    for i in range(routes):
        prefixlen = 16 + i % 13
        value = (1 << 24) + i * step
        value &= ~((1 << (32 - prefixlen)) - 1)
        octets = (value >> 24 & 255, value >> 16 & 255, value >> 8 & 255, value & 255)
        dst = ".".join(map(str, octets)) + f"/{prefixlen}"
        uplink = i % len(UPLINKS)
        host_routes.append(Route(family=4, dst=dst, gateway=f"192.0.{2 + uplink}.1",
                                 dev=UPLINKS[uplink], protocol="bgp"))
    states, rules = [], []
    for n in range(networks):
        bridge, subnet = f"br-{n:06d}", f"100.{64 + n // 256}.{n % 256}"
        index = 100 + 2 * n
        host_links.append(Link(index=index, name=bridge, kind="bridge", mtu=1500,
                               admin_up=True, oper_state="up"))
        host_links.append(Link(index=index + 1, name=f"veth{n:07d}", kind="veth", mtu=1500,
                               admin_up=True, oper_state="up", master=bridge,
                               peer_namespace=host_id + 1 + n, peer_name="eth0"))
        host_addresses.append(Address(ifindex=index, ifname=bridge, family=4,
                                      address=f"{subnet}.1", prefixlen=24))
        host_routes.append(Route(family=4, dst=f"{subnet}.0/24", dev=bridge, protocol="kernel",
                                 scope="link"))
        rules.append(IptablesRule(
            backend="nft", family=4, table="nat", chain="DOCKER", position=n + 1,
            matches=(Match("in-interface", bridge, negated=True), Match("protocol", "tcp"),
                     Match("dport", str(10000 + n), module="tcp")),
            target="DNAT", target_options=(("to-destination", f"{subnet}.2:80"),)))
        states.append(container(host_id + 1 + n, subnet, index + 1))
    host = NamespaceState(
        ref=NamespaceRef(id=host_id, kind=NsKind.HOST, path="/proc/1/ns/net", label="host"),
        links=tuple(host_links), addresses=tuple(host_addresses), routes=tuple(host_routes),
        firewall=Firewall(iptables_chains=(IptablesChain("nft", 4, "nat", "DOCKER"),),
                          iptables_rules=tuple(rules)),
        sysctls=(Sysctl("net.ipv4.ip_forward", "1"),
                 Sysctl("net.ipv4.ip_local_port_range", "32768\t60999")))
    return Snapshot(created_at="2026-01-01T00:00:00+00:00", host=HostInfo(hostname="bench"),
                    namespaces=(host, *states))


def container(ns_id: int, subnet: str, peer_index: int) -> NamespaceState:
    name = f"c{ns_id}"
    return NamespaceState(
        ref=NamespaceRef(id=ns_id, kind=NsKind.DOCKER, path=f"/run/docker/netns/{name}",
                         label=name, container=name),
        links=(Link(index=1, name="lo", kind="loopback", mtu=65536, admin_up=True,
                    oper_state="unknown"),
               Link(index=2, name="eth0", kind="veth", mtu=1500, admin_up=True, oper_state="up",
                    parent_index=peer_index, peer_namespace=4026531840,
                    peer_name=f"veth{ns_id - 4026531841:07d}")),
        addresses=(Address(ifindex=2, ifname="eth0", family=4, address=f"{subnet}.2",
                           prefixlen=24),),
        routes=(Route(family=4, dst="default", gateway=f"{subnet}.1", dev="eth0"),
                Route(family=4, dst=f"{subnet}.0/24", dev="eth0", protocol="kernel",
                      scope="link")),
        sockets=(Socket(protocol="tcp", family=4, address="0.0.0.0", port=80, process="httpd"),),
        sysctls=(Sysctl("net.ipv4.ip_forward", "0"),))


def timed_process(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, from wait4) of one process, run as installed: with
    Python's bytecode cache (PYTHONDONTWRITEBYTECODE, which development shells set, would
    make it compile netdiag's sources every time, ~0.2 s)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    error = child.stderr.read().decode().strip()
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{argv} failed: {error}")
    return elapsed, usage.ru_utime + usage.ru_stime


def measure(routes: int, folder: Path, skip: tuple[str, ...] = ()) -> dict:
    path = folder / f"snap-{routes}.json"
    start = time.perf_counter()
    snapshot = synthetic(routes)
    save(snapshot, path)
    made = time.perf_counter() - start
    del snapshot
    python = sys.executable
    timed_process([python, "-m", "netdiag", "--version"])  # bytecode cache written
    floor = timed_process([python, "-m", "netdiag", "--version"])[0]
    parse = timed_process([python, "-c", f"import json; json.load(open({str(path)!r}))"])[0]
    load_before = os.getloadavg()[0]
    cli, cli_cpu = timed_process([python, "-m", "netdiag", "check", "--all", "--from",
                                  str(path), "--format", "json", "--exit-zero",
                                  *(arg for name in skip for arg in ("--skip", name))])
    rules = tuple(module for module in engine.RULES if module.RULE.name not in skip)
    gc.disable()  # as `check --from` loads: the records frozen as they come, never walked
    start = time.perf_counter()
    loaded = load(path)
    load_s = time.perf_counter() - start
    gc.freeze()
    gc.enable()
    per_rule = {}
    start = time.perf_counter()
    topo = index(loaded)
    index_s = time.perf_counter() - start
    # The host's main table, built once on first use and shared by the rules: timed apart,
    # or the first rule that routes would carry it.
    start = time.perf_counter()
    topo.table(max(loaded.namespaces, key=lambda state: len(state.routes)).ref.id, 4)
    table_s = time.perf_counter() - start
    for module in rules:
        rule_start = time.perf_counter()
        report = engine.run(loaded, rules=(module,), beside=False)  # the rule alone
        per_rule[module.RULE.name] = time.perf_counter() - rule_start
        assert not report.unknown, report.unknown
    rules_s = sum(per_rule.values())
    slowest = sorted(per_rule.items(), key=lambda item: -item[1])[:3]
    report = engine.run(loaded, rules=rules)
    start = time.perf_counter()
    FORMATS["json"](report)
    render_s = time.perf_counter() - start
    namespaces = len(loaded.namespaces)
    del loaded, report
    gc.unfreeze()
    return {"routes": routes, "namespaces": namespaces,
            "mb": path.stat().st_size / 1e6, "made": made, "floor": floor, "parse": parse,
            "cli": cli, "cli_cpu": cli_cpu, "loadavg": load_before, "load": load_s,
            "index": index_s, "table": table_s, "rules": rules_s, "render": render_s,
            "slowest": ", ".join(f"{name} {t:.2f}" for name, t in slowest)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--skip", action="append", default=[], metavar="RULE",
                        help="leave a rule out, here and in the CLI (repeatable)")
    args = parser.parse_args()
    header = ("routes", "ns", "file MB", "py+import s", "json.load s", "CLI check s",
              "(cpu s)", "loadavg", "load s", "index s", "table s", "rules s", "JSON out s",
              "slowest rules (s)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="netdiag-bench-checks-") as folder:
        for size in args.sizes:
            r = measure(size, Path(folder), tuple(args.skip))
            rows.append((f"{r['routes']:,}", r["namespaces"], f"{r['mb']:.1f}",
                         f"{r['floor']:.2f}", f"{r['parse']:.2f}", f"{r['cli']:.2f}",
                         f"{r['cli_cpu']:.2f}", f"{r['loadavg']:.1f}",
                         f"{r['load']:.2f}", f"{r['index']:.2f}", f"{r['table']:.2f}",
                         f"{r['rules']:.2f}", f"{r['render']:.2f}", r["slowest"]))
            print(f"  built and saved {size:,} routes in {r['made']:.1f} s", file=sys.stderr)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))
    print("\nCLI check = the whole `check --all --from` process (its CPU time beside it; "
          "loadavg: the 1-minute load before it); py+import and json.load are floors measured "
          "in the same run; load/index/table (the host's main route table, which the rules "
          "share)/rules/JSON out (the --format json report) are in-process parts of it. "
          "Targets: 100k routes under 2 s, 1M under 4 s end to end.")


if __name__ == "__main__":
    main()
