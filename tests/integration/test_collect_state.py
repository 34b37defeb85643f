"""The non-link collectors against what the standard tools say about the same namespace.

One namespace gets iptables rules through both backends (nft and legacy, IPv4 and IPv6),
Docker's embedded-DNS NAT rules, a native nftables table, a veth pair with per-interface
sysctls, an xfrm policy, an /etc/netns resolv.conf and a small server listening on TCP and
UDP. Each collector's result is compared with iptables-save, iptables-legacy-save,
`nft -j list ruleset`, `ss`, `sysctl` and `ip xfrm` run in that namespace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netdiag import helper
from netdiag.collect import COLLECTORS, collect_namespace, collect_snapshot, nftables
from netdiag.model import EmbeddedDns, NamespaceRef, NsKind
from tests.conftest import NetnsFactory, sh

pytestmark = pytest.mark.integration

TCP_PORT, UDP_PORT = 8765, 5354
SERVER = f"""
import socket, time
tcp4 = socket.socket()
tcp4.bind(("127.0.0.1", {TCP_PORT}))
tcp4.listen()
tcp6 = socket.socket(socket.AF_INET6)
tcp6.bind(("::1", {TCP_PORT + 1}))
tcp6.listen()
udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
udp6.bind(("::", {UDP_PORT}))
udp4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp4.bind(("0.0.0.0", {UDP_PORT + 1}))
print("ready", flush=True)
time.sleep(600)
"""

RESOLV_CONF = "nameserver 127.0.0.11\nsearch lab.example\noptions ndots:0 timeout:2\n"

SETUP = [
    # nft backend, IPv4: Docker-like nat rules, a quoted comment, multiport ranges, a policy
    "iptables-nft -t nat -N DOCKER",
    "iptables-nft -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
    "iptables-nft -t nat -A DOCKER ! -i ndta -p tcp -m tcp --dport 8080 "
    "-j DNAT --to-destination 172.18.0.2:80",
    "iptables-nft -A INPUT -p tcp -m multiport --dports 22,80:90 "
    "-m comment --comment 'admin \"ssh\" and web' -j ACCEPT",
    "iptables-nft -P FORWARD DROP",
    # Docker's embedded DNS rules, as a container on a user network has them
    "iptables-nft -t nat -N DOCKER_OUTPUT",
    "iptables-nft -t nat -A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT",
    "iptables-nft -t nat -A DOCKER_OUTPUT -d 127.0.0.11/32 -p tcp -m tcp --dport 53 "
    "-j DNAT --to-destination 127.0.0.11:41677",
    "iptables-nft -t nat -A DOCKER_OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 "
    "-j DNAT --to-destination 127.0.0.11:52066",
    # nft backend, IPv6
    "ip6tables-nft -A INPUT -s fd00::/64 -p udp -m udp --dport 53 -j ACCEPT",
    # legacy backend, both families
    "iptables-legacy -A INPUT -s 10.0.0.0/8 ! -i lo -p udp -m udp --dport 53 -j DROP",
    "iptables-legacy -t mangle -A PREROUTING -d 10.0.0.9/32 -j MARK --set-xmark 0x100/0xffffffff",
    "ip6tables-legacy -A OUTPUT -d fd00::1/128 -j DROP",
    # native nftables
    "nft add table inet ndt",
    "nft add chain inet ndt input '{ type filter hook input priority 10; policy accept; }'",
    "nft add rule inet ndt input tcp dport 8443 counter accept comment '\"web\"'",
    # links and sysctls
    "ip link add ndta type veth peer name ndtb",
    "ip link add ndtbr type bridge",
    "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=2 "
    "net.ipv4.conf.ndta.route_localnet=1 net.ipv4.conf.ndtb.proxy_arp=1",
    # an xfrm policy (ESP states cannot be made on this kernel)
    "ip xfrm policy add src 10.0.0.1/32 dst 10.0.0.2/32 dir out "
    "tmpl src 10.0.0.1 dst 10.0.0.2 proto esp reqid 5 mode transport mark 0xD0C4E3",
]


def named_ref(name: str) -> NamespaceRef:
    path = f"/run/netns/{name}"
    return NamespaceRef(id=os.stat(path).st_ino, kind=NsKind.NAMED, path=path, name=name,
                        label=name)


def in_ns(name: str, command: str) -> str:
    return sh(f"ip netns exec {name} {command}")


@pytest.fixture(scope="module")
def rich():
    """(namespace name, server pid) for a namespace holding all of SETUP."""
    factory = NetnsFactory()
    etc_netns = None
    server = None
    try:
        name = factory("state")
        for command in SETUP:
            in_ns(name, command)
        etc_netns = Path("/etc/netns") / name
        etc_netns.mkdir(parents=True)
        (etc_netns / "resolv.conf").write_text(RESOLV_CONF)
        server = subprocess.Popen(["ip", "netns", "exec", name, "python3", "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        yield name, server.pid
    finally:
        if server is not None:
            server.kill()
            server.wait()
        if etc_netns is not None:
            shutil.rmtree(etc_netns, ignore_errors=True)
        factory.cleanup()


@pytest.fixture(scope="module")
def state(rich):
    name, _ = rich
    collected, gaps = collect_namespace(named_ref(name))
    assert [g for g in gaps if g.collector != "ipvs"] == []
    return collected


SAVE_PROGRAMS = [("iptables-nft-save", "nft", 4), ("ip6tables-nft-save", "nft", 6),
                 ("iptables-legacy-save", "legacy", 4), ("ip6tables-legacy-save", "legacy", 6)]


@pytest.mark.parametrize("program, backend, family", SAVE_PROGRAMS)
def test_iptables_rules_and_chains_match_the_save_program(rich, state, program, backend,
                                                          family):
    saved = in_ns(rich[0], program).splitlines()
    table, expected_chains, expected_rules = "", [], []
    for line in saved:
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            chain, policy = line[1:].split()[:2]
            expected_chains.append((table, chain, "" if policy == "-" else policy))
        elif line.startswith("-A"):
            expected_rules.append((table, line))
    fw = state.firewall
    chains = [(c.table, c.name, c.policy) for c in fw.iptables_chains
              if (c.backend, c.family) == (backend, family)]
    rules = [(r.table, r.text) for r in fw.iptables_rules
             if (r.backend, r.family) == (backend, family)]
    assert expected_rules, f"set-up made no rules for {program}"
    assert chains == expected_chains
    assert rules == expected_rules


def test_iptables_rules_are_structured(state):
    fw = state.firewall
    (dnat,) = [r for r in fw.rules("nat", "DOCKER") if r.target == "DNAT"]
    assert dnat.backend == "nft" and dnat.position == 1
    assert dnat.match("in-interface").negated and dnat.match("in-interface").value == "ndta"
    assert dnat.target_option("to-destination") == "172.18.0.2:80"
    (accept, legacy_drop) = fw.rules("filter", "INPUT")  # both backends' IPv4 INPUT rules
    assert (accept.backend, legacy_drop.backend) == ("nft", "legacy")
    assert legacy_drop.match("in-interface").negated
    assert accept.match("comment").value == 'admin "ssh" and web'
    assert accept.match("dports").value == "22,80:90"
    assert fw.chain("filter", "FORWARD").policy == "DROP"
    legacy = [r for r in fw.iptables_rules if r.backend == "legacy" and r.table == "mangle"]
    assert legacy[0].target_option("set-xmark") == "0x100/0xffffffff"
    assert [r.match("source").value for r in fw.rules("filter", "INPUT", family=6)] == [
        "fd00::/64"]


def managed_by_iptables_nft(name: str) -> set[tuple[str, str]]:
    """The tables nft itself calls "managed by iptables-nft" (it warns on stderr)."""
    listing = subprocess.run(["ip", "netns", "exec", name, "nft", "list", "ruleset"],
                             capture_output=True, text=True, check=True)
    return set(re.findall(r"table (\S+) (\S+) is managed by iptables-nft", listing.stderr))


def test_nftables_ruleset_matches_nft_json(rich, state):
    """Every table as nft lists it; chains and rules of every table but the ones nft says
    iptables-nft manages, which the iptables records hold in full instead."""
    listed = json.loads(in_ns(rich[0], "nft -j list ruleset"))["nftables"]
    fw = state.firewall
    managed = {(t.family, t.name) for t in fw.nft_tables if t.origin == "iptables-nft"}
    # nft warns only about tables with xt expressions; ip6tables' `-s fd00::/64 -j ACCEPT`
    # needs none, and is iptables-nft's all the same
    assert managed_by_iptables_nft(rich[0]) == {("ip", "nat"), ("ip", "filter")}
    assert managed == {("ip", "nat"), ("ip", "filter"), ("ip6", "filter")}
    tables = [(t["family"], t["name"], t["handle"]) for item in listed
              if (t := item.get("table"))]
    chains = [(c["family"], c["table"], c["name"], c["handle"], c.get("hook", ""),
               c.get("prio", 0), c.get("policy", "")) for item in listed
              if (c := item.get("chain")) and (c["family"], c["table"]) not in managed]
    rules = [(r["family"], r["table"], r["chain"], r["handle"], r["expr"], r.get("comment", ""))
             for item in listed
             if (r := item.get("rule")) and (r["family"], r["table"]) not in managed]
    assert [(t.family, t.name, t.handle) for t in fw.nft_tables] == tables
    assert [(c.family, c.table, c.name, c.handle, c.hook, c.priority, c.policy)
            for c in fw.nft_chains] == chains
    assert [(r.family, r.table, r.chain, r.handle, json.loads(r.expr), r.comment)
            for r in fw.nft_rules] == rules
    (native,) = [r for r in fw.nft_rules if r.table == "ndt"]
    assert native.text.startswith("tcp dport 8443 counter packets")
    assert native.text.endswith('accept comment "web"')
    assert native.comment == "web"
    assert all(r.text for r in fw.nft_rules)  # every rule joined with its text form
    # what the managed tables hold is in the iptables records
    assert {(c.table, c.family) for c in fw.iptables_chains if c.backend == "nft"} >= {
        ("nat", 4), ("filter", 4)}


def test_native_rules_in_an_iptables_nft_table_keep_the_table_listed(netns_factory):
    """iptables-nft-save misreads native nftables rules (a set lookup becomes a bare -j DROP):
    a table holding any is nft's, listed in full, and iptables-nft-save's reading of it is
    dropped, so that no rule counts twice."""
    name = netns_factory("mixed")
    for command in ("iptables-nft -A INPUT -m conntrack --ctstate INVALID -j DROP",
                    "iptables-nft -t nat -A POSTROUTING -o lo -j MASQUERADE",
                    "nft add set ip filter blocked '{ type ipv4_addr; }'",
                    "nft add rule ip filter INPUT ip saddr @blocked drop"):
        in_ns(name, command)
    assert managed_by_iptables_nft(name) == {("ip", "nat"), ("ip", "filter")}
    collected, _ = collect_namespace(named_ref(name), COLLECTORS)
    fw = collected.firewall
    assert {(t.family, t.name) for t in fw.nft_tables} == {("ip", "filter"), ("ip", "nat")}
    assert {(r.table, r.text) for r in fw.nft_rules} >= {("filter", "ip saddr @blocked drop")}
    assert {r.table for r in fw.nft_rules} == {"filter"}  # nat is iptables-nft's alone
    assert {r.table for r in fw.iptables_rules} == {"nat"}
    assert {(t.name, t.origin) for t in fw.nft_tables} == {("filter", "nft"),
                                                          ("nat", "iptables-nft")}


def test_without_libnftables_the_nft_program_gives_the_same_ruleset(rich, state, monkeypatch):
    monkeypatch.setattr(nftables, "_libnftables", lambda: None)
    collected, _ = collect_namespace(named_ref(rich[0]))
    assert collected.firewall == state.firewall


def test_dns_uses_the_etc_netns_file_and_sees_the_embedded_resolver(rich, state):
    assert state.dns.source == f"/etc/netns/{rich[0]}/resolv.conf"
    assert state.dns.nameservers == ("127.0.0.11",)
    assert state.dns.search == ("lab.example",)
    assert state.dns.options == ("ndots:0", "timeout:2")
    assert state.dns.embedded == EmbeddedDns(udp_port=52066, tcp_port=41677)


def test_dns_of_a_process_namespace_reads_through_the_process_root(rich):
    """Like a container: the server's mount namespace has the netns resolv.conf bind-mounted
    over /etc/resolv.conf, and netdiag reads it through /proc/PID/root."""
    _, pid = rich
    path = f"/proc/{pid}/ns/net"
    ref = NamespaceRef(id=os.stat(path).st_ino, kind=NsKind.PID, path=path, pids=(pid,))
    collected, _ = collect_namespace(ref, COLLECTORS)
    assert collected.dns.source == f"/proc/{pid}/root/etc/resolv.conf"
    assert collected.dns.nameservers == ("127.0.0.11",)
    host = Path("/etc/resolv.conf").read_text()
    assert "127.0.0.11" not in host  # so the answer cannot have come from the host's file


def _ss(name: str, flags: str, family: int) -> set[tuple[str, int]]:
    found = set()
    for line in in_ns(name, f"ss -H{flags} -{family}").splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        address = address.strip("[]").split("%")[0]
        if address == "*":  # ss shows a dual-stack IPv6 wildcard as *
            address = "::" if family == 6 else "0.0.0.0"
        found.add((address, int(port)))
    return found


@pytest.mark.parametrize("protocol, flags", [("tcp", "ltn"), ("udp", "lun")])
@pytest.mark.parametrize("family", [4, 6])
def test_sockets_match_ss(rich, state, protocol, flags, family):
    collected = {(s.address, s.port) for s in state.sockets
                 if s.protocol == protocol and s.family == family}
    expected = _ss(rich[0], flags, family)
    assert expected, "the server's sockets are missing from ss"
    assert collected == expected


def test_socket_owners_are_resolved_once_per_snapshot(rich):
    name, pid = rich
    snapshot = collect_snapshot([named_ref(name)])
    (ns,) = snapshot.namespaces
    listening = {(s.protocol, s.port): s for s in ns.sockets}
    tcp = listening[("tcp", TCP_PORT)]
    assert tcp.state == "listen" and tcp.inode > 0
    # `ip netns exec` execs python3 in place, so the server keeps the Popen pid
    assert (tcp.pid, tcp.process) == (pid, "python3")
    assert listening[("udp", UDP_PORT)].state == "unconn"
    assert listening[("udp", UDP_PORT)].pid == pid


def test_sysctls_match_sysctl(rich, state):
    names = [s.name for s in state.sysctls]
    expected = in_ns(rich[0], "sysctl -n " + " ".join(names)).splitlines()
    assert [s.value for s in state.sysctls] == [" ".join(v.split()) for v in expected]
    assert state.sysctl("net.ipv4.ip_forward") == "1"
    assert state.sysctl("net.ipv4.conf.all.rp_filter") == "2"
    assert state.sysctl("net.ipv4.conf.ndta.route_localnet") == "1"
    assert state.sysctl("net.ipv4.conf.ndtb.proxy_arp") == "1"
    assert state.sysctl("net.ipv4.conf.ndtb.forwarding") == "1"  # follows ip_forward
    assert state.sysctl("net.ipv6.conf.ndtb.forwarding") == "0"  # IPv6 has its own switch
    assert state.sysctl("net.ipv6.conf.all.forwarding") == "0"
    assert len(state.sysctl("net.ipv4.ip_local_port_range").split()) == 2
    # br_netfilter is built into this machine's kernel, with bridge-nf-call-iptables=1 in every
    # new namespace
    assert state.sysctl("net.bridge.bridge-nf-call-iptables") == "1"


def test_sysctls_are_read_from_the_namespace_not_the_host(rich, state):
    host = sh("sysctl -n net.ipv4.ip_forward").strip()
    if host == "1":
        pytest.skip("the host forwards too: the namespace's 1 would prove nothing")
    assert state.sysctl("net.ipv4.ip_forward") == "1"


def test_conntrack_matches_sysctl(rich, state):
    maximum = int(in_ns(rich[0], "sysctl -n net.netfilter.nf_conntrack_max"))
    assert state.conntrack is not None and state.conntrack.max == maximum
    assert state.conntrack.count >= 0


def test_xfrm_policy_matches_ip_xfrm(rich, state):
    text = in_ns(rich[0], "ip xfrm policy")
    (policy,) = state.xfrm_policies
    assert f"src {policy.src} dst {policy.dst}" in text
    assert f"dir {policy.direction}" in text
    assert f"mark {policy.mark:#x}/0xffffffff" in text
    assert policy.templates == ("esp 10.0.0.1->10.0.0.2 reqid 5 mode transport",)
    assert state.xfrm_states == ()


def test_an_empty_namespace_runs_no_helper_program(netns_factory, monkeypatch):
    name = netns_factory("empty")
    helpers = []
    real = helper.run
    monkeypatch.setattr(helper, "run",
                        lambda argv, timeout=10.0: helpers.append(argv) or real(argv, timeout))
    collected, gaps = collect_namespace(named_ref(name), COLLECTORS)
    assert helpers == []
    assert [g.collector for g in gaps] in ([], ["ipvs"])
    assert collected.firewall.iptables_rules == () and collected.firewall.nft_tables == ()
    assert collected.sockets == () and collected.xfrm_policies == ()
    assert collected.dns.source == "/etc/resolv.conf"
    # no bridge, so the br_netfilter switches are not worth their slow /proc/sys lookup
    assert collected.sysctl("net.bridge.bridge-nf-call-iptables") is None
    assert collected.sysctl("net.ipv4.conf.lo.forwarding") == "0"


def test_legacy_rules_alone_run_only_the_legacy_save_program(netns_factory, monkeypatch):
    name = netns_factory("legacy")
    in_ns(name, "iptables-legacy -A INPUT -p icmp -j ACCEPT")
    helpers = []
    real = helper.run
    monkeypatch.setattr(helper, "run",
                        lambda argv, timeout=10.0: helpers.append(argv[0]) or real(argv, timeout))
    collected, _ = collect_namespace(named_ref(name), COLLECTORS)
    assert helpers == ["iptables-legacy-save"]
    (rule,) = collected.firewall.iptables_rules
    assert (rule.backend, rule.family, rule.text) == ("legacy", 4, "-A INPUT -p icmp -j ACCEPT")


SAME_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:CUSTOM - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p udp -m udp --dport 9 -m comment --comment "discard" -j CUSTOM
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CUSTOM -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 10.77.0.0/16 ! -o eth0 -j MASQUERADE
COMMIT
"""

SEND_UDP = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "[s.sendto(b'x' * {size}, ('127.0.0.1', 9)) for _ in range({count})]")


def test_namespaces_with_the_same_rules_run_iptables_nft_save_once(netns_factory, monkeypatch):
    """The second namespace with a ruleset gets the first one's records with its own counters,
    equal to what iptables-nft-save says in it; another ruleset runs the program again."""
    same = [netns_factory(f"same{i}") for i in range(3)]
    other = netns_factory("other")
    for name in same + [other]:
        sh(f"ip netns exec {name} ip link set lo up")
        subprocess.run(["ip", "netns", "exec", name, "iptables-nft-restore"],
                       input=SAME_RULES.replace("discard", "other") if name == other
                       else SAME_RULES, text=True, check=True)
    for name, count, size in ((same[1], 3, 100), (same[2], 7, 20)):  # different counters
        sh(f"ip netns exec {name} python3 -c \"{SEND_UDP.format(count=count, size=size)}\"")
    helpers = []
    real = helper.run
    monkeypatch.setattr(helper, "run", lambda argv, timeout=10.0: helpers.append(argv[0])
                        or real(argv, timeout))
    snapshot = collect_snapshot([named_ref(name) for name in same + [other]], workers=1)
    assert helpers.count("iptables-nft-save") == 2  # one per distinct ruleset
    for state in snapshot.namespaces:
        alone, _ = collect_namespace(state.ref)  # runs the program in this namespace
        assert state.firewall.iptables_chains == alone.firewall.iptables_chains
        assert state.firewall.iptables_rules == alone.firewall.iptables_rules
    counted = {state.ref.name: [(r.packets, r.bytes) for r in state.firewall.iptables_rules
                                if (r.chain, r.position) == ("INPUT", 1)]
               for state in snapshot.namespaces}  # -i lo -j ACCEPT
    # (the datagrams and the ICMP port-unreachable answers to them)
    assert counted[same[0]] == [(0, 0)] and counted[same[1]] != counted[same[2]]
    assert min(counted[same[1]][0][0], counted[same[2]][0][0]) >= 3
    policies = [state.firewall.chain("filter", "OUTPUT").packets
                for state in snapshot.namespaces]
    assert policies[0] == 0 and policies[1] >= 3 and policies[2] >= 7  # policy counters too


def test_collection_tells_how_far_it_is(netns_factory):
    """collect_snapshot's progress: told as namespaces finish, ending at all of them."""
    names = [netns_factory(f"prog{i}") for i in range(3)]
    refs = [NamespaceRef(id=os.stat(f"/run/netns/{n}").st_ino, kind=NsKind.NAMED,
                         path=f"/run/netns/{n}", name=n, label=n) for n in names]
    told: list[tuple[int, int]] = []
    snapshot = collect_snapshot(refs, progress=lambda done, total: told.append((done, total)))
    assert len(snapshot.namespaces) == 3
    assert told and told[-1] == (3, 3) and all(total == 3 for _, total in told)
    assert [done for done, _ in told] == sorted(done for done, _ in told)


def test_reading_iptables_nft_masquerade_of_both_families_prints_nothing(netns_factory):
    """libxtables, which libnftables calls to read iptables-nft's xt targets, loses the IPv6
    MASQUERADE once it has read the IPv4 one and says "XT target MASQUERADE not found" on the
    process's fd 2: `check --quiet` (cron) and the TUI must not show it (issue 29)."""
    name = netns_factory("xt6")
    for command in ("iptables-nft -t nat -A POSTROUTING -s 10.9.0.0/24 -j MASQUERADE",
                    "ip6tables-nft -t nat -A POSTROUTING -s fd00::/64 -j MASQUERADE",
                    # a native table, so that the ruleset is listed through libnftables
                    "nft add table inet ndt",
                    "nft add chain inet ndt chk '{ type filter hook forward priority 0; }'",
                    "nft add rule inet ndt chk tcp dport 22 accept",
                    "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"):
        in_ns(name, command)
    for command in (["snapshot", "--ns", name], ["check", "--quiet", "--ns", name]):
        done = subprocess.run([sys.executable, "-m", "netdiag", *command],
                              capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stderr) == (0, ""), command
    listed = json.loads(subprocess.run([sys.executable, "-m", "netdiag", "snapshot", "--ns",
                                        name], capture_output=True, text=True).stdout)
    (state,) = listed["namespaces"]
    assert [r["text"] for r in state["firewall"]["nft_rules"]] == ["tcp dport 22 accept"]
