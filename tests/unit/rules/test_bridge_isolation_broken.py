import pytest

from netdiag.checks.firewall import bridge_isolation_broken as rule
from netdiag.findings.repair import AddIptablesRule, Safety
from tests.fixtures.builder import SnapshotBuilder
from tests.unit.rules.part2_fixtures import run

BRIDGES = {"br-a": "172.18.0.1/16", "br-b": "172.19.0.1/16", "br-c": "172.20.0.1/16"}


def classic(unisolated: str = "") -> list[str]:
    """Docker ≤ 27's filter rules for BRIDGES; `unisolated` lacks its STAGE-2 drop."""
    rules = ["-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1"]
    for br in BRIDGES:
        rules += [f"-A FORWARD -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                  f"-A FORWARD -o {br} -j DOCKER",
                  f"-A FORWARD -i {br} ! -o {br} -j ACCEPT",
                  f"-A FORWARD -i {br} -o {br} -j ACCEPT"]
    rules += [f"-A DOCKER-ISOLATION-STAGE-1 -i {br} ! -o {br} -j DOCKER-ISOLATION-STAGE-2"
              for br in BRIDGES]
    rules += ["-A DOCKER-ISOLATION-STAGE-1 -j RETURN"]
    rules += [f"-A DOCKER-ISOLATION-STAGE-2 -o {br} -j DROP" for br in BRIDGES
              if br != unisolated]
    rules += ["-A DOCKER-ISOLATION-STAGE-2 -j RETURN", "-A DOCKER-USER -j RETURN",
              "-A DOCKER -d 172.18.0.2/32 ! -i br-a -o br-a -p tcp -m tcp --dport 80 -j ACCEPT"]
    return rules


def modern(unisolated: str = "") -> list[str]:
    """Docker ≥ 28's filter rules: isolation is `DOCKER ! -i br -o br -j DROP`."""
    rules = ["-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-FORWARD",
             "-A DOCKER -d 172.18.0.2/32 ! -i br-a -o br-a -p tcp -m tcp --dport 80 -j ACCEPT"]
    rules += [f"-A DOCKER ! -i {br} -o {br} -j DROP" for br in BRIDGES if br != unisolated]
    rules += [f"-A DOCKER-BRIDGE -o {br} -j DOCKER" for br in BRIDGES]
    rules += [f"-A DOCKER-CT -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
              for br in BRIDGES]
    rules += ["-A DOCKER-FORWARD -j DOCKER-CT", "-A DOCKER-FORWARD -j DOCKER-INTERNAL",
              "-A DOCKER-FORWARD -j DOCKER-BRIDGE"]
    rules += [f"-A DOCKER-FORWARD -i {br} -j ACCEPT" for br in BRIDGES]
    return rules


def host_with(rules: list[str], policy: str = "DROP", ip_forward: int = 1):
    b = SnapshotBuilder()
    host = b.host()
    for name, address in BRIDGES.items():
        b.bridge(host, name, address)
    b.sysctl(host, "net.ipv4.ip_forward", ip_forward)
    b.chain(host, "filter", "FORWARD", policy)
    for chain in ("DOCKER", "DOCKER-USER", "DOCKER-INTERNAL"):
        b.chain(host, "filter", chain)
    for line in rules:
        b.iptables(host, "filter", line)
    return b.build(), host


@pytest.mark.parametrize("layout", [classic, modern])
def test_healthy_docker_layouts_pass(layout):
    snapshot, _ = host_with(layout())
    assert run(rule, snapshot) == []


@pytest.mark.parametrize("layout", [classic, modern])
def test_missing_isolation_for_one_network_fires(layout):
    snapshot, host = host_with(layout(unisolated="br-c"))
    findings = run(rule, snapshot)
    assert {f.subject for f in findings} == {"br-a<->br-c", "br-b<->br-c"}
    finding = next(f for f in findings if f.subject == "br-a<->br-c")
    assert finding.namespace.id == host
    assert "br-a → br-c" in finding.message and "br-c → br-a" not in finding.message
    accepted = [e for e in finding.evidence if "accepted by" in e.text]
    assert accepted and all(e.kind == "firewall" for e in accepted)
    assert accepted[-1].key.startswith("filter/DOCKER-FORWARD/" if layout is modern
                                       else "filter/FORWARD/")
    assert any(e.text.startswith("while") for e in finding.evidence)
    assert finding.repair.safety is Safety.UNSAFE
    assert finding.repair.steps == (AddIptablesRule(host, "filter", "FORWARD",
                                                    ("-i", "br-a", "-o", "br-c", "-j", "DROP"),
                                                    position=1),)


def test_host_that_isolates_nothing_passes():
    snapshot, _ = host_with(["-A FORWARD -j ACCEPT"], policy="ACCEPT")
    assert run(rule, snapshot) == []


def test_forwarding_off_passes():
    snapshot, _ = host_with(classic(unisolated="br-c"), ip_forward=0)
    assert run(rule, snapshot) == []


def test_partial_rules_decide_nothing():
    # A port-specific drop does not isolate; without it the policy ACCEPT lets all through,
    # and with no pair isolated there is no broken promise.
    snapshot, _ = host_with(["-A FORWARD -i br-a -o br-b -p tcp -m tcp --dport 22 -j DROP"],
                            policy="ACCEPT")
    assert run(rule, snapshot) == []


def test_bridge_outside_the_isolation_scheme_passes():
    # A KVM bridge next to Docker's: the DROP policy stops traffic into Docker's bridges, and
    # containers may reach it like any outside network; Docker promised nothing about it.
    b = SnapshotBuilder()
    host = b.host()
    for name, address in (("br-a", "172.18.0.1/16"), ("br-b", "172.19.0.1/16"),
                          ("virbr0", "192.168.122.1/24")):
        b.bridge(host, name, address)
    b.chain(host, "filter", "FORWARD", "DROP")
    b.chain(host, "filter", "DOCKER")
    lines = ["-A FORWARD -j DOCKER-ISOLATION-STAGE-1"]
    for br in ("br-a", "br-b"):
        lines += [f"-A FORWARD -o {br} -j DOCKER", f"-A FORWARD -i {br} ! -o {br} -j ACCEPT",
                  f"-A DOCKER-ISOLATION-STAGE-1 -i {br} ! -o {br} -j DOCKER-ISOLATION-STAGE-2",
                  f"-A DOCKER-ISOLATION-STAGE-2 -o {br} -j DROP"]
    for line in lines:
        b.iptables(host, "filter", line)
    assert run(rule, b.build()) == []


def test_a_kvm_bridge_beside_docker_28s_layout_passes():
    """Docker 28 drops what enters its bridges from elsewhere (`DOCKER ! -i br -o br -j
    DROP`), a KVM bridge's traffic included, while its containers reach the KVM bridge like
    any outside network: that rule isolates Docker's bridges, not virbr0."""
    b = SnapshotBuilder()
    host = b.host()
    for name, address in {**BRIDGES, "virbr0": "192.168.122.1/24"}.items():
        b.bridge(host, name, address)
    b.sysctl(host, "net.ipv4.ip_forward", 1)
    b.chain(host, "filter", "FORWARD", "DROP")
    for chain in ("DOCKER", "DOCKER-USER", "DOCKER-INTERNAL"):
        b.chain(host, "filter", chain)
    for line in modern() + ["-A FORWARD -o virbr0 -j ACCEPT", "-A FORWARD -i virbr0 -j ACCEPT"]:
        b.iptables(host, "filter", line)
    assert run(rule, b.build()) == []
