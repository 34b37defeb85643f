"""`netdiag path` names the kernel's conntrack entry of the flow in the hop where conntrack
decides: a client, a router that DNATs its port 8080 to a server's 80, and the server, all
namespaces of this test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import real_flows
from tests.conftest import sh
from tests.real_flows import listen

pytestmark = pytest.mark.integration


def path(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netdiag", "path", *args],
                          capture_output=True, text=True, timeout=120)


def test_the_dnat_hop_names_the_flows_conntrack_entry(netns_factory):
    client, router, server = netns_factory("pc"), netns_factory("pr"), netns_factory("ps")
    tag = client[-9:-3]
    sh(f"ip link add c{tag} netns {client} type veth peer name r{tag} netns {router}")
    sh(f"ip link add s{tag} netns {server} type veth peer name t{tag} netns {router}")
    for ns, dev, address in ((client, f"c{tag}", "10.96.0.1/24"),
                             (router, f"r{tag}", "10.96.0.254/24"),
                             (router, f"t{tag}", "10.97.0.254/24"),
                             (server, f"s{tag}", "10.97.0.2/24")):
        sh(f"ip -n {ns} addr add {address} dev {dev} && ip -n {ns} link set {dev} up")
    sh(f"ip -n {client} route add default via 10.96.0.254")
    sh(f"ip -n {server} route add default via 10.97.0.254")
    sh(f"ip netns exec {router} sysctl -qw net.ipv4.ip_forward=1")
    sh(f"ip netns exec {router} iptables -t nat -A PREROUTING -d 10.96.0.254 -p tcp "
       "--dport 8080 -j DNAT --to-destination 10.97.0.2:80")
    real_flows.wait_for_carriers([(router, f"r{tag}"), (router, f"t{tag}")])
    listener = listen(server, tcp=(80,))
    try:
        # Nothing sent yet: the router's table was read (the hop where conntrack decides has
        # the field) and holds nothing of the flow; the text says nothing more there.
        before = path(client, "10.96.0.254:8080", "--format", "json")
        assert before.returncode == 0, before.stdout + before.stderr
        hops = json.loads(before.stdout)["hops"]
        assert [(h["namespace"]["label"], h["conntrack"]) for h in hops if "conntrack" in h] \
            == [(router, [])], hops
        assert any("connection tracked as" in step["detail"] for step in hops[1]["steps"])

        probed = path(client, "10.96.0.254:8080", "--probe")
        assert probed.returncode == 0, probed.stdout + probed.stderr
        lines = probed.stdout.splitlines()
        (note,) = [n for n, line in enumerate(lines) if "conntrack holds" in line]
        hop = next(line for line in reversed(lines[:note]) if line.startswith("  ["))
        assert hop.startswith(f"  [{router}]"), probed.stdout
        assert lines[note - 1].split()[0] in ("conntrack", "nat"), probed.stdout  # its step
        assert "holds tcp 10.96.0.1:" in lines[note] and "→ 10.96.0.254:8080" in lines[note]
        assert "DNAT to 10.97.0.2:80" in lines[note] and ", replied" in lines[note], lines[note]

        # The same entry in the JSON, on the router's hop alone (the probe's connection is
        # still tracked: its entry lives for minutes).
        as_json = path(client, "10.96.0.254:8080", "--format", "json")
        assert as_json.returncode == 0, as_json.stdout + as_json.stderr
        found = json.loads(as_json.stdout)
        tracked = [(hop["namespace"]["label"], hop["conntrack"]) for hop in found["hops"]
                   if "conntrack" in hop]
        assert [label for label, _ in tracked] == [router], found["hops"]
        entries = tracked[0][1]
        assert entries and all(e["original"]["dst"] == "10.96.0.254" and
                               e["original"]["dport"] == 8080 for e in entries), entries
        assert entries[0]["dnat"] == {"from": "10.96.0.254:8080", "to": "10.97.0.2:80"}
        assert entries[0]["proto"] == "tcp" and entries[0]["replied"] is True
        assert all("conntrack" not in hop for hop in found["reply"]["hops"]
                   if hop["namespace"]["label"] == router)  # once per namespace
    finally:
        listener.kill()
        listener.wait()
