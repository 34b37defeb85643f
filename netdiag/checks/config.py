"""`check --config FILE`: a YAML file that tunes the rules for one site, read into CheckConfig.

    enable: [mtu-mismatch, link-down]      # only these (default: every rule)
    disable: [port-contention]
    severity: {missing-default-route: info}
    exclude:
      namespaces: ["ci-.*", "buildkit"]    # regexes, matched whole against label/name/container
      interfaces: ["veth.*"]               # regexes, matched whole against a finding's subject
    options: {overlapping-subnets.min-prefixlen: 8}
    expect:                                # flows that must (not) get through
      - {from: container:web, to: db, port: 5432}              # reach (the default)
      - {from: container:web, to: 10.0.0.9, port: 22, reach: false}

Every mistake (unknown key or rule, bad regex or severity) is one UsageError naming the file
and the key, so a typo never silently disables a check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from netdiag.errors import UsageError, is_plain_key, yaml_position, yaml_problem
from netdiag.findings.finding import Severity
from netdiag.findings.rule import CheckConfig, FlowExpectation

_KEYS = ("enable", "disable", "severity", "exclude", "options", "expect")
_EXPECT_KEYS = ("from", "to", "port", "proto", "reach")
_EXCLUDE_KEYS = ("namespaces", "interfaces")


def load(path: str | Path) -> CheckConfig:
    import yaml  # here, not at the top: `check` without --config should not pay for it

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}{yaml_position(exc)}: not valid YAML: "
                         f"{yaml_problem(exc)}") from None
    try:
        return parse(data or {})
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None


def parse(data: object) -> CheckConfig:
    """A CheckConfig from the file's parsed YAML."""
    if not isinstance(data, dict):
        raise UsageError("expected a mapping at the top level")
    _only(data, _KEYS, "")
    exclude = data.get("exclude") or {}
    if not isinstance(exclude, dict):
        raise UsageError("exclude: expected a mapping with namespaces and interfaces")
    _only(exclude, _EXCLUDE_KEYS, "exclude.")
    return CheckConfig(
        enabled=frozenset(_rule_names(data.get("enable"), "enable")),
        disabled=frozenset(_rule_names(data.get("disable"), "disable")),
        severity=_severities(data.get("severity")),
        exclude_namespaces=_patterns(exclude.get("namespaces"), "exclude.namespaces"),
        exclude_interfaces=_patterns(exclude.get("interfaces"), "exclude.interfaces"),
        options=_options(data.get("options")),
        expect=_expectations(data.get("expect")),
    )


def _expectations(value: object) -> tuple[FlowExpectation, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise UsageError("expect: expected a list of flows ({from, to, port, proto, reach})")
    found = []
    for number, item in enumerate(value, 1):
        where = f"expect[{number}]"
        if not isinstance(item, dict):
            raise UsageError(f"{where}: expected a mapping with from, to (port, proto, reach)")
        _only(item, _EXPECT_KEYS, f"{where}.")
        source, to = item.get("from"), item.get("to")
        if not isinstance(source, str) or not isinstance(to, str) or not source or not to:
            raise UsageError(f"{where}: from and to are required, as text")
        port = item.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise UsageError(f"{where}.port: expected a port number, 1 to 65535")
        proto = item.get("proto", "")
        if proto not in ("", "tcp", "udp", "icmp"):
            raise UsageError(f"{where}.proto: expected tcp, udp or icmp")
        if (proto in ("tcp", "udp") and not port) or (proto == "icmp" and port):
            raise UsageError(f"{where}: tcp and udp need a port, icmp has none")
        reach = item.get("reach", True)
        if not isinstance(reach, bool):
            raise UsageError(f"{where}.reach: expected true or false")
        found.append(FlowExpectation(source, to, port, proto, reach))
    return tuple(found)


def with_command_line(config: CheckConfig, rules: Sequence[str], skip: Sequence[str]
                      ) -> CheckConfig:
    """`--rule NAME` narrows the enabled rules further; `--skip NAME` disables more."""
    enabled = frozenset(_rule_names(rules, "--rule"))
    if enabled:
        enabled = enabled & config.enabled if config.enabled else enabled
        if not enabled:
            raise UsageError("--rule selects only rules the config file does not enable")
    return replace(config, enabled=enabled or config.enabled,
                   disabled=config.disabled | frozenset(_rule_names(skip, "--skip")))


def _only(mapping: dict, allowed: Iterable[str], prefix: str) -> None:
    for key in mapping:
        if key not in allowed:
            # A file that is not a config (a password file) has its lines for keys.
            shown = key if is_plain_key(key) else "<key>"
            raise UsageError(f"unknown key {prefix}{shown} (allowed: {', '.join(allowed)})")


def _list(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: expected a list of strings")
    return value


def _rule_names(value: object, where: str) -> list[str]:
    """Canonical rule names (codes are accepted too); an unknown name lists the known ones."""
    # Imported here: rules import `option` from this module, and the registry imports rules.
    from netdiag.checks import registry

    names = []
    for name in _list(value, where):
        try:
            names.append(registry.find(name).RULE.name)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
    return names


def _severities(value: object) -> tuple[tuple[str, Severity], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise UsageError("severity: expected a mapping of rule name to info, warning or error")
    result = []
    for name, level in value.items():
        (rule,) = _rule_names([str(name)], "severity")
        try:
            result.append((rule, Severity(level)))
        except ValueError:
            raise UsageError(f"severity.{name}: {level!r} is not info, warning or error") from None
    return tuple(result)


def _patterns(value: object, where: str) -> tuple[str, ...]:
    patterns = _list(value, where)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"{where}: bad regular expression {pattern!r}: {exc}") from None
    return tuple(patterns)


def _options(value: object) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise UsageError("options: expected a mapping")
    return tuple((str(k), str(v)) for k, v in value.items())
