"""The flow engine on fixture snapshots: each disposition, NAT there and back, what it does not
model, and `netdiag path` itself (its outputs and exit codes)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from netdiag.cli import main
from netdiag.collect.iptables_save import parse_rule
from netdiag.flows.packet import Packet
from netdiag.flows.walk import Engine
from netdiag.model import IptablesRule, NftChain, NftRule
from netdiag.model.serialize import save
from tests.fixtures.scenarios import docker_host
from tests.unit.rules.part2_fixtures import amend


def path(snapshot, source, dst, proto="tcp", port=80, size=0):
    packet = Packet("", dst, proto, 43210 if port else 0, port, size=size)
    return Engine(snapshot).path(source, packet)


def test_a_container_reaches_its_gateway_and_the_host_reaches_a_container():
    d = docker_host()
    snapshot = d.build()
    ping = path(snapshot, d.web, "172.18.0.1", "icmp", 0)
    assert ping.delivered and ping.reply.disposition == "delivered"
    http = path(snapshot, d.host, "172.18.0.2")
    assert http.delivered
    assert [h.namespace.display for h in http.forward.hops] == ["host", "web"]
    assert any("httpd (pid 200) listens" in s.detail for s in http.forward.hops[-1].steps)


def test_isolation_between_networks_names_the_rule():
    d = docker_host()
    result = path(d.build(), d.web, "172.19.0.2")
    assert result.disposition == "denied"
    assert result.forward.drop.namespace.display == "host"
    assert result.forward.drop.where == "filter/DOCKER-ISOLATION-STAGE-1/1"
    assert result.forward.drop.rule == "-A DOCKER-ISOLATION-STAGE-1 ! -s 172.19.0.0/16 -o " \
                                       "br-int -j DROP"


def test_a_published_port_from_the_host_is_translated_there_and_back():
    d = docker_host()
    result = path(d.build(), d.host, "192.168.1.10", port=8080)
    assert result.delivered, result.forward.drop or result.reply.drop
    assert result.forward.delivered_as.dst == "172.18.0.2" and \
        result.forward.delivered_as.dport == 80
    ((kind, before, after),) = result.forward.translations
    assert kind == "dnat" and before.dport == 8080 and after.dst == "172.18.0.2"
    reply_steps = [s.detail for h in result.reply.hops for s in h.steps]
    assert any("⇒ tcp 192.168.1.10:8080" in s for s in reply_steps), reply_steps


def test_no_listener_no_route_too_big_and_off_the_snapshot():
    d = docker_host()
    snapshot = d.build()
    assert path(snapshot, d.host, "172.18.0.2", port=81).disposition == "no-listener"
    assert path(snapshot, d.db, "192.168.1.1").disposition == "no-route"  # internal: no default
    big = path(snapshot, d.web, "172.18.0.1", "icmp", 0, size=2000)
    assert big.disposition == "too-big" and big.forward.drop.where == "eth0"
    outside = path(snapshot, d.web, "192.0.2.80")
    assert outside.disposition == "unknown" and "eth0" in outside.forward.drop.reason


def test_a_veth_off_its_bridge_and_a_down_bridge_port():
    d = docker_host()
    d.b.update_link(d.host, "veth1a2b3c4", master="")
    assert path(d.build(), d.host, "172.18.0.2").disposition == "neighbour-unreachable"
    d = docker_host()
    d.b.update_link(d.host, "veth1a2b3c4", admin_up=False)
    assert path(d.build(), d.host, "172.18.0.2").disposition == "neighbour-unreachable"


def test_what_is_not_modelled_is_unknown_naming_the_rule():
    d = docker_host()
    snapshot = d.build()
    text = "-A DOCKER-USER -m recent --name scanners --rcheck -j DROP"
    parsed = parse_rule(text)
    host = snapshot.namespace(d.host)
    recent = IptablesRule("nft", 4, "filter", parsed.chain, 1, parsed.matches, parsed.target,
                          text=text)
    others = tuple(r if (r.table, r.chain) != ("filter", "DOCKER-USER") else
                   replace(r, position=r.position + 1) for r in host.firewall.iptables_rules)
    snapshot = amend(snapshot, d.host, firewall=replace(host.firewall,
                                                        iptables_rules=(recent, *others)))
    result = path(snapshot, d.web, "172.19.0.2", port=80)
    assert result.disposition == "unknown"
    assert "--name" in result.forward.drop.reason or "--rcheck" in result.forward.drop.reason
    assert result.forward.drop.rule.startswith("-A DOCKER-USER -m recent")
    # Native nftables: modelled from the rule's expressions; a named set is not.
    state = snapshot.namespace(d.web)
    drop_80 = json.dumps([{"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                                                                      "field": "dport"}},
                                     "right": 80}}, {"drop": None}])
    chain = NftChain("inet", "fw", "out", type="filter", hook="output", policy="accept")
    fw = replace(state.firewall, nft_chains=(chain,),
                 nft_rules=(NftRule("inet", "fw", "out", 4, "tcp dport 80 drop", drop_80),))
    result = path(amend(snapshot, d.web, firewall=fw), d.web, "172.18.0.1", port=80)
    assert result.disposition == "denied"
    assert result.forward.drop.where == "nft inet fw out handle 4"
    assert path(amend(snapshot, d.web, firewall=fw), d.web, "172.18.0.1", "icmp",
                0).delivered
    in_set = json.dumps([{"match": {"op": "==", "left": {"payload": {"protocol": "ip",
                                                                     "field": "daddr"}},
                                    "right": "@blocked"}}, {"drop": None}])
    fw = replace(fw, nft_rules=(NftRule("inet", "fw", "out", 5, "ip daddr @blocked drop",
                                        in_set),))
    result = path(amend(snapshot, d.web, firewall=fw), d.web, "172.18.0.1", port=80)
    assert result.disposition == "unknown" and "@blocked" in result.forward.drop.reason


def test_the_path_command_exit_codes_and_json(tmp_path, capsys):
    d = docker_host()
    saved = tmp_path / "host.json"
    save(d.build(), saved)
    assert main(["path", "host", "web:80", "--from", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "=> DELIVERED" in out and "web is 172.18.0.2 (Docker: web on web)" in out
    assert main(["path", "web", "172.19.0.2:80", "--from", str(saved), "--format",
                 "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["schema_version"] == 1 and report["disposition"] == "denied"
    assert report["flow"]["dport"] == 80 and report["flow"]["src"]["label"] == "web"
    assert report["drop"]["where"] == "filter/DOCKER-ISOLATION-STAGE-1/1"
    assert report["reply"] is None and report["hops"][0]["namespace"]["label"] == "web"
    assert main(["path", "web", "nowhere:80", "--from", str(saved)]) == 2
    assert "cannot resolve 'nowhere'" in capsys.readouterr().err
    assert main(["path", "web", "172.18.0.1", "--proto", "tcp", "--from", str(saved)]) == 2
    assert main(["path", "web", "172.18.0.1:70000", "--from", str(saved)]) == 2


def test_a_subnets_broadcast_address_is_no_unicast_flow():
    """Issue 31: `path` to a subnet's broadcast address said "ARP goes unanswered". The
    kernel's local table has a broadcast route for it: a broadcast, not a unicast flow."""
    d = docker_host()
    snapshot = d.build()
    for source, dst in ((d.web, "172.18.255.255"), (d.host, "172.18.255.255"),
                        (d.host, "192.168.1.255")):
        result = path(snapshot, source, dst, "icmp", 0)
        assert result.disposition == "unknown", result.forward.drop
        assert result.forward.drop.where == "route"
        assert "ARP" not in result.forward.drop.reason
    reason = path(snapshot, d.web, "172.18.255.255", "udp", 53).forward.drop.reason
    assert reason.startswith("172.18.255.255 is the broadcast address of 172.18.0.0/16 (on "
                             "eth0): a broadcast is not a unicast flow"), reason
    limited = path(snapshot, d.web, "255.255.255.255", "icmp", 0)
    assert limited.disposition == "unknown"
    assert "the limited broadcast address" in limited.forward.drop.reason
    # Beside it, unicast is unchanged: a container, and the subnet's last host address.
    assert path(snapshot, d.host, "172.18.0.2", "icmp", 0).delivered
    assert path(snapshot, d.web, "172.18.255.254", "icmp", 0).disposition != "unknown"


def test_the_path_command_says_what_is_wrong_with_odd_input(tmp_path, capsys):
    """Issue 31: one line naming the flag, exit code 2, never a silent choice or a
    traceback."""
    saved = tmp_path / "host.json"
    save(docker_host().build(), saved)

    def refused(*args: str) -> str:
        assert main(["path", *args, "--from", str(saved)]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        return err

    assert "two ports given" in refused("host", "172.18.0.2:8080", "--port", "9090")
    assert "--size 0" in refused("host", "172.18.0.2", "--size", "0")
    assert "--size 39" in refused("host", "172.18.0.2:80", "--size", "39")
    assert "--sport 0" in refused("host", "172.18.0.2:80", "--sport", "0")
    assert "--port 0" in refused("host", "172.18.0.2", "--port", "0", "--proto", "tcp")
    assert main(["path", "host", "172.18.0.2", "--size", "28", "--from", str(saved)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as leaving:
        main(["path", "host", "172.18.0.2", "--timeout", "9999999999", "--from", str(saved)])
    err = capsys.readouterr().err
    assert leaving.value.code == 2 and err.count("\n") == 1 and "--timeout" in err, err


def test_kernel_drop_reasons_are_read_from_kfree_skb_events():
    from netdiag.probe.trace import _kfree_drops
    text = (" ping-12 [001] ..s1. 10.5: kfree_skb: skbaddr=0xff rx_sk=0 protocol=2048 "
            "location=ip_error+0x7e/0x2a0 reason: IP_INNOROUTES\n"
            " <idle>-0 [000] ..s2. 10.6: kfree_skb: skbaddr=0xfe rx_sk=0 protocol=2048 "
            "location=tcp_v4_rcv+0x5/0x9 reason: NOT_SPECIFIED\n")
    assert _kfree_drops(text) == [("IP_INNOROUTES", "ip_error")]


def test_a_masqueraded_reply_passes_docker_28s_raw_drop():
    """raw PREROUTING runs before conntrack restores a masqueraded reply's destination: the
    reply is addressed to the host there, so Docker 28's `-d CONTAINER ! -i BRIDGE -j DROP`
    does not see it (the model used to restore it first and call every NATed flow denied)."""
    from netdiag.flows.packet import Disposition, StepKind

    d = docker_host("modern")
    snapshot = d.build()
    engine = Engine(snapshot)
    out = engine.path(d.web, Packet("", "192.0.2.80", "tcp", 43210, 80),
                      exit_at=(d.host, "eth0"))
    assert out.reply is not None and out.reply.disposition is Disposition.DELIVERED, out.reply
    host = next(hop for hop in out.reply.hops if hop.namespace.id == d.host)
    kinds = [step.kind for step in host.steps]
    details = [step.detail for step in host.steps]
    raw = next(i for i, text in enumerate(details) if text.startswith("raw/PREROUTING"))
    assert raw < kinds.index(StepKind.CONNTRACK) < kinds.index(StepKind.ROUTE), details
