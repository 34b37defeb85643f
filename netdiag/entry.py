"""The process boundary of the `netdiag` command: what happens before and after `cli.main`.

A Ctrl-C can come at any moment, also while the modules are still being imported (the first
0.3 s), where no try block of cli.py is active yet: this module imports almost nothing itself
and catches it around the import too. A process that inherits SIGINT ignored — any background
job of a non-interactive shell (`netdiag lab up ... &` in a script, a test runner started so)
— gets no KeyboardInterrupt from Python at all, which keeps an ignored SIGINT ignored: a
`lab up` told to stop would finish instead of rolling back. So the handler is put back first.
And a KeyboardInterrupt raised while the main thread runs a finaliser or a weakref callback
(a thread pool's own bookkeeping as the pool goes, at the end of every collection) would be
printed and dropped by Python, and the command would go on: netdiag raises it again at the
next call out of that callback, where it stops the command.
At the end the process leaves with `os._exit` after flushing its output: a collector thread
abandoned at `--timeout` (stuck in a namespace, or on a helper program) must not keep the
process alive, as the interpreter's own exit would by joining every worker thread.
"""

import os
import signal
import sys


def run() -> None:
    _keep_ctrl_c()
    code = 130
    try:
        from netdiag.cli import main

        code = main()
    except KeyboardInterrupt:
        _say("netdiag: interrupted")
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    _leave(code)


def _keep_ctrl_c() -> None:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.unraisablehook = _unraisable


def _unraisable(unraisable) -> None:
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        # Not from here (it would be dropped again): from the profile hook of this thread,
        # at its next call, which is out of the callback (or in the next one: then again).
        sys.setprofile(_interrupt)
        return
    sys.__unraisablehook__(unraisable)


def _interrupt(frame, event, arg) -> None:
    if frame.f_code is _unraisable.__code__:  # still leaving the hook
        return
    sys.setprofile(None)
    raise KeyboardInterrupt


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
        except KeyboardInterrupt:  # while the last output drains to a slow reader
            code = 130
    os._exit(code)
