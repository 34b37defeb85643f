"""The process boundary of the `netdiag` command: what happens before and after `cli.main`.

A Ctrl-C can come at any moment, also while the modules are still being imported (the first
0.3 s), where no try block of cli.py is active yet: this module imports almost nothing itself
and catches it around the import too. At the end the process leaves with `os._exit` after
flushing its output: a collector thread abandoned at `--timeout` (stuck in a namespace, or on a
helper program) must not keep the process alive, as the interpreter's own exit would by joining
every worker thread.
"""

import os
import sys


def run() -> None:
    code = 130
    try:
        from netdiag.cli import main

        code = main()
    except KeyboardInterrupt:
        _say("netdiag: interrupted")
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    _leave(code)


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr)
    except (OSError, ValueError):
        pass


def _leave(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: `netdiag show | head`
            pass
    os._exit(code)
