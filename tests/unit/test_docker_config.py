"""The daemon's effective network configuration: command line over daemon.json over defaults
(fixtures, no root)."""

from netdiag.collect import docker
from netdiag.docker_api import EngineAddress, find, socket_of
from netdiag.errors import UsageError
from netdiag.model.docker import DaemonConfig


def test_command_line_flags_and_daemon_json_keys():
    from_json = docker._from_json({"userland-proxy": False, "icc": False, "mtu": 1400,
                                   "bip": "10.200.0.1/24", "live-restore": True,
                                   "default-address-pools": [{"base": "10.10.0.0/16",
                                                              "size": 24}],
                                   "log-driver": "json-file"})
    assert from_json == {"userland_proxy": False, "icc": False, "mtu": 1400,
                         "bip": "10.200.0.1/24", "live_restore": True,
                         "default_address_pools": ("10.10.0.0/16/24",)}
    argv = ["dockerd", "--iptables=false", "--ip-masq=false", "--live-restore", "-b",
            "br0", "--default-address-pool", "base=10.20.0.0/16,size=26", "--mtu=1450"]
    assert docker._from_argv(argv) == {"iptables": False, "ip_masq": False,
                                       "live_restore": True, "bridge": "br0", "mtu": 1450,
                                       "default_address_pools": ("10.20.0.0/16/26",)}


def test_without_a_process_the_defaults_hold():
    config = docker.daemon_config(EngineAddress("/nonexistent.sock"))
    assert config == DaemonConfig()


def test_engine_urls():
    assert socket_of("unix:///run/x.sock") == "/run/x.sock"
    assert socket_of("/run/x.sock") == "/run/x.sock"
    for url in ("tcp://10.0.0.1:2375", "ssh://host"):
        try:
            socket_of(url)
        except UsageError as exc:
            assert "not on this host's namespaces" in str(exc)
        else:
            raise AssertionError(f"{url} accepted")
    assert find(["none"]) == []
    (named,) = find(["unix:///nonexistent/docker.sock"])
    assert named.socket == "/nonexistent/docker.sock" and named.pid == 0


def test_an_engine_that_does_not_answer_is_a_gap_not_an_error():
    intent = docker.read(["unix:///nonexistent/docker.sock"])
    assert intent.engines == ()
    (gap,) = intent.gaps
    assert gap.collector == "docker" and "unix:///nonexistent/docker.sock" in gap.message


def test_the_firewall_settings_of_docker_27_and_later():
    """ip6tables, firewall-backend, allow-direct-routing and ip-forward-no-drop, from either
    source; ip6tables unset stays unknown (its default depends on the version)."""
    assert docker._from_json({"ip6tables": False, "firewall-backend": "nftables",
                              "allow-direct-routing": True}) == {
        "ip6tables": False, "firewall_backend": "nftables", "allow_direct_routing": True}
    argv = ["dockerd", "--ip6tables", "--firewall-backend=iptables", "--ip-forward-no-drop"]
    assert docker._from_argv(argv) == {"ip6tables": True, "firewall_backend": "iptables",
                                       "ip_forward_no_drop": True}
    assert DaemonConfig().ip6tables is None
