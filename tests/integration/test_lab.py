"""The lab builder in real namespaces: bundled labs work end to end, teardown leaves nothing
behind (also after kill -9), invalid files build nothing, and from-snapshot round-trips."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from netdiag.collect import collect_snapshot
from netdiag.collect.discovery import discover
from netdiag.lab import build, teardown
from netdiag.lab.from_snapshot import topology_from
from netdiag.netns import LAB_DIR
from netdiag.topology import journal, schema
from tests.conftest import sh

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "netdiag" / "lab" / "examples"
NETDIAG = [sys.executable, "-m", "netdiag"]


def lab_name() -> str:
    return f"ndt-{secrets.token_hex(3)}"


def leftovers(name: str) -> list[str]:
    """Everything a lab could leave behind: namespaces, resolv.conf folders, journal files."""
    found = [n for n in os.listdir("/run/netns") if n.startswith(f"{name}-")] \
        if os.path.isdir("/run/netns") else []
    found += [f"/etc/netns/{n}" for n in os.listdir("/etc/netns") if n.startswith(f"{name}-")] \
        if os.path.isdir("/etc/netns") else []
    found += [str(p) for p in LAB_DIR.glob(f"{name}.*")] if LAB_DIR.is_dir() else []
    return found


@pytest.fixture
def lab():
    """Builds labs from topologies (renamed so tests never collide) and always removes them."""
    names: list[str] = []

    def up(topology: schema.Topology) -> journal.Journal:
        renamed = topology.model_copy(update={"name": lab_name()})
        names.append(renamed.name)
        return build.up(renamed)

    yield up
    for name in names:
        teardown.down(name)


def http_get(netns: str, url: str) -> str:
    code = ("import urllib.request,sys; "
            f"sys.stdout.write(urllib.request.urlopen({url!r}, timeout=5).read().decode())")
    return sh(f"ip netns exec {netns} {sys.executable} -c {json.dumps(code)}")


def ask_web(j: journal.Journal, published: bool) -> str:
    """The pets web front end, asked from outside (the underlay) when it publishes a port."""
    if published:
        return http_get(j.nodes["ul"], "http://10.99.0.1:8080/")
    return http_get(j.nodes["web"], "http://127.0.0.1:5000/")


@pytest.mark.parametrize("example, published", [
    ("pets-bridge", True), ("pets-multihost", True), ("pets-overlay", True),
    ("pets-macvlan", False)])
def test_bundled_lab_serves_pets_and_leaves_nothing_behind(lab, example, published):
    j = lab(schema.load(EXAMPLES / f"{example}.yaml"))
    pids = [p.pid for p in j.processes]
    first, second = ask_web(j, published), ask_web(j, published)
    assert first.startswith("pets: 1 visits") and second.startswith("pets: 2 visits"), first
    # A healthy lab is quiet in `check --all`.
    ours = {ref.id for ref in discover() if ref.lab == j.name or ref.name.startswith(f"{j.name}-")}
    loud = [f for f in _check_json("--all") if f["severity"] != "info"
            and ({f["namespace"]["id"], *(r["id"] for r in f["related"])} & ours)]
    assert loud == [], loud
    teardown.down(j.name)
    assert leftovers(j.name) == []
    assert all(journal.start_time(pid) == -1 for pid in pids)


def test_lab_nodes_are_labelled_in_namespace_discovery(lab):
    j = lab(schema.load(EXAMPLES / "pets-bridge.yaml"))
    labels = {ref.name: ref.label for ref in discover()}
    assert labels[j.nodes["web"]] == f"{j.name}/web"
    assert labels[j.nodes["host1"]] == f"{j.name}/host1"


def test_a_lab_overlays_namespaces_are_named_after_its_network(lab):
    """The overlay driver's own namespaces (`<host ns>-<n>-<network id>`) carry the lab, the
    host node and the network they serve, and `lab status`/`lab down` count them the same."""
    j = lab(schema.load(EXAMPLES / "pets-overlay.yaml"))
    nested = teardown.nested_namespaces(j)
    assert len(nested) == 2
    labels = {ref.name: ref.label for ref in discover()}
    assert sorted(labels[name] for name in nested) == [f"{j.name}/host1 network petnet",
                                                       f"{j.name}/host2 network petnet"]
    status = subprocess.run([*NETDIAG, "lab", "status", j.name], capture_output=True,
                            text=True, check=True).stdout
    assert f"{len(j.nodes)} nodes:" in status and "and 2 namespaces the drivers made" in status
    down = subprocess.run([*NETDIAG, "lab", "down", j.name], capture_output=True, text=True,
                          check=True).stdout
    assert f"removed: {len(j.nodes)} nodes ({len(j.namespaces) + 2} namespaces" in down, down


def test_diff_matches_a_rebuilt_labs_namespaces_by_label():
    """A lab taken down and built again has new namespaces (new inodes, new overlay
    namespace names): diff pairs every one of them by its label, overlays included."""
    from netdiag.collect import collect_snapshot
    from netdiag.collect.docker import Intent
    from netdiag.diff import diff

    topology = schema.load(EXAMPLES / "pets-overlay.yaml").model_copy(
        update={"name": lab_name()})

    def snapshot():
        refs = [r for r in discover(engines=()) if r.lab == topology.name]
        return collect_snapshot(refs, intent=Intent())

    build.up(topology)
    try:
        before = snapshot()
        # Held open, the old namespaces outlive `down` and their inode numbers cannot be
        # handed to the rebuilt ones (the kernel reuses freed numbers).
        held = [os.open(s.ref.path, os.O_RDONLY) for s in before.namespaces]
    finally:
        teardown.down(topology.name)
    try:
        build.up(topology)
        try:
            after = snapshot()
        finally:
            teardown.down(topology.name)
    finally:
        for fd in held:
            os.close(fd)
    assert {s.ref.id for s in before.namespaces}.isdisjoint(s.ref.id for s in after.namespaces)
    assert len(before.namespaces) == len(after.namespaces) == 7
    unmatched = [c for c in diff(before, after) if c.section == "namespace"]
    assert unmatched == [], unmatched


MIXED = """
name: {name}
hosts: [{{name: host1}}, {{name: host2}}]
networks:
  - {{name: ov, driver: overlay, subnet: 10.74.0.0/24}}
  - {{name: local, driver: bridge, subnet: 10.75.0.0/24, hosts: [host1]}}
containers:
  - {{name: web, host: host1, networks: [ov, local], command: {{app: http, port: 80}}}}
  - {{name: c2, host: host2, networks: [ov], command: {{app: http, port: 80}}}}
  - {{name: l1, host: host1, networks: [local], command: {{app: http, port: 80}}}}
"""


def test_a_container_on_an_overlay_and_a_bridge_network(lab):
    """The overlay's second leg (to docker_gwbridge) takes eth1, so the bridge network's
    interface is eth2 (it used to collide with eth1); and docker_gwbridge gets a bridge
    network's FORWARD accepts, so a host whose bridge network set FORWARD's policy to DROP
    still lets overlay containers out (check stays quiet)."""
    j = lab(schema.parse(MIXED.format(name="x")))
    links = json.loads(sh(f"ip -n {j.nodes['web']} -j addr"))
    by_name = {link["ifname"]: [a["local"] for a in link["addr_info"] if a["family"] == "inet"]
               for link in links}
    assert by_name["eth0"][0].startswith("10.74.0.") and by_name["eth2"][0].startswith("10.75.0.")
    assert by_name["eth1"], by_name  # the gateway bridge's leg
    assert http_get(j.nodes["c2"], f"http://{by_name['eth0'][0]}/").strip() == "web"
    assert http_get(j.nodes["l1"], f"http://{by_name['eth2'][0]}/").strip() == "web"
    ours = {ref.id for ref in discover() if ref.lab == j.name or ref.name.startswith(f"{j.name}-")}
    loud = [f for f in _check_json("--all") if f["severity"] != "info"
            and ({f["namespace"]["id"], *(r["id"] for r in f["related"])} & ours)]
    assert loud == [], loud


SMALL = """
name: {name}
networks:
  - name: net
    subnet: 172.29.0.0/24
containers:
  - name: a
    networks: [net]
    publish: ["8081:80"]
  - name: b
    networks: [net]
"""


def test_fifty_up_down_cycles_leave_nothing_behind():
    name = lab_name()
    topology = schema.parse(SMALL.format(name=name))
    try:
        for _ in range(50):
            build.up(topology)
            teardown.down(name)
        assert leftovers(name) == []
    finally:
        teardown.down(name)


def _start_big_lab(tmp_path) -> tuple[str, Path, subprocess.Popen]:
    """`lab up` of a 60-container lab, returned once it is half-built."""
    name = lab_name()
    big = {"name": name, "networks": [{"name": "net", "subnet": "172.29.0.0/24"}],
           "containers": [{"name": f"c{i}", "networks": ["net"]} for i in range(60)]}
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(big))
    up = subprocess.Popen([*NETDIAG, "lab", "up", str(path)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(leftovers(name)) < 10:
        time.sleep(0.01)
    assert up.poll() is None, "lab up finished before it could be stopped"
    return name, path, up


def test_kill_9_during_up_leaves_a_half_built_lab_that_ls_names_and_replace_rebuilds(tmp_path):
    name, path, up = _start_big_lab(tmp_path)
    try:
        up.send_signal(signal.SIGKILL)
        up.wait()
        assert len(leftovers(name)) >= 10  # it really was half-built
        ls = subprocess.run([*NETDIAG, "lab", "ls"], capture_output=True, text=True)
        assert f"{name} " in ls.stdout and "half-built" in ls.stdout
        assert f"netdiag lab down {name}" in ls.stderr
        again = subprocess.run([*NETDIAG, "lab", "up", str(path)], capture_output=True,
                               text=True)
        assert again.returncode == 2
        assert "half-built" in again.stderr and "--replace" in again.stderr
        assert "already up" not in again.stderr
        replaced = subprocess.run([*NETDIAG, "lab", "up", str(path), "--replace"],
                                  capture_output=True, text=True)
        assert replaced.returncode == 0, replaced.stderr
        assert journal.load(name).condition == "up"
    finally:
        down = subprocess.run([*NETDIAG, "lab", "down", name], capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert leftovers(name) == []


def test_ctrl_c_during_up_rolls_back_and_says_so(tmp_path):
    name, _, up = _start_big_lab(tmp_path)
    try:
        up.send_signal(signal.SIGINT)
        _, err = up.communicate(timeout=60)
        assert up.returncode == 130
        assert err.strip().splitlines()[-1].endswith("everything it had built was removed")
        assert "Traceback" not in err
        assert leftovers(name) == []
    finally:
        teardown.down(name)


INVALID = {
    "not YAML": ("name: x\n  bad: [\n", ":2:6: not valid YAML: mapping values are not allowed"),
    "not a mapping": ("- a\n- b\n", "not a topology: expected a mapping"),
    "bad lab name": ("name: Bad_Name\n", ":1: name:"),
    "unknown key": ("name: x\nnetwork: []\n", ":2: network: Extra inputs"),
    "unknown driver": ("name: x\nnetworks:\n  - name: n\n    driver: ipvlan\n",
                       ":4: networks.0.driver"),
    "host bits in subnet": ("name: x\nnetworks:\n  - name: n\n    subnet: 10.0.0.1/24\n",
                            "networks.0.subnet: not a subnet"),
    "gateway outside subnet": ("name: x\nnetworks:\n  - name: n\n    subnet: 10.0.0.0/24\n"
                               "    gateway: 10.1.0.1\n", "outside subnet"),
    "duplicate network": ("name: x\nnetworks:\n  - name: n\n  - name: n\n", "defined twice"),
    "unknown network": ("name: x\ncontainers:\n  - name: c\n    networks: [nope]\n",
                        ":4: containers.0.networks.0.network: unknown network 'nope'"),
    "unknown host": ("name: x\ncontainers:\n  - name: c\n    host: h9\n",
                     "containers.0.host: unknown host"),
    "address outside subnet": ("name: x\nnetworks:\n  - name: n\n    subnet: 10.0.0.0/24\n"
                               "containers:\n  - name: c\n    networks:\n      - network: n\n"
                               "        ip: 10.9.9.9\n", "containers.0.networks.0.ip"),
    "bad publish": ("name: x\ncontainers:\n  - name: c\n    publish: ['80']\n",
                    "containers.0.publish"),
    "port out of range": ("name: x\ncontainers:\n  - name: c\n    publish: ['99999:80']\n",
                          "containers.0.publish.0.host_port"),
    "unknown fault kind": ("name: x\nfaults:\n  - kind: meteor\n    node: host1\n",
                           "faults.0: Input tag 'meteor'"),
    "fault on unknown node": ("name: x\nfaults:\n  - kind: sysctl\n    node: nobody\n"
                              "    name: net.ipv4.ip_forward\n    value: '0'\n",
                              "faults.0.node: unknown host or container"),
    "mtu too small": ("name: x\nfaults:\n  - kind: mtu\n    node: host1\n    link: eth0\n"
                      "    mtu: 10\n", "faults.0.mtu"),
    "bridge on two hosts": ("name: x\nhosts: [{name: a}, {name: b}]\nnetworks:\n  - name: n\n"
                            "    hosts: [a, b]\n", "a bridge network lives on one host"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_topology_gives_one_line_exit_2_and_builds_nothing(tmp_path, case):
    text, expected = INVALID[case]
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    done = subprocess.run([*NETDIAG, "lab", "up", str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert expected in done.stderr, done.stderr
    assert leftovers("x") == []  # every case's lab is called x: nothing of it was built


def test_every_error_of_a_topology_is_reported_at_once(tmp_path):
    """Each field's error together; once the fields are right, every broken reference."""
    path = tmp_path / "topology.yaml"
    path.write_text("name: x\nnetworks:\n  - name: n\n    subnet: 10.0.0.1/24\n"
                    "containers:\n  - name: c\n    publish: ['99999:80']\n")
    done = subprocess.run([*NETDIAG, "lab", "up", str(path)], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"netdiag: error: {path}: 2 errors:", lines
    assert ":4: networks.0.subnet: not a subnet" in lines[1], lines
    assert ":7: containers.0.publish.0.host_port" in lines[2], lines
    path.write_text("name: x\ncontainers:\n  - name: c\n    host: h9\n    networks: [nope]\n"
                    "faults:\n  - kind: sysctl\n    node: nobody\n"
                    "    name: net.ipv4.ip_forward\n    value: '0'\n")
    done = subprocess.run([*NETDIAG, "lab", "up", str(path)], capture_output=True, text=True)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and lines[0].endswith(": 3 errors:"), lines
    assert [line.split(": ")[1] for line in lines[1:]] == [
        "containers.0.host", "containers.0.networks.0.network", "faults.0.node"], lines
    assert leftovers("x") == []


def _essentials(snapshot, lab: str) -> dict:
    """Networks (subnets), addresses, MTUs and published ports, with names made lab-neutral."""
    result = {}
    for state in snapshot.namespaces:
        if state.ref.lab != lab:
            continue
        links = {link.name: link.mtu for link in state.links
                 if not link.name.startswith(("veth", "br-"))}
        addrs = sorted(a.cidr for a in state.addresses if a.family == 4)
        dnat = sorted(f"{r.match('dport').value}->{r.target_option('to-destination')}"
                      for r in state.firewall.iptables_rules
                      if r.target == "DNAT" and r.match("dport") and r.chain == "DOCKER")
        result[state.ref.node] = (links, addrs, dnat)
    return result


def test_from_snapshot_round_trip_reproduces_the_lab(lab):
    first = lab(schema.load(EXAMPLES / "pets-bridge.yaml"))
    refs = [ref for ref in discover() if ref.lab == first.name]
    snapshot = collect_snapshot(refs)
    name = lab_name()
    data = topology_from(snapshot, name)
    second = lab(schema.Topology.model_validate(data))
    refs2 = [ref for ref in discover() if ref.lab == second.name]
    snapshot2 = collect_snapshot(refs2)
    assert _essentials(snapshot2, second.name) == _essentials(snapshot, first.name)
    assert _essentials(snapshot, first.name)["host1"][2] == ["8080->172.28.0.3:5000"]


def _check_json(*args: str) -> list[dict]:
    done = subprocess.run([*NETDIAG, "check", *args, "--format", "json"], capture_output=True,
                          text=True)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)["findings"]


def _every_node_sees(j: journal.Journal, rule: str) -> None:
    """Scope is a superset, never a miss: `check --ns` on each node of a broken lab reports
    the lab's fault, and nothing that `check --all` does not report."""
    everything = _check_json("--all")
    for node in j.nodes:
        focused = _check_json("--ns", f"{j.name}/{node}")
        assert rule in {f["rule"] for f in focused}, f"check --ns {node} misses {rule}"
        assert all(f in everything for f in focused), f"check --ns {node} disagrees with --all"


def rule_code(name: str) -> str:
    from netdiag.checks import registry

    return registry.find(name).RULE.code.removeprefix("ND")


def _check_lab(j: journal.Journal) -> list[dict]:
    names = j.namespaces + teardown.nested_namespaces(j)
    args = [a for ns in names for a in ("--ns", ns)]
    done = subprocess.run([*NETDIAG, "check", *args, "--format", "json"], capture_output=True,
                          text=True)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)["findings"]


@pytest.mark.parametrize("example, rule, flags, published", [
    ("broken-mtu", "mtu-mismatch", [], False),
    ("broken-fdb", "vxlan-fdb-stale", [], False),
    ("broken-ports", "port-contention", ["--unsafe"], True),
])
def test_broken_lab_shows_exactly_its_rule_and_repair_heals_it(lab, example, rule, flags,
                                                                 published):
    j = lab(schema.load(EXAMPLES / f"{example}.yaml"))
    assert {f["rule"] for f in _check_lab(j)} == {rule}
    _every_node_sees(j, rule)
    plan = subprocess.run([*NETDIAG, "repair", "--lab", j.name, "--color", "always"],
                          capture_output=True, text=True)
    assert f"ND{rule_code(rule)} {rule}\x1b[0m" in plan.stdout, plan.stdout  # painted
    done = subprocess.run([*NETDIAG, "repair", "--lab", j.name, "--apply", *flags],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[applied]" in done.stdout and "After: 0 errors, 0 warnings" in done.stdout
    assert _check_lab(j) == []
    assert ask_web(j, published).startswith("pets:")


def test_overlapping_subnets_lab_is_diagnosed_and_its_repair_is_manual(lab):
    j = lab(schema.load(EXAMPLES / "broken-overlap.yaml"))
    findings = _check_lab(j)
    _every_node_sees(j, "overlapping-subnets")
    assert [(f["rule"], f["repair"]["safety"]) for f in findings] == \
        [("overlapping-subnets", "manual")]
    done = subprocess.run([*NETDIAG, "repair", "--lab", j.name, "--apply"], capture_output=True,
                          text=True)
    assert done.returncode == 1 and "repair (manual)" in done.stdout
    assert [f["rule"] for f in _check_lab(j)] == ["overlapping-subnets"]  # nothing was touched


def test_lab_promises_its_programs_flows(lab):
    """A lab's intent gives expected flows: web reaches its backend db:6379 (as the lab's DNS
    names it), and each program answers a neighbour on its network. A firewall rule on the
    store's node (a DROP on its port, as a host firewall written for another service would
    leave it) breaks the front end; `check` names the flow, the node and the rule, and `path`
    resolves the lab's names."""
    j = lab(schema.load(EXAMPLES / "pets-bridge.yaml"))
    db = next(node for node in j.nodes if node.startswith("db"))
    rule = "INPUT -p tcp --dport 6379 -j DROP"
    sh(f"ip netns exec {j.nodes[db]} iptables -I {rule}")
    try:
        with pytest.raises(AssertionError, match="502: Bad Gateway"):
            ask_web(j, published=True)  # web answers, its store does not
        flows = [f for f in _check_lab(j) if f["rule"] == "expected-flow-blocked"]
        messages = sorted(f["message"] for f in flows)
        assert len(flows) == 1, messages  # web's neighbour flow to db is that same flow
        assert any(m.startswith("web reaches its backend db:6379 (") for m in messages), messages
        assert all(f"denied in {j.name}/{db} at filter/INPUT/1" in m for m in messages), \
            messages
        assert all(any(e["text"].startswith(f"lab {j.name}: ") for e in f["evidence"])
                   for f in flows)
        done = subprocess.run([*NETDIAG, "path", f"{j.name}/web", "db:6379"],
                              capture_output=True, text=True)
        assert done.returncode == 1 and f"(lab {j.name}: db on " in done.stdout, done.stdout
    finally:
        sh(f"ip netns exec {j.nodes[db]} iptables -D {rule}")
    assert ask_web(j, published=True).startswith("pets:")
    assert not [f for f in _check_lab(j) if f["rule"] == "expected-flow-blocked"]
