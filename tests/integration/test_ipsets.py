"""ipsets read from the kernel and matched as xt_set matches them: Docker 28.0's
`-m set --match-set docker-ext-bridges-v4 dst` (and -v6) with hand-written hash:ip,port,
hash:net,port (a nomatch exception, --return-nomatch), hash:net,iface (negated) and list:set
matches and a SET target (tests/corpus/iptables/docker28-ipsets.v4 and .v6, whose headers
give their sources), loaded into the host namespace of the nftables corpus test's topology
(docker0 172.17.0.0/16 with c0, bridge1 192.0.2.0/24 with c1 — the networks of moby's
document —, a LAN namespace `out` on eth0; dual stack). The sets are made with pyroute2
inside the namespace (the machine has no `ipset` program).

Every flow among the four namespaces, TCP, UDP and ICMP, both families, is simulated with
the path model and sent for real: none ends in `unknown`, all agree with the kernel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from netdiag.flows.packet import UNKNOWN, Packet
from netdiag.flows.walk import Engine
from netdiag.model import Ipset, IpsetMember
from tests import real_flows
from tests.conftest import sh
from tests.integration.test_nftables_corpus import topology  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CORPUS = Path(__file__).parents[1] / "corpus" / "iptables"

# name → (type, family, members as (value, nomatch)); values as `ipset list` writes them,
# which is what the collector must read back.
SETS = {
    "docker-ext-bridges-v4": ("hash:net", 4, (("172.17.0.0/16", False),
                                              ("192.0.2.0/24", False))),
    "docker-ext-bridges-v6": ("hash:net", 6, (("fd00:17::/64", False),
                                              ("fd00:db8:2::/64", False))),
    "svc-ssh": ("hash:ip,port", 4, (("192.0.2.2,tcp:22", False), ("172.17.0.2,tcp:22", False))),
    "svc-dns": ("hash:ip,port", 4, (("172.17.0.2,udp:53", False),)),
    "container-services": ("list:set", 0, (("svc-ssh", False), ("svc-dns", False))),
    "svc-ssh6": ("hash:ip,port", 6, (("fd00:db8:2::2,tcp:22", False),
                                     ("fd00:17::2,udp:53", False))),
    "container-services6": ("list:set", 0, (("svc-ssh6", False),)),
    # eth0's /24 holds the host's own connections to its bridge addresses too: they leave lo
    # masqueraded (Docker's `-s 172.17.0.0/16 ! -o docker0`) to eth0's 10.99.0.1
    "lan-blocked": ("hash:net,port", 4, (("10.99.0.0/24,tcp:22", False),
                                         ("10.99.0.0/24,tcp:3333", False),
                                         ("10.99.0.2,tcp:3333", True),
                                         ("192.0.2.0/24,tcp:80", False))),
    "answered-networks": ("hash:net,iface", 4, (("172.17.0.0/16,docker0", False),
                                                ("10.99.0.0/24,eth0", False),
                                                ("127.0.0.0/8,lo", False))),
    "ping-sources": ("hash:ip", 4, ()),
}
UNNAMED = {"unnamed": ("hash:ip", 4, (("10.99.0.1", False),))}

# Makes SETS (argv[1], JSON) in the namespace it runs in, with pyroute2; nomatch members are
# added with the flag the ipset program sets (pyroute2's add() has no argument for it).
LOADER = textwrap.dedent("""
    import json, socket, sys
    from pyroute2.ipset import IPSet, PortEntry, _nlmsg_error
    from pyroute2.netlink import NLM_F_ACK, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.nfnetlink.ipset import IPSET_CMD_ADD, IPSET_FLAG_NOMATCH, ipset_msg
    PROTOCOLS = {"tcp": 6, "udp": 17}
    def entry(kind, value):
        parts = []
        for part in value.split(","):
            proto, _, port = part.partition(":")
            if proto in PROTOCOLS:
                parts.append(PortEntry(int(port), protocol=PROTOCOLS[proto]))
            else:
                parts.append(part)
        return parts[0] if len(parts) == 1 else tuple(parts)
    sets = json.loads(sys.argv[1]); ipset = IPSet()
    for name, (kind, family, members) in sets.items():  # list:sets last: they name others
        if kind.startswith("list:"):
            continue
        ipset.create(name, stype=kind, family=socket.AF_INET6 if family == 6 else socket.AF_INET)
    for name, (kind, family, members) in sets.items():
        if kind.startswith("list:"):  # for both families, as `ipset create NAME list:set`
            ipset.create(name, stype=kind, family=socket.AF_UNSPEC)
    for name, (kind, family, members) in sets.items():
        etype = "set" if kind.startswith("list:") else kind.partition(":")[2]
        af = socket.AF_INET6 if family == 6 else socket.AF_INET
        for value, nomatch in members:
            if not nomatch:
                ipset.add(name, entry(kind, value), family=af, etype=etype)
                continue
            data = ipset.asyncore._entry_to_data_attrs(
                entry(kind, value), etype, ipset.asyncore._family_to_version(af))
            message = ipset_msg()
            message["attrs"] = [["IPSET_ATTR_PROTOCOL", ipset._proto_version],
                                ["IPSET_ATTR_SETNAME", name],
                                ["IPSET_ATTR_DATA", {"attrs": data + [
                                    ["IPSET_ATTR_CADT_FLAGS", IPSET_FLAG_NOMATCH]]}]]
            ipset._run_with_cleanup(ipset.asyncore.request, message, IPSET_CMD_ADD,
                                    msg_flags=NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL,
                                    terminate=_nlmsg_error)
    ipset.close()
""")
UNLOADER = "from pyroute2.ipset import IPSet; s = IPSet(); s.flush(); s.destroy(); s.close()"

ADDRESSES = ("10.99.0.1", "10.99.0.2", "172.17.0.1", "172.17.0.2", "192.0.2.1", "192.0.2.2",
             "127.0.0.1")
ADDRESSES6 = ("fd00:99::1", "fd00:99::2", "fd00:17::1", "fd00:17::2", "fd00:db8:2::1",
              "fd00:db8:2::2")
PROBES = (("tcp", 22), ("tcp", 80), ("tcp", 3333), ("udp", 53), ("icmp", 0))
PUBLISHED = (("10.99.0.1", "tcp", 8080), ("172.17.0.1", "tcp", 8080))


# Flows a set decides, and the rule that decides each (the random-free matrix above holds
# them too; here the model must also say why).
DECIDED = (
    ("out", "192.0.2.2", "tcp", 22, True, "--match-set container-services dst,dst -j ACCEPT"),
    ("out", "172.17.0.2", "udp", 53, True, "--match-set container-services dst,dst -j ACCEPT"),
    ("out", "fd00:db8:2::2", "tcp", 22, True, "--match-set container-services6 dst,dst"),
    ("out", "172.17.0.2", "tcp", 80, False, "--match-set docker-ext-bridges-v4 dst -j DOCKER"),
    ("out", "fd00:17::2", "tcp", 80, False, "--match-set docker-ext-bridges-v6 dst -j DOCKER"),
    ("out", "10.99.0.1", "tcp", 3333, False, "--return-nomatch -j DROP"),
    ("out", "10.99.0.1", "tcp", 22, False, "--match-set lan-blocked src,dst -j DROP"),
    ("c1", "10.99.0.1", "tcp", 80, False, "--match-set lan-blocked src,dst -j DROP"),
    ("c1", "10.99.0.1", "udp", 53, False, "! --match-set answered-networks src,src -j DROP"),
)


def _flows(roles) -> list[dict]:
    wanted = [(dst, proto, port) for dst in ADDRESSES for proto, port in PROBES]
    wanted += list(PUBLISHED)
    wanted += [(dst, proto, port) for dst in ADDRESSES6 for proto, port in PROBES
               if port != 3333]
    return [{"id": number, "src": src, "dst": dst, "proto": proto, "port": port, "size": 0,
             "wait": 1.0}
            for number, (src, (dst, proto, port)) in enumerate(
                (src, flow) for src in sorted(roles) for flow in wanted)]


@pytest.fixture(scope="module")
def docker28(topology):  # noqa: F811 - the fixture imported above
    names = topology
    host = names["h"]
    inside = ["ip", "netns", "exec", host]
    subprocess.run([*inside, sys.executable, "-c", LOADER, json.dumps(SETS)], check=True)
    # a set no rule names, in a namespace without rules: not read (see the first test)
    subprocess.run(["ip", "netns", "exec", names["out"], sys.executable, "-c", LOADER,
                    json.dumps(UNNAMED)], check=True)
    try:
        for program, ruleset in (("iptables-nft-restore", "docker28-ipsets.v4"),
                                 ("ip6tables-nft-restore", "docker28-ipsets.v6")):
            subprocess.run([*inside, program], input=(CORPUS / ruleset).read_text(),
                           text=True, check=True)
        for name in names.values():  # the ruleset resolves its neighbours itself
            sh(f"ip -n {name} neigh flush all")
        yield names
    finally:
        sh(f"ip netns exec {host} nft flush ruleset")
        for name in (host, names["out"]):
            subprocess.run(["ip", "netns", "exec", name, sys.executable, "-c", UNLOADER],
                           check=True)


def test_ipsets_are_read_where_rules_name_them(docker28):
    snapshot, ids = real_flows.snapshot_of(docker28)
    host = snapshot.namespace(ids["h"])
    read = {s.name: s for s in host.firewall.ipsets}
    expected = {name: Ipset(name, kind, family, tuple(
        IpsetMember(value, nomatch) for value, nomatch in
        (members if kind.startswith("list:") else sorted(members))))  # hash sets: sorted
        for name, (kind, family, members) in SETS.items()}
    # ping-sources fills as pings arrive (the SET target): only its kind is known here
    assert read.pop("ping-sources").type == expected.pop("ping-sources").type
    assert read == expected
    others = [i for role, i in ids.items() if role != "h"]  # `out` has a set no rule names
    assert all(snapshot.namespace(i).firewall.ipsets == () for i in others)


def test_docker28_and_hand_written_set_matches_agree_with_the_kernel(docker28):
    names = docker28
    snapshot, ids = real_flows.snapshot_of(names)
    engine = Engine(snapshot)
    flows = _flows(names)
    unknown = []
    for flow in flows:
        result = engine.path(ids[flow["src"]], Packet("", flow["dst"], flow["proto"],
                                                      43210 if flow["port"] else 0,
                                                      flow["port"]))
        if result.disposition == UNKNOWN:
            drop = result.forward.drop or (result.reply.drop if result.reply else None)
            unknown.append(f"{flow['src']} → {flow['proto']} {flow['dst']}:{flow['port']}: "
                           f"{drop.reason if drop else ''}")
    real = real_flows.send(names, flows)
    disagreements, by_disposition, kernel = real_flows.compare(engine, ids, flows, real)
    assert unknown == []
    assert disagreements == []
    for src, dst, proto, port, through, rule in DECIDED:
        result = engine.path(ids[src], Packet("", dst, proto, 43210 if port else 0, port))
        steps = [step.rule for hop in result.forward.hops for step in hop.steps]
        assert result.delivered is through and any(rule in text for text in steps), \
            (src, dst, port, result.disposition, steps)
    # the sets decide both ways: flows get through and flows are dropped by them
    assert kernel.get("ok", 0) >= len(flows) // 4 and by_disposition.get("denied", 0) >= 20


def test_a_set_that_was_not_read_ends_the_path_in_unknown_naming_it(docker28):
    names = docker28
    snapshot, ids = real_flows.snapshot_of(names)
    host = snapshot.namespace(ids["h"])
    without = replace(host, firewall=replace(host.firewall, ipsets=()))
    snapshot = replace(snapshot, namespaces=tuple(without if s.ref.id == ids["h"] else s
                                                  for s in snapshot.namespaces))
    result = Engine(snapshot).path(ids["out"], Packet("", "192.0.2.2", "tcp", 43210, 22))
    assert result.disposition == UNKNOWN
    assert "ipset container-services is not in the snapshot" in result.forward.drop.reason
