"""`python -m netdiag` is the same as the `netdiag` command."""

from netdiag.entry import run

run()
