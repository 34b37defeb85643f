"""Helper programs started by netdiag/helper.py (no root needed)."""

import pytest

from netdiag import helper
from netdiag.errors import CollectError, PermissionDenied


def test_standard_output_is_returned_whole():
    assert helper.run(["sh", "-c", "printf 'a\\nb\\n'; echo ignored >&2"]) == "a\nb\n"
    big = helper.run(["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"])
    assert big == "x" * 300000


def test_a_failure_says_the_last_line_of_standard_error():
    with pytest.raises(CollectError, match=r"^sh: second$"):
        helper.run(["sh", "-c", "echo first >&2; echo second >&2; exit 3"])
    with pytest.raises(CollectError, match="exit code 4"):
        helper.run(["sh", "-c", "exit 4"])


def test_needing_root_is_permission_denied():
    with pytest.raises(PermissionDenied):
        helper.run(["sh", "-c", "echo 'iptables: Permission denied (you must be root)' >&2; "
                               "exit 4"])


def test_a_missing_program_and_a_slow_one():
    with pytest.raises(CollectError, match="no-such-netdiag-helper is not installed"):
        helper.run(["no-such-netdiag-helper"])
    with pytest.raises(CollectError, match="did not answer within 0.2 s"):
        helper.run(["sleep", "5"], timeout=0.2)


def test_the_program_gets_default_signal_handling():
    # Python ignores SIGPIPE; the helper must not inherit that
    ignored = int(helper.run(["sh", "-c", "grep SigIgn /proc/self/status"]).split()[1], 16)
    assert not ignored & 1 << (13 - 1)  # SIGPIPE is signal 13
