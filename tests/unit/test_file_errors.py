"""Errors about a file the user named quote what the user wrote, never the file's content.

`netdiag lab up /etc/shadow` once echoed the file's lines, password hashes included: PyYAML's
message prints the offending line and pydantic's names the unknown keys, which are the lines.
"""

import json

import pytest

from netdiag.cli import main
from netdiag.model.serialize import save
from tests.fixtures.scenarios import docker_host

SECRET = "FAKESECRETHASH0123"
SHADOW = (f"root:$6${SECRET}$abcdef:19000:0:99999:7:::\n"
          "daemon:*:19000:0:99999:7:::\n")

NOT_OURS = {
    "shadow": SHADOW,
    "shadow, second line secret": "daemon:*:19000:0:99999:7:::\n" + SHADOW,
    "env file": f"API_TOKEN={SECRET}\nDB_PASSWORD={SECRET}\n",
    "yaml with a secret alias": f"name: x\npassword: *{SECRET}\n",
    "yaml with a secret tag": f"name: x\npassword: !{SECRET} 1\n",
    "yaml with a secret key": f"name: x\n\"password {SECRET}\": 1\n",
    "broken yaml": f"name: x\n  token: [{SECRET}\n",
    "json with a secret": json.dumps({"password": SECRET}) + "\n",
    "private key": f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----\n",
}


@pytest.fixture
def faulty(tmp_path):
    path = tmp_path / "snapshot.json"
    save(docker_host().build(), path)
    return path


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", sorted(NOT_OURS))
def test_topology_errors_name_the_file_but_never_quote_it(capsys, tmp_path, case):
    path = tmp_path / "topology.yaml"
    path.write_text(NOT_OURS[case])
    code, out, err = run(capsys, "lab", "up", str(path))
    assert code == 2 and str(path) in err, err
    assert SECRET not in err + out, err


@pytest.mark.parametrize("case", sorted(NOT_OURS))
def test_config_errors_name_the_file_but_never_quote_it(capsys, tmp_path, faulty, case):
    path = tmp_path / "netdiag.yaml"
    path.write_text(NOT_OURS[case])
    code, out, err = run(capsys, "check", "--from", str(faulty), "--config", str(path))
    assert code == 2 and str(path) in err, err
    assert SECRET not in err + out, err


@pytest.mark.parametrize("case", sorted(NOT_OURS))
def test_snapshot_errors_name_the_file_but_never_quote_it(capsys, tmp_path, case):
    path = tmp_path / "snapshot.json"
    path.write_text(NOT_OURS[case])
    code, out, err = run(capsys, "check", "--from", str(path))
    assert code != 0 and str(path) in err, err
    assert SECRET not in err + out, err


def test_a_yaml_error_says_where_and_what_was_expected(capsys, tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text(f"name: x\nhosts: [{{name: {SECRET}\n")
    code, _, err = run(capsys, "lab", "up", str(path))
    assert code == 2 and SECRET not in err
    assert f"{path}:3:1: not valid YAML: while parsing a flow mapping, expected ',' or '}}'" \
        in err, err


def test_a_topology_key_of_a_topology_is_still_quoted(capsys, tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text("name: x\nnetwork: []\n")
    code, _, err = run(capsys, "lab", "up", str(path))
    assert code == 2 and f"{path}:2: network: Extra inputs are not permitted" in err, err
