"""The plugin's request handling without an engine (fixtures; tests/integration/
test_docker_plugin.py drives it from a real Docker engine): every malformed or unknown call
is answered with the error field libnetwork reads, and Docker's port maps are read as Docker
writes them."""

import pytest

from netdiag.drivers.plugin import BadRequest, Plugin, _port_bindings
from netdiag.store import SqliteStore
from netdiag.store.records import PortBinding


@pytest.fixture
def plugin(tmp_path):
    with SqliteStore(tmp_path / "p.db") as store:
        yield Plugin(store, "/run/netns/ndt-engine", "ndt-plug")


@pytest.mark.parametrize(("path", "body", "field", "text"), [
    ("/NetworkDriver.CreateNetwork", {}, "Err", "no NetworkID"),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "a" * 64, "IPv4Data": []}, "Err",
     "exactly one IPv4 pool"),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "a" * 64, "Options": {
        "com.docker.network.generic": {"netdiag.driver": "overlay"}}}, "Err",
     "the overlay driver is global-scoped; this plugin serves local networks (netdiag plugin "
     "serve --scope global)"),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "a" * 64, "Options": {
        "com.docker.network.generic": {"netdiag.driver": "host"}}}, "Err",
     "the host driver cannot be used by Docker yet (this plugin serves: bridge, macvlan, "
     "overlay)"),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "a" * 64, "Options": {
        "com.docker.network.generic": {"netdiag.driver": "nope"}}}, "Err",
     "unknown network driver 'nope'"),
    ("/NetworkDriver.Join", {"NetworkID": "b" * 64, "EndpointID": "c" * 64}, "Err",
     "not one of this plugin's"),
    ("/NetworkDriver.CreateEndpoint", {"NetworkID": 7}, "Err", "NetworkID must be a string"),
    ("/NetworkDriver.Nope", {}, "Err", "unknown call"),
    ("/IpamDriver.RequestAddress", {"PoolID": "nope"}, "Error", "pool nope not found"),
    ("/IpamDriver.RequestPool", {"V6": True}, "Error", "IPv6 pools are not supported"),
    ("/NetworkDriver.Join", None, "Err", "the body must be a JSON object"),
])
def test_bad_calls_get_the_error_field_libnetwork_reads(plugin, path, body, field, text):
    answer = plugin.handle(path, body)
    assert set(answer) == {field}, answer
    assert text in answer[field] and answer[field].startswith("ndt-plug: "), answer


def test_a_deleted_network_or_endpoint_that_is_unknown_is_no_error(plugin):
    # `docker network rm` must not be stuck on a network the plugin lost.
    assert plugin.handle("/NetworkDriver.DeleteNetwork", {"NetworkID": "d" * 64}) == {}
    assert plugin.handle("/NetworkDriver.DeleteEndpoint",
                         {"NetworkID": "d" * 64, "EndpointID": "e" * 64}) == {}


def test_dockers_port_map_is_read_as_docker_writes_it():
    portmap = [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080,
                "HostPortEnd": 8080},
               {"Proto": 17, "IP": "", "Port": 53, "HostIP": "127.0.0.1", "HostPort": 0}]
    assert _port_bindings(portmap) == (PortBinding(80, "tcp", 8080, ""),
                                       PortBinding(53, "udp", 0, "127.0.0.1"))
    assert _port_bindings(None) == ()
    with pytest.raises(BadRequest, match="unreadable port mapping"):
        _port_bindings([{"Proto": 132, "Port": 80}])  # SCTP: not served
