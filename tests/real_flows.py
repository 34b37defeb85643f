"""Real packets for the differential flow tests: one listener and one prober for both families,
sending a batch of flows from each source namespace at once, and the comparison of their fate
with the flow engine's verdict.

A flow is a dict: `id`, `src` (a role, a key of the test's names), `dst`, `proto` (tcp, udp,
icmp), `port`, `size` (an ICMP packet's whole size, 0 for the default) and `df` (sent with
Don't Fragment; True unless given). Its real fate is "ok" (a TCP connection made, a UDP
datagram echoed, a ping answered), "refused", "timeout", "fail" (a ping unanswered) or
"error N".
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import time

from netdiag.collect import collect_snapshot, namespace_refs
from netdiag.collect.docker import Intent
from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine
from netdiag.model import Snapshot
from tests.conftest import sh

# argv: TCP ports, then UDP ports, each comma-separated ("" for none).
LISTENER = textwrap.dedent("""
    import socket, subprocess, sys, threading
    def tcp(port):
        s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # both families
        s.bind(("::", port)); s.listen(64)
        while True:
            c, _ = s.accept(); c.close()
    def udp(address, port):
        s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET,
                          socket.SOCK_DGRAM)
        s.bind((address, port))
        while True:
            data, peer = s.recvfrom(512); s.sendto(data, peer)
    tcp_ports, udp_ports = (p.split(",") if p else [] for p in (sys.argv[1:3] + ["", ""])[:2])
    # UDP on each address: the answer leaves from the address asked (as a DNS server's),
    # not from the one routing would pick, which the client's connected socket ignores.
    addresses = [line.split()[3].split("/")[0] for line in subprocess.run(
        ["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout.splitlines()
        if " fe80:" not in line]
    for p in tcp_ports:
        threading.Thread(target=tcp, args=(int(p),), daemon=True).start()
    for p in udp_ports:
        for address in addresses:
            threading.Thread(target=udp, args=(address, int(p)), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
""")

PROBER = textwrap.dedent("""
    import json, socket, subprocess, sys, threading
    flows = json.loads(sys.argv[1]); results = {}
    def run(f):
        six = ":" in f["dst"]
        if f["proto"] == "icmp":
            size = []
            if f.get("size"):
                size = ["-M", "do" if f.get("df", True) else "dont",
                        "-s", str(f["size"] - (48 if six else 28))]
            done = subprocess.run(["ping", "-6" if six else "-4", "-n", "-c", "1", "-W", "1",
                                   *size, f["dst"]], capture_output=True)
            results[f["id"]] = "ok" if done.returncode == 0 else "fail"
            return
        udp = f["proto"] == "udp"
        s = socket.socket(socket.AF_INET6 if six else socket.AF_INET,
                          socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        # 3 s unless the flow says ("wait"): a SYN lost to a full accept queue (many flows
        # at once to one busybox httpd, on a loaded machine) is sent again after 1 s; a
        # refused or dropped flow is no different for waiting longer.
        s.settimeout(f.get("wait", 3.0))
        try:  # getaddrinfo gives a link-local address its interface's scope id
            family = socket.AF_INET6 if six else socket.AF_INET
            s.connect(socket.getaddrinfo(f["dst"], f["port"], family)[0][4])
            if udp:
                s.send(b"netdiag"); s.recv(512)
            results[f["id"]] = "ok"
        except ConnectionRefusedError:
            results[f["id"]] = "refused"
        except OSError as exc:
            results[f["id"]] = "timeout" if isinstance(exc, TimeoutError) else f"error {exc.errno}"
        finally:
            s.close()
    threads = [threading.Thread(target=run, args=(f,)) for f in flows]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(results))
""")


def listen(namespace: str, tcp: tuple[int, ...] = (), udp: tuple[int, ...] = ()
           ) -> subprocess.Popen:
    """A LISTENER in the namespace (a name in /run/netns, or a path such as a container's
    /proc/PID/ns/net), ready when this returns; the caller ends it (its pid)."""
    server = subprocess.Popen([*_inside(namespace), sys.executable, "-c", LISTENER,
                               ",".join(map(str, tcp)), ",".join(map(str, udp))],
                              stdout=subprocess.PIPE, text=True)
    if server.stdout.readline().strip() != "ready":
        server.kill()
        server.wait()
        raise AssertionError(f"the listener in {namespace} did not start")
    return server


def send(names: dict[str, str], flows: list[dict], timeout: float = 60) -> dict[int, str]:
    """Each flow's real fate, the flows of each source sent at once from its namespace (a
    name in /run/netns, or a path such as a container's /proc/PID/ns/net)."""
    by_source: dict[str, list[dict]] = {}
    for flow in flows:
        by_source.setdefault(flow["src"], []).append(flow)
    probes = [subprocess.Popen([*_inside(names[source]), sys.executable, "-c", PROBER,
                                json.dumps(group)], stdout=subprocess.PIPE, text=True)
              for source, group in by_source.items()]
    results: dict[int, str] = {}
    for probe in probes:
        out, _ = probe.communicate(timeout=timeout)
        results.update({int(k): v for k, v in json.loads(out).items()})
    return results


def _inside(namespace: str) -> list[str]:
    if namespace.startswith("/"):
        return ["nsenter", f"--net={namespace}"]
    return ["ip", "netns", "exec", namespace]


def compare(engine: Engine, ids: dict[str, int], flows: list[dict], real: dict[int, str]
            ) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """Each flow simulated and held against its real fate: (the disagreements, the model's
    dispositions counted, the kernel's outcomes counted), printed for the log."""
    disagreements: list[str] = []
    by_disposition: dict[str, int] = {}
    for flow in flows:
        packet = Packet("", flow["dst"], flow["proto"], 43210 if flow["port"] else 0,
                        flow["port"], size=flow.get("size", 0), df=flow.get("df", True))
        result = engine.path(ids[flow["src"]], packet)
        by_disposition[str(result.disposition)] = by_disposition.get(str(result.disposition), 0) + 1
        if result.delivered != (real[flow["id"]] == "ok"):
            where = result.forward.drop or (result.reply.drop if result.reply else None)
            dst = f"[{flow['dst']}]" if ":" in flow["dst"] else flow["dst"]
            disagreements.append(
                f"  {flow['src']} → {flow['proto']} {dst}:{flow['port']} size "
                f"{flow.get('size', 0)} df {flow.get('df', True)}: model {result.disposition}"
                f"{f' ({where.reason})' if where else ''}, kernel {real[flow['id']]}")
    kernel: dict[str, int] = {}
    for outcome in real.values():
        kernel[outcome] = kernel.get(outcome, 0) + 1
    print(f"\n{len(flows)} flows; model dispositions: {by_disposition}; kernel: {kernel}")
    print(f"{len(disagreements)} disagreements" + ("".join(f"\n{d}" for d in disagreements)))
    return disagreements, by_disposition, kernel


def random_flows(seed: int, count: int, sources: list[str], addresses: list[str],
                 published: tuple[str, tuple[int, ...]], ports: tuple[int, ...] = (80, 80, 22, 5555)
                 ) -> list[dict]:
    """`count` flows drawn with `seed`: a quarter to the published (address, ports), the rest
    TCP to `ports` or ICMP, from any source to any address."""
    rng = random.Random(seed)
    flows = []
    for number in range(count):
        source = rng.choice(sorted(sources))
        if rng.random() < 0.25:
            dst, proto, port = published[0], "tcp", rng.choice(published[1])
        else:
            dst = rng.choice(addresses)
            proto = "icmp" if rng.random() < 0.3 else "tcp"
            port = rng.choice(ports) if proto == "tcp" else 0
        flows.append({"id": number, "src": source, "dst": dst, "proto": proto, "port": port,
                      "size": 0})
    return flows


def assert_agreement(flows: list[dict], compared: tuple[list[str], dict[str, int], dict[str, int]],
                     least_through: float, kinds: int = 0) -> None:
    """At least 99% of the flows agree with the kernel (`compared` is what `compare` gives);
    enough of them get through, and the model gives enough kinds of fate, for the agreement
    to mean something."""
    disagreements, by_disposition, kernel = compared
    assert len(by_disposition) >= kinds, f"too few kinds of fate to mean much: {by_disposition}"
    assert kernel.get("ok", 0) >= least_through * len(flows), \
        f"too few flows get through: {kernel}"
    agreement = 1 - len(disagreements) / len(flows)
    assert agreement >= 0.99, f"{agreement:.1%} agree:\n" + "\n".join(disagreements)


def snapshot_of(names: dict[str, str]) -> tuple[Snapshot, dict[str, int]]:
    """The snapshot of the named namespaces (no runtime's intent) and each role's namespace
    id in it."""
    snapshot = collect_snapshot(namespace_refs.resolve_all(list(names.values())),
                                intent=Intent())
    refs = [state.ref for state in snapshot.namespaces]
    return snapshot, {role: namespace_refs.resolve(name, refs).id for role, name in names.items()}


def path_json(*args: str) -> tuple[int, dict]:
    """`netdiag path ARGS --format json` (no runtime): its exit code (0 or 1) and report."""
    done = subprocess.run([sys.executable, "-m", "netdiag", "path", *args, "--format", "json",
                           "--docker", "none"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def wire_lan(router: str, names: dict[str, str], bridges: dict[str, tuple[str, ...]],
             hosts: dict[str, tuple[str, str, str]], prefix: int, nodad: str = "") -> None:
    """The router's bridges with their addresses, and each host role's eth0 on a veth from the
    router (on a bridge, or routed on its own when the bridge is ""), with its address/prefix
    and, when given, its default route ("via fe80::1 dev eth0")."""
    for bridge, addresses in bridges.items():
        sh(f"ip -n {router} link add {bridge} type bridge")
        for address in addresses:
            sh(f"ip -n {router} addr add {address} dev {bridge} {nodad}")
        sh(f"ip -n {router} link set {bridge} up")
    for role, (address, bridge, default) in hosts.items():
        ns = names[role]
        sh(f"ip -n {router} link add v{role} type veth peer name eth0 netns {ns}")
        if bridge:
            sh(f"ip -n {router} link set v{role} master {bridge}")
        sh(f"ip -n {router} link set v{role} up")
        sh(f"ip -n {ns} addr add {address}/{prefix} dev eth0 {nodad}")
        sh(f"ip -n {ns} link set eth0 up")
        if default:
            sh(f"ip -n {ns} route add default {default}")


def wait_for_carriers(devices: list[tuple[str, str]]) -> None:
    """Until each (namespace, device) has its carrier: the kernel reports a new veth's a
    moment after both ends are up (its link watch runs deferred), and a snapshot must not
    catch it before. Bounded: 5 s."""
    for _ in range(50):
        if all("NO-CARRIER" not in sh(f"ip -n {ns} link show {device}")
               for ns, device in devices):
            return
        time.sleep(0.1)
    raise AssertionError(f"no carrier within 5 s on {devices}")
