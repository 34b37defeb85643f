"""`netdiag exposure` against a real scan, on real Docker engines in namespaces.

One engine per version (Debian's 20.10 and 28), started once, in a namespace with an uplink
(`up0`, 198.19.7.2 and 198.19.7.3) to a LAN namespace (198.19.7.1, the default gateway) that
also routes the Docker bridge networks to the host. The workload: ports published on 0.0.0.0
(tcp 8080, and udp 5353 to a UDP echo on 53), on 127.0.0.1 and on 198.19.7.3; a macvlan
container on up0 (198.19.7.50, also with a UDP echo on 53); on 28 a `routed`
network whose container publishes 80 and also listens, unpublished, on 81; on the host a
listener on 22 (allowed) and one on 5433 (the firewall closes it). Then, one after the other,
three host firewalls — each the INPUT intent only, Docker's own rules untouched:

* ufw-like with iptables-legacy: INPUT policy DROP, lo and replies accepted, tcp 22 allowed
  (the shape of ufw's before/user chains, folded into INPUT);
* the same with iptables-nft;
* firewalld-like native nftables (`inet ndt_firewalld`): input rejects all but lo, replies and
  22; forward accepts replies and `ct status dnat` and rejects the rest — firewalld's
  filter_FORWARD accepts DNATed connections ahead of its zones (firewalld's
  src/firewall/core/nftables.py; firewalld/firewalld#1536).

For each, the LAN namespace connects to (TCP) and sends a datagram to (UDP) every address
(the uplink's, the containers', the macvlan's) × every port (those the model names and those
the test opened), in parallel with a 1.5 s timeout, inside the test's namespaces only; what
answered must be exactly what the exposure table says an `up0` client reaches, port for port.
At the same time the host itself scans every address (127.0.0.1 too), and one container of
each network the other networks' containers: what answered must be the table's rows from the
host and from that network. On 28, docker-proxy for the routed network's 8083 listens on
[::] alone, with IPV6_V6ONLY: the host's own IPv4 connections to 8083 are refused, as the
table must say too.
And `check` warns about the ufw-style bypass of 8080, naming the DNAT rule, the INPUT policy
and up0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest

from netdiag.collect import collect_snapshot, discovery, docker
from netdiag.flows import expected
from tests.conftest import sh
from tests.docker_engine import IMAGE, DockerEngine, EngineUnavailable, build_busybox_image
from tests.integration.test_docker_healthy import UPLINK_NET, add_uplink
from tests.real_flows import listen

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]

HOST, SECOND, LAN, MACVLAN_IP = "198.19.7.2", "198.19.7.3", "198.19.7.1", "198.19.7.50"
SERVE = [IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]
TEST_PORTS = (22, 80, 81, 5433, 8080, 8081, 8082, 8083)

UFW_LIKE = ("-P INPUT DROP", "-A INPUT -i lo -j ACCEPT",
            "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT")
FIREWALLD_LIKE = """table inet ndt_firewalld {
  chain filter_INPUT {
    type filter hook input priority filter + 10; policy accept;
    ct state established,related accept
    iifname "lo" accept
    tcp dport 22 accept
    reject with icmpx admin-prohibited
  }
  chain filter_FORWARD {
    type filter hook forward priority filter + 10; policy accept;
    ct state established,related accept
    ct status dnat accept
    iifname "lo" accept
    reject with icmpx admin-prohibited
  }
}
"""

# A target is [address, port] (TCP) or [address, port, "udp"]. TCP answers with a connection
# or a reset; UDP with the listener's echo or ICMP port unreachable (or a firewall's reject):
# "silent" lists those that gave neither within 1.5 s (a drop), so that a test can say how
# many of its negatives were waited for.
SCAN = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
targets = json.loads(sys.argv[1])
def knock(target):
    udp = target[2:] == ["udp"]
    s = socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET,
                      socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    s.settimeout(1.5)
    try:
        s.connect((target[0], target[1]))
        if udp:
            s.send(b"netdiag")
            s.recv(512)
        return "answered"
    except TimeoutError:
        return "silent"
    except OSError:
        return "refused"
    finally:
        s.close()
with ThreadPoolExecutor(max(1, min(len(targets), 512))) as pool:  # one wait for every drop
    found = list(pool.map(knock, targets))
print(json.dumps({kind: [t for t, k in zip(targets, found) if k == kind]
                  for kind in ("answered", "silent")}))
"""


@pytest.fixture(scope="module", params=("20.10", "28"), ids=("docker20", "docker28"))
def host(request):
    from tests.docker_engine import unavailable_reason

    reason = unavailable_reason(request.param)
    if reason:
        pytest.skip(reason)
    with ExitStack() as stack:
        engine = DockerEngine("xp", version=request.param)
        stack.callback(engine.stop)
        try:
            engine.create_netns()
            add_uplink(stack, engine)
            engine.start()
        except EngineUnavailable as exc:
            pytest.skip(f"dockerd cannot run here: {exc}")
        build_busybox_image(engine)
        lan = f"{engine.netns}-gw"[:40]
        stack.callback(_end_listeners, engine)
        for server in workload(engine, lan):
            stack.callback(server.wait)
            stack.callback(server.kill)
        yield engine, lan


def workload(engine: DockerEngine, lan: str) -> list[subprocess.Popen]:
    """The containers and the host's listeners; returns the UDP echo listeners it started
    in the containers' namespaces, for the caller to end."""
    sh(f"ip -n {engine.netns} addr add {SECOND}/24 dev up0")
    engine.docker("run", "-d", "--name", "pub-all", "-p", "8080:80", "-p", "5353:53/udp",
                  *SERVE)
    engine.docker("run", "-d", "--name", "pub-lo", "-p", "127.0.0.1:8081:80", *SERVE)
    engine.docker("run", "-d", "--name", "pub-one", "-p", f"{SECOND}:8082:80", *SERVE)
    engine.docker("network", "create", "-d", "macvlan", "--subnet", UPLINK_NET.format(0),
                  "--gateway", LAN, "-o", "parent=up0", "mv")
    engine.docker("run", "-d", "--name", "mv-app", "--network", "mv", "--ip", MACVLAN_IP,
                  *SERVE)
    if engine.version != "20.10":
        engine.docker("network", "create", "--subnet", "10.77.0.0/24", "-o",
                      "com.docker.network.bridge.gateway_mode_ipv4=routed", "rt")
        engine.docker("run", "-d", "--name", "routed", "--network", "rt", "-p", "8083:80",
                      IMAGE, "sh", "-c", "httpd -p 81 -h /www && exec httpd -f -p 80 -h /www")
    for name in ("pub-all", "pub-lo", "pub-one", "mv-app") + (
            ("routed",) if engine.version != "20.10" else ()):
        engine.wait_until_serving(name)
    # UDP: an echo on 53 in pub-all (published as 5353/udp) and in mv-app (on the wire), run
    # from here in their network namespaces (busybox has no UDP echo server).
    servers = [listen(f"/proc/{engine.inspect(name)['State']['Pid']}/ns/net", udp=(53,))
               for name in ("pub-all", "mv-app")]
    # The LAN routes the bridge networks to the host (a router with static routes would).
    for subnet in engine.docker("network", "inspect", "--format",
                                "{{.Driver}} {{range .IPAM.Config}}{{.Subnet}}{{end}}",
                                "bridge", *(["rt"] if engine.version != "20.10" else [])
                                ).split("\n"):
        if subnet.startswith("bridge "):
            sh(f"ip -n {lan} route add {subnet.split()[1]} via {HOST}")
    for port in (22, 5433):  # the host's own services: ssh (allowed) and one INPUT closes
        engine.in_netns(f"nohup python3 -c 'import socket,time; s=socket.socket(); "
                        f"s.bind((\"0.0.0.0\", {port})); s.listen(); time.sleep(3600)' "
                        ">/dev/null 2>&1 &")
    deadline = time.monotonic() + 10
    while engine.in_netns("ss -Hltn '( sport = :22 or sport = :5433 )'").count("LISTEN") < 2:
        assert time.monotonic() < deadline, "the host's listeners did not start"
        time.sleep(0.1)
    return servers


def _end_listeners(engine: DockerEngine) -> None:
    for pid in sh(f"ip netns pids {engine.netns}", check=False).split():
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read() if pid.isdigit() else b""
        except FileNotFoundError:  # it ended since it was listed (seen: at teardown)
            continue
        if b"socket.socket()" in cmdline:  # only the listeners this test started
            sh(f"kill {pid}", check=False)


def firewall(engine: DockerEngine, kind: str, on: bool) -> None:
    if kind in ("iptables-legacy", "iptables-nft"):
        if on:
            for rule in UFW_LIKE:
                engine.in_netns(f"{kind} {rule}")
        else:
            engine.in_netns(f"{kind} -P INPUT ACCEPT")
            for rule in reversed(UFW_LIKE[1:]):
                engine.in_netns(f"{kind} {rule.replace('-A', '-D', 1)}")
    elif on:
        subprocess.run(["nsenter", f"--net={engine.netns_path}", "nft", "-f", "-"],
                       input=FIREWALLD_LIKE.encode(), check=True, capture_output=True)
    else:
        engine.in_netns("nft delete table inet ndt_firewalld")


def netdiag(engine: DockerEngine, *args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "netdiag", *args, "--docker", engine.host],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, done.stdout


def exposure_from_up0(engine: DockerEngine) -> tuple[set, set, dict, list[dict]]:
    """(what the table says an up0 client reaches as (address, port, protocol), every
    (address, port) it names, each container's risk by name and port, every way in of the
    engine's host as the JSON gives it)."""
    import os

    host_id = os.stat(engine.netns_path).st_ino
    _, out = netdiag(engine, "exposure", "--ns", engine.netns_path, "--format", "json")
    reached, named, risks, doors = set(), set(), {}, []
    for entry in json.loads(out)["exposures"]:
        risks[(entry["owner"].removeprefix("container "), entry["socket"]["port"])] = \
            entry["risk"]
        for door in entry["reached"]:
            named.add((door["address"], door["port"]))
            if door["host"] == host_id:
                doors.append(door)
            if door["from"] == "uplink" and door["where"] == "up0" and \
                    door["host"] == host_id:
                reached.add((door["address"], door["port"], door["protocol"]))
    return reached, named, risks, doors


def scan(lan: str, targets: set, silent: list | None = None) -> set:
    """The targets that answered, scanned from the namespace `lan` (a name in /run/netns,
    or a path such as a container's /proc/PID/ns/net); those that gave no answer at all are
    added to `silent`."""
    inside = ["nsenter", f"--net={lan}"] if lan.startswith("/") else ["ip", "netns", "exec", lan]
    done = subprocess.run([*inside, sys.executable, "-c", SCAN,
                           json.dumps(sorted(targets))], capture_output=True, text=True,
                          timeout=120, check=True)
    found = json.loads(done.stdout)
    if silent is not None:
        silent += [tuple(t) for t in found["silent"]]
    return {tuple(t) for t in found["answered"]}


def scan_tcp_udp(lan: str, addresses: set, ports: set, silent: list | None = None
                 ) -> set[tuple[str, int, str]]:
    """(address, port, protocol) of every address × port that answered over TCP or UDP."""
    targets = {(a, p) for a in addresses for p in ports} | \
        {(a, p, "udp") for a in addresses for p in ports}
    return {(t[0], t[1], "udp" if t[2:] else "tcp") for t in scan(lan, targets, silent)}


def agree(label: str, answered: set, reached: set, compared: int, silent: list) -> None:
    """The scan's agreement with the table, printed for the log; a mismatch fails, named."""
    mismatches = answered ^ reached
    print(f"\n{label}: {compared} address × port × protocol compared, {len(answered)} "
          f"answered ({len(silent)} unanswered, waited for), {len(mismatches)} mismatches")
    assert not mismatches, (f"answered, not in the table: {sorted(answered - reached)}; "
                            f"in the table, not answered: {sorted(reached - answered)}")


def networks_of(engine: DockerEngine) -> dict[str, tuple[int, list[tuple[str, str]]]]:
    """Each running container's pid and (network, address) pairs, by its name."""
    found = {}
    names = engine.docker("ps", "--format", "{{.Names}}").split()
    for name, state in zip(names, json.loads(engine.docker("inspect", *names))):
        networks = state["NetworkSettings"]["Networks"]
        found[name] = (state["State"]["Pid"], [(network, n["IPAddress"]) for network, n
                                               in networks.items() if n["IPAddress"]])
    return found


def inside_scans(engine: DockerEngine, containers: dict, doors: list[dict], addresses: set,
                 ports: set) -> list[tuple[str, set, set, int, list]]:
    """From inside the host, each scan beside what the table says: the host itself to every
    address (127.0.0.1 too) — its "from the host" rows — and one container of each network
    (`containers` as networks_of gives them), as the table takes one, to the host's own
    addresses and the other networks' containers' — its rows from that network. Scanned at
    once (one wait for every drop): (label, answered, the table's, compared, unanswered)."""
    plans = [("host", engine.netns_path, addresses | {"127.0.0.1"}, ("host", None))]
    hosts = {line.split()[3].split("/")[0] for line in
             engine.in_netns("ip -4 -o addr show scope global").splitlines()}
    done: set[str] = set()
    for name, (pid, mine) in sorted(containers.items()):
        own = {network for network, _ in mine}
        targets = hosts | {address for other, (_, theirs) in containers.items()
                           if other != name for network, address in theirs
                           if network not in own}
        for network in sorted(own - done):
            done.add(network)
            plans.append((f"{name} on {network}", f"/proc/{pid}/ns/net", targets,
                          ("network", network)))
    silent: dict[str, list] = {label: [] for label, *_ in plans}
    with ThreadPoolExecutor(len(plans)) as pool:
        answered = list(pool.map(lambda plan: scan_tcp_udp(plan[1], plan[2], ports,
                                                           silent[plan[0]]), plans))
    found = []
    for (label, _, targets, (source, where)), scanned in zip(plans, answered):
        table = {(d["address"], d["port"], d["protocol"]) for d in doors
                 if d["from"] == source and (where is None or d["where"] == where)
                 and d["address"] in targets}
        found.append((label, scanned, table, len(targets) * len(ports) * 2, silent[label]))
    return found


@pytest.mark.parametrize("kind", ("iptables-legacy", "iptables-nft", "nftables-firewalld"))
def test_the_exposure_table_matches_a_real_scan_port_for_port(host, kind):
    engine, lan = host
    firewall(engine, kind, on=True)
    try:
        reached, named, risks, doors = exposure_from_up0(engine)
        containers = networks_of(engine)
        addresses = {HOST, SECOND, MACVLAN_IP} | \
            {address for _, theirs in containers.values() for _, address in theirs} | \
            {address for address, _ in named if not address.startswith("127.")}
        ports = set(TEST_PORTS) | {port for _, port in named}
        silent: list = []
        # From the LAN, and from inside the host too (the host itself, each container's
        # network), at once.
        with ThreadPoolExecutor(2) as pool:
            lan_scan = pool.submit(scan_tcp_udp, lan, addresses, ports, silent)
            inside = pool.submit(inside_scans, engine, containers, doors, addresses, ports)
            answered = lan_scan.result()
        agree(f"docker {engine.version} {kind}", answered, reached,
              len(addresses) * len(ports) * 2, silent)
        scans = inside.result()
        # 127.0.0.1:8081 from the host itself: OUTPUT's jump to DOCKER skips 127.0.0.0/8, so
        # docker-proxy's own socket takes it (the userland proxy, CIS 2.16)
        assert ("127.0.0.1", 8081, "tcp") in scans[0][1]
        assert any((d["from"], d["address"], d["port"], d["via"]) ==
                   ("host", "127.0.0.1", 8081, "proxy") for d in doors)
        for label, scanned, table, compared, unanswered in scans:
            agree(f"docker {engine.version} {kind} from {label}", scanned, table, compared,
                  unanswered)
        # What the workload means, so a model and a scan that agree on nothing cannot pass.
        assert {(HOST, 8080, "tcp"), (SECOND, 8082, "tcp"), (HOST, 22, "tcp"),
                (MACVLAN_IP, 80, "tcp"), (HOST, 5353, "udp"), (MACVLAN_IP, 53, "udp")} \
            <= answered
        assert not {(HOST, 8081, "tcp"), (HOST, 8082, "tcp"), (HOST, 5433, "tcp")} & answered
        # a container reaches the host's own ssh (INPUT allows 22), not its closed 5433
        (bridge,) = [found for label, found, *_ in scans if label == "pub-all on bridge"]
        assert (HOST, 22, "tcp") in bridge and (HOST, 5433, "tcp") not in bridge
        assert risks[("pub-all", 80)] == "bypass" and risks[("mv-app", 80)] == "unpublished"
        if engine.version == "20.10":  # FORWARD accepts the container port at its address
            assert risks[("pub-lo", 80)] == ("internal" if kind == "nftables-firewalld"
                                             else "unpublished")
        else:  # routed: the published port at the container's address (firewalld's
            # forward chain rejects it: not DNATed), the other port closed
            assert risks[("routed", 80)] == ("internal" if kind == "nftables-firewalld"
                                             else "public")
            assert risks[("routed", 81)] in ("internal", "closed")
        # `check` with every rule, as a user runs it: the bypass among the rest, named
        code, out = netdiag(engine, "check", "--ns", engine.netns_path, "--format", "json")
        findings = json.loads(out)["findings"]
        bypass = [f for f in findings if f["rule"] == "exposure-firewall-bypass"
                  and f["subject"] == "tcp/8080"]
        assert code == 1 and bypass, out
        message = bypass[0]["message"]
        assert "DNAT" in bypass[0]["evidence"][0]["text"] and "nat/DOCKER" in message
        assert "up0" in message
        assert ("ndt_firewalld" if kind == "nftables-firewalld" else "INPUT policy DROP") \
            in message
        unpublished = {f["namespace"]["label"] for f in findings
                       if f["rule"] == "exposure-unpublished-port"}
        assert any("mv-app" in label for label in unpublished), out
    finally:
        firewall(engine, kind, on=False)


# Docker's published UDP port, promised and judged (netdiag/flows/expected.py)
CLIENT = f"a client beyond the host reaches pub-all's published port {HOST}:5353/udp"
HAIRPIN = f"pub-all reaches its own published port {HOST}:5353/udp"


def _judged(engine) -> tuple[set[str], list[tuple[str, str]]]:
    """(what the engine's expected flows promise, (promise, disposition) of each broken)."""
    intent = docker.read([engine.host])
    snapshot = collect_snapshot(discovery.discover(engines=intent.engines), intent=intent)
    promised = {e.what for e in expected.expectations(snapshot)}
    return promised, [(o.expectation.what, str(o.result.disposition))
                      for o in expected.judge(snapshot)]


def test_a_published_udp_port_is_promised_kept_and_judged_blocked_with_the_kernel(host):
    """Docker's published UDP port on both engines: pub-all publishes `-p 5353:53/udp`, where
    an echo answers on 53. Healthy, the expected flows promise the port to a client beyond the
    host and to pub-all itself and keep both, and a real datagram from the LAN is answered;
    once DOCKER-USER drops the datagrams forwarded to pub-all (after the DNAT: its address and
    port 53), the client's promise is judged denied and the real datagram goes unanswered."""
    engine, lan = host
    target = {(HOST, 5353, "udp")}
    promised, broken = _judged(engine)
    assert {CLIENT, HAIRPIN} <= promised and broken == []
    assert scan(lan, target) == target
    address = engine.container_ip("pub-all", "bridge")
    drop = f"DOCKER-USER -p udp -d {address} --dport 53 -j DROP"
    engine.in_netns(f"iptables -I {drop}")
    try:
        _, broken = _judged(engine)
        assert broken == [(CLIENT, "denied")]
        assert scan(lan, target) == set()
    finally:
        engine.in_netns(f"iptables -D {drop}")
