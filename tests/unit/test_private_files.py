"""Every state file netdiag writes is root's only: 0600 files, 0700 folders, a 0600 plugin
socket — whatever the umask, and also when the file was there before with a wider mode."""

import os
import stat

import pytest

from netdiag import private_files
from netdiag.cli import main
from netdiag.drivers.plugin import _Handler, _Server
from netdiag.lab import teardown
from netdiag.lab.from_snapshot import write_topology
from netdiag.model.serialize import save
from netdiag.store import SqliteStore
from netdiag.store.records import Network, Scope
from netdiag.topology import journal
from tests.fixtures.scenarios import docker_host


@pytest.fixture(autouse=True)
def open_umask():
    """The widest umask: a mode that holds here was given at creation, not left to it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_snapshot_is_written_0600_also_over_a_wider_file(tmp_path):
    path = tmp_path / "snapshot.json"
    save(docker_host().build(), path)
    assert mode(path) == 0o600
    path.chmod(0o644)
    save(docker_host().build(), path)
    assert mode(path) == 0o600


def test_a_topology_from_a_snapshot_is_written_0600(tmp_path):
    path = tmp_path / "repro.yaml"
    write_topology(docker_host().build(), path)
    assert mode(path) == 0o600


def test_the_driver_store_its_wal_and_its_folders_are_root_only(tmp_path):
    path = tmp_path / "var" / "lib" / "netdiag" / "drivers.db"
    with SqliteStore(path) as store, store.transaction() as tx:
        tx.add_network(Network(id="n1" * 32, name="n1", driver="bridge", host="/proc/1/ns/net",
                               scope=Scope.LOCAL))
        written = sorted(p.name for p in path.parent.iterdir())
        modes = {p.name: mode(p) for p in path.parent.iterdir()}
    assert written[0] == "drivers.db" and len(written) >= 2, written  # the WAL files too
    assert set(modes.values()) == {0o600}, modes
    for folder in (tmp_path / "var", tmp_path / "var" / "lib", path.parent):
        assert mode(folder) == 0o700, folder


def test_an_existing_wider_store_file_is_narrowed(tmp_path):
    path = tmp_path / "drivers.db"
    path.touch(0o644)
    SqliteStore(path).close()
    assert mode(path) == 0o600


def test_a_lab_journal_and_the_lab_folder_are_root_only(tmp_path, monkeypatch):
    labs = tmp_path / "run" / "netdiag" / "labs"
    monkeypatch.setattr(journal, "LAB_DIR", labs)
    monkeypatch.setattr(teardown, "LAB_DIR", labs)
    with teardown.underlay_lock():
        pass
    journal.Journal(name="demo").save()
    assert mode(labs / "demo.json") == 0o600
    assert [p.name for p in labs.iterdir()] == ["demo.json"]  # no temporary file left
    for folder in (labs, labs.parent, labs.parent.parent):
        assert mode(folder) == 0o700, folder


def test_the_plugin_socket_is_root_only_before_anyone_can_connect(tmp_path):
    path = tmp_path / "plugins" / "ndt.sock"
    path.parent.mkdir()
    server = _Server(str(path), _Handler)
    try:
        assert stat.S_ISSOCK(os.lstat(path).st_mode) and mode(path) == 0o600
    finally:
        server.server_close()


def test_an_existing_folder_is_left_as_it_is_unless_it_is_netdiags_own(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(0o755)
    private_files.make_dir(shared / "netdiag")
    assert mode(shared) == 0o755 and mode(shared / "netdiag") == 0o700
    (shared / "netdiag").chmod(0o755)  # as an older netdiag made it
    private_files.make_dir(shared / "netdiag", own=True)
    assert mode(shared) == 0o755 and mode(shared / "netdiag") == 0o700


def test_an_existing_lab_folder_is_narrowed(tmp_path, monkeypatch):
    labs = tmp_path / "labs"
    labs.mkdir(0o755)
    monkeypatch.setattr(journal, "LAB_DIR", labs)
    journal.Journal(name="demo").save()
    assert mode(labs) == 0o700


def test_a_report_written_by_check_output_is_0600(tmp_path, capsys):
    snapshot, report = tmp_path / "snapshot.json", tmp_path / "report.json"
    save(docker_host().build(), snapshot)
    main(["check", "--from", str(snapshot), "--output", f"json={report}"])
    capsys.readouterr()
    assert mode(report) == 0o600 and report.read_text().startswith("{")
