"""Dual-stack labs in real namespaces: the bridge driver, IPAM, the lab's DNS and the firewall
steps build IPv6 as Docker 28 does (gateway on the bridge, an address and default route per
endpoint, ip6tables rules with NAT66, IPv6 forwarding on in the host namespace only), real IPv6
packets cross the lab, `check` finds the broken variant's fault over IPv6 and `repair` heals it,
and `lab from-snapshot` keeps the IPv6 subnet; a published port answers over IPv6 (ip6tables
DNAT), `path` agrees with a real probe, and `check` names the IPv6 published flow when its DNAT
is gone. ULA prefixes only (fd00::/8)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netdiag.collect import collect_snapshot
from netdiag.collect.discovery import discover
from netdiag.drivers.controller import Controller
from netdiag.lab.from_snapshot import topology_from
from netdiag.store import open_store
from netdiag.topology import schema
from tests.conftest import pings, sh
from tests.integration.test_lab import (  # noqa: F401 (lab: the fixture)
    EXAMPLES,
    NETDIAG,
    _check_lab,
    http_get,
    lab,
    lab_name,
)

pytestmark = pytest.mark.integration
ROOT_FORWARDING = Path("/proc/sys/net/ipv6/conf/all/forwarding")  # read only: never written
SWITCH6 = "fd00:99::fe"  # the underlay switch: outside the container network, reached by NAT66
HOST6 = "fd00:99::1"  # host1 on the underlay: where web's port 8080 is published


def _forwarding(ns: str) -> str:
    return sh(f"ip netns exec {ns} sysctl -n net.ipv6.conf.all.forwarding").strip()


def _resolve6(ns: str, name: str) -> list[str]:
    """AAAA answers for `name` from inside the container (its resolv.conf: the lab's DNS)."""
    code = (f"import json, socket; print(json.dumps(sorted({{a[4][0] for a in "
            f"socket.getaddrinfo({name!r}, 80, socket.AF_INET6, socket.SOCK_STREAM)}})))")
    return json.loads(sh(f"ip netns exec {ns} {sys.executable} -c {json.dumps(code)}"))


def test_dual_stack_lab_is_built_as_docker_builds_an_ipv6_network(lab):  # noqa: F811
    root_before = ROOT_FORWARDING.read_text()
    j = lab(schema.load(EXAMPLES / "dual-stack.yaml"))
    host, web, db = j.nodes["host1"], j.nodes["web"], j.nodes["db"]
    bridge = "br-" + j.networks["petnet"][:12]
    # Addresses: each IPv6 address has the host number of the IPv4 one (IPAM), nodad.
    assert "inet6 fd00:28::1/64 scope global nodad" in sh(
        f"ip -n {host} -6 address show dev {bridge}")
    assert "inet6 fd00:28::2/64 scope global nodad" in sh(f"ip -n {db} -6 address show dev eth0")
    assert "inet6 fd00:28::3/64 scope global nodad" in sh(f"ip -n {web} -6 address show dev eth0")
    assert "default via fd00:28::1 dev eth0" in sh(f"ip -n {web} -6 route show")
    # The firewall mirrored in ip6tables, NAT66 included; forwarding on in the lab's host only.
    saved = sh(f"ip netns exec {host} ip6tables-save")
    assert f"-A POSTROUTING -s fd00:28::/64 ! -o {bridge} -j MASQUERADE" in saved
    assert f"-A FORWARD -i {bridge} ! -o {bridge} -j ACCEPT" in saved
    assert ":FORWARD DROP" in saved  # Docker sets it when it had to turn forwarding on
    assert _forwarding(host) == "1"
    assert ROOT_FORWARDING.read_text() == root_before
    # Real packets: on the bridge, and routed out through NAT66 (the switch has no route back
    # to fd00:28::/64, so its answer only comes back because the source was masqueraded).
    assert pings(web, "fd00:28::2")
    assert "fd00:28::" not in sh(f"ip -n {j.nodes['ul']} -6 route show")
    assert pings(web, SWITCH6)
    # The lab's DNS answers AAAA with the IPv6 address, A as before.
    assert _resolve6(web, "db") == ["fd00:28::2"]
    assert sh(f"ip netns exec {web} getent ahostsv4 db").split()[0] == "172.28.0.2"
    # Published over IPv6 too, as Docker 28 does: an ip6tables DNAT to web's IPv6 address;
    # a real connection from the underlay switch to host1's IPv6 address reaches web (which
    # listens on both families), and `path` agrees with a real probe.
    dnat = (f"-A DOCKER ! -i {bridge} -p tcp -m tcp --dport 8080 -j DNAT --to-destination "
            "[fd00:28::3]:5000")
    assert dnat in saved
    assert f"-A DOCKER -d fd00:28::3/128 ! -i {bridge} -o {bridge} -p tcp -m tcp --dport 5000 " \
        "-j ACCEPT" in sh(f"ip netns exec {host} ip6tables-save -t filter")
    ul = j.nodes["ul"]
    assert http_get(ul, f"http://[{HOST6}]:8080/").startswith("pets:")
    path = _path(ul, f"[{HOST6}]:8080")
    assert path["disposition"] == "delivered" and path["probe"]["agrees"], path["probe"]
    # A healthy dual-stack lab is quiet (its published port expected over both families),
    # also to the driver's own check; which finds a missing ip6tables rule and repairs it with
    # ip6tables.
    assert _check_lab(j) == []
    with open_store(j.store) as store:
        assert Controller(store).check() == []
        sh(f"ip netns exec {host} ip6tables -t nat -D POSTROUTING -s fd00:28::/64 ! -o {bridge} "
           "-j MASQUERADE")
        [missing] = Controller(store).check()
    assert "ip6tables-save -t nat has no" in missing.evidence[0].text
    assert missing.repair.steps[0].command().startswith("ip6tables -t nat -I POSTROUTING 1")
    assert not pings(web, SWITCH6)  # without NAT66 the switch's answer has no way back
    sh(f"ip netns exec {host} {missing.repair.steps[0].command()}")
    assert pings(web, SWITCH6)
    # Without its IPv6 DNAT the published port answers over IPv4 only: `check` names the IPv6
    # flow the lab promises, the driver's check the rule, whose repair brings it back.
    sh(f"ip netns exec {host} ip6tables -t nat {dnat.replace('-A', '-D', 1)}")
    [blocked] = _check_lab(j)
    assert blocked["rule"] == "expected-flow-blocked" and blocked["message"].startswith(
        f"the lab's underlay reaches web's published port [{HOST6}]:8080 on host1 over IPv6: "
        f"it is no-listener in {j.name}/host1"), blocked["message"]
    with open_store(j.store) as store:
        [missing] = Controller(store).check()
    assert missing.repair.steps[0].command().startswith("ip6tables -t nat -A DOCKER '!' -i")
    sh(f"ip netns exec {host} {missing.repair.steps[0].command()}")
    assert http_get(ul, f"http://[{HOST6}]:8080/").startswith("pets:")
    # from-snapshot keeps the IPv6 subnet, and the rebuilt lab has the same IPv6 addresses.
    snapshot = collect_snapshot([ref for ref in discover() if ref.lab == j.name])
    data = topology_from(snapshot, lab_name())
    [network] = data["networks"]
    assert network["subnet6"] == "fd00:28::/64"
    again = lab(schema.Topology.model_validate(data))
    bridge = f"br-{again.networks[network['name']][:12]}"
    assert "inet6 fd00:28::1/64" in sh(f"ip -n {again.nodes['host1']} -6 address show "
                                       f"dev {bridge}")
    # ... and its published port, over IPv6 too.
    [web_again] = [c for c in data["containers"] if c.get("publish")]
    assert web_again["publish"] == ["8080:5000/tcp"]
    assert f"! -i {bridge} -p tcp -m tcp --dport 8080 -j DNAT" in sh(
        f"ip netns exec {again.nodes['host1']} ip6tables-save -t nat")


def _path(source: str, to: str) -> dict:
    done = subprocess.run([*NETDIAG, "path", source, to, "--probe", "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def test_broken_ipv6_forwarding_is_found_over_ipv6_and_repair_restores_ipv6(lab):  # noqa: F811
    root_before = ROOT_FORWARDING.read_text()
    j = lab(schema.load(EXAMPLES / "broken-ipv6-fwd.yaml"))
    host, web = j.nodes["host1"], j.nodes["web"]
    assert pings(web, "10.99.0.254")  # IPv4 takes the same way out and still works
    assert not pings(web, SWITCH6, wait=2)
    findings = _check_lab(j)
    assert [(f["rule"], f["subject"]) for f in findings] == \
        [("ip-forward-disabled", "net.ipv6.conf.all.forwarding")]
    assert "fd00:28::1" in findings[0]["message"]
    done = subprocess.run([*NETDIAG, "repair", "--lab", j.name, "--apply", "--unsafe"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[applied]" in done.stdout and "After: 0 errors, 0 warnings" in done.stdout
    assert _forwarding(host) == "1"
    assert pings(web, SWITCH6)
    assert _check_lab(j) == []
    assert ROOT_FORWARDING.read_text() == root_before
