"""The deployment files in image/ are linted: the Kubernetes manifests against Kubernetes's own
OpenAPI schemas (kubernetes-validate, strict: an unknown field is an error) and yamllint, and
every netdiag command line in them (DaemonSet args, the systemd unit's ExecStart) is one
netdiag's parser accepts — so a renamed option fails here, not on someone's cluster."""

from __future__ import annotations

import shlex
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from yamllint import config as yamllint_config
from yamllint import linter

from netdiag.cli import COMMANDS, build_parser

IMAGE = Path(__file__).resolve().parents[2] / "image"
MANIFESTS = sorted((IMAGE / "k8s").glob("*.yaml"))
KUBERNETES = "1.30.0"  # the oldest Kubernetes still supported when these were written
YAMLLINT = yamllint_config.YamlLintConfig(
    "extends: default\nrules: {line-length: {max: 100}, document-start: disable}\n")


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def netdiag_argv(container: dict) -> list[str]:
    """The netdiag command a container runs: its args (the image's entry point runs a netdiag
    command as such, a single argument as a shell line)."""
    args = container["args"]
    if len(args) == 1:  # "while true; do netdiag check ...; sleep 300; done"
        words = shlex.split(args[0].replace(";", " ; "))
        start = words.index("netdiag") + 1
        end = words.index(";", start)
        return words[start:end]
    return args


def parses(argv: list[str]) -> None:
    try:
        build_parser(argv[0]).parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"netdiag does not accept {' '.join(argv)!r} (exit {exc.code})")


def test_there_are_manifests():
    assert {p.name for p in MANIFESTS} >= {"daemonset.yaml", "agent-daemonset.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path):
    for doc in documents(path):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_schema_check_rejects_a_broken_manifest():
    daemonset = next(d for d in documents(IMAGE / "k8s" / "daemonset.yaml")
                     if d["kind"] == "DaemonSet")
    daemonset["spec"]["template"]["spec"]["hostPid"] = True  # the field is hostPID
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, KUBERNETES, strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_passes_yamllint(path):
    problems = list(linter.run(path.read_text(), YAMLLINT, str(path)))
    assert not problems, "\n".join(f"{path.name}:{p.line}: {p.message}" for p in problems)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_daemonset_runs_a_command_netdiag_accepts(path, monkeypatch):
    daemonsets = [d for d in documents(path) if d["kind"] == "DaemonSet"]
    assert daemonsets
    for daemonset in daemonsets:
        spec = daemonset["spec"]
        assert spec["selector"]["matchLabels"].items() <= \
            spec["template"]["metadata"]["labels"].items()
        pod = spec["template"]["spec"]
        assert pod["hostNetwork"] and pod["hostPID"]  # every pod's namespace is reachable
        for container in pod["containers"]:
            for variable in container.get("env", []):  # NETDIAG_ETCD stands in for --etcd
                monkeypatch.setenv(variable["name"], variable.get("value", "from-the-api"))
            parses([word.replace("$(NODE_NAME)", "node-1") for word in netdiag_argv(container)])


def test_systemd_unit_runs_a_command_netdiag_accepts(monkeypatch):
    monkeypatch.setenv("NETDIAG_ETCD", "http://10.0.0.5:2379")  # its EnvironmentFile's line
    for unit in (IMAGE / "systemd").glob("*.service"):
        exec_start = next(line.split("=", 1)[1] for line in unit.read_text().splitlines()
                          if line.startswith("ExecStart="))
        program, *argv = shlex.split(exec_start)
        assert program.endswith("/netdiag")
        parses(argv)


def test_the_image_entry_point_knows_every_netdiag_command():
    """`docker run IMAGE COMMAND` runs netdiag for each of netdiag's commands (a new command
    missing from the entry point's list would run as a shell line and fail)."""
    entrypoint = (IMAGE / "entrypoint.sh").read_text()
    case = next(line.strip() for line in entrypoint.splitlines()
                if line.strip().startswith("ns|"))
    assert set(COMMANDS) <= set(case.rstrip(")").split("|")), case
