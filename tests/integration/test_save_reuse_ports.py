"""iptables-nft-save runs once per ruleset *shape*: rulesets that differ only in ports (Docker's
embedded-DNS rules, one resolver port pair per container) get the first one's records with
their own ports written in — equal to what the program says in each namespace
(netdiag/collect/save_reuse.py).
"""

from __future__ import annotations

import os
import subprocess

from netdiag import helper
from netdiag.collect import collect_namespace, collect_snapshot, firewall
from netdiag.model import NamespaceRef, NsKind

# What Docker 20.10 writes into a container on a user network (iptables-nft): the DNAT is the
# xtables target expression, the --sport a cmp of two bytes.
EMBEDDED_DNS = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER_OUTPUT - [0:0]
:DOCKER_POSTROUTING - [0:0]
-A OUTPUT -d 127.0.0.11/32 -j DOCKER_OUTPUT
-A POSTROUTING -d 127.0.0.11/32 -j DOCKER_POSTROUTING
-A DOCKER_OUTPUT -d 127.0.0.11/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.11:{tcp}
-A DOCKER_OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:{udp}
-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p tcp -m tcp --sport {tcp} -j SNAT --to-source :53
-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p udp -m udp --sport {udp} -j SNAT --to-source :53
COMMIT
"""
# (the last pair: ports that also stand elsewhere in the rules, 53 and 11 — they are written in
# where the first namespace's ports stood, nowhere else)
PORTS = ((41123, 58156), (38255, 47669), (40001, 40002), (53, 11))


def named_ref(name: str) -> NamespaceRef:
    path = f"/run/netns/{name}"
    return NamespaceRef(id=os.stat(path).st_ino, kind=NsKind.NAMED, path=path, name=name,
                        label=name)


def test_rulesets_that_differ_in_ports_run_the_program_twice(netns_factory, monkeypatch):
    names = [netns_factory(f"dns{i}") for i in range(len(PORTS))]
    for name, (tcp, udp) in zip(names, PORTS, strict=True):
        subprocess.run(["ip", "netns", "exec", name, "iptables-nft-restore"],
                       input=EMBEDDED_DNS.format(tcp=tcp, udp=udp), text=True, check=True)
    helpers = []
    real = helper.run
    monkeypatch.setattr(helper, "run", lambda argv, timeout=10.0: helpers.append(argv[0])
                        or real(argv, timeout))
    snapshot = collect_snapshot([named_ref(name) for name in names], workers=1,
                                collectors=(firewall,))
    # the first of the shape, and the second, for which the program must agree
    assert helpers.count("iptables-nft-save") == 2
    for state, (tcp, udp) in zip(snapshot.namespaces, PORTS, strict=True):
        alone, _ = collect_namespace(state.ref, collectors=(firewall,))  # runs the program
        assert state.firewall.iptables_chains == alone.firewall.iptables_chains
        assert state.firewall.iptables_rules == alone.firewall.iptables_rules
        texts = [rule.text for rule in state.firewall.iptables_rules]
        assert f"-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p tcp -m tcp --sport {tcp} -j SNAT " \
               "--to-source :53" in texts
        assert state.firewall.iptables_rules[3].target_option("to-destination") == \
            f"127.0.0.11:{udp}"
