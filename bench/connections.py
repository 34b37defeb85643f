"""Benchmark: what reading connections costs the sockets collector, on a namespace holding N.

Run by hand as root: `.venv/bin/python bench/connections.py [--n 2000]`.

Builds one namespace `ndb-<pid>-conn` with lo up and a Python process in it holding N TCP
connections over loopback (2N sockets: both ends are in the namespace) beside one listener,
then times, in this process, the sockets collector as it is (listeners and connections, the
connections bounded to CONNECTIONS_KEPT), and in the same run the baselines: the same
sock_diag dumps asking for the listening and unconnected sockets only (what the collector read
before connections were kept), and `ss -Htuna` through `ip netns exec`. It also times the one
scan of /proc that names the sockets' owners, and prints how big the namespace's state is
in a snapshot. Everything it made (the namespace, the process) is removed afterwards, also on
failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netdiag import netlink, netns  # noqa: E402
from netdiag.collect import Context, sockets  # noqa: E402
from netdiag.model import NamespaceRef, NamespaceState, NsKind  # noqa: E402
from netdiag.model.serialize import to_data  # noqa: E402

NAME = f"ndb-{os.getpid()}-conn"
ROUNDS = 20

HOLDER = textwrap.dedent("""
    import socket, sys, threading
    n = int(sys.argv[1])
    server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(4096)
    held = []
    def accept():
        while True:
            held.append(server.accept()[0])
    threading.Thread(target=accept, daemon=True).start()
    for _ in range(n):
        client = socket.create_connection(server.getsockname()); held.append(client)
    while len(held) < 2 * n:
        threading.Event().wait(0.01)
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes it
""")


def listening_only(ctx: Context) -> int:
    """The collector's dumps as they were before connections: listeners and unconnected UDP."""
    found = 0
    for protocol, ipproto, waiting, _name, _states in sockets._KINDS:
        for family, af in sockets._FAMILIES:
            answers = netlink.dump(netlink.NETLINK_SOCK_DIAG, sockets.SOCK_DIAG_BY_FAMILY,
                                   sockets._REQUEST.pack(af, ipproto, 0, 1 << waiting),
                                   f"{protocol}/IPv{family} sockets", ctx)
            found += len([sockets.parse_answer(body, protocol, family, "")
                          for _kind, body in answers])
    return found


def timed(what, rounds: int = ROUNDS) -> tuple[float, object]:
    start = time.perf_counter()
    for _ in range(rounds):
        result = what()
    return (time.perf_counter() - start) * 1000 / rounds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="connections to hold (default 2000)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it creates a namespace")
    holder = None
    try:
        netns.create_named(NAME)
        subprocess.run(["ip", "-n", NAME, "link", "set", "lo", "up"], check=True)
        holder = subprocess.Popen(["ip", "netns", "exec", NAME, sys.executable, "-c", HOLDER,
                                   str(args.n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        if holder.stdout.readline().strip() != "ready":
            raise SystemExit("the holder of the connections did not start")
        path = f"/run/netns/{NAME}"
        ref = NamespaceRef(id=os.stat(path).st_ino, kind=NsKind.NAMED, path=path, name=NAME)
        with netns.entered(path):
            ctx = Context(ref)
            try:
                now, found = timed(lambda: sockets.collect(ctx))
                before, _ = timed(lambda: listening_only(ctx))
            finally:
                ctx.close()
        state = NamespaceState(ref=ref, **found)
        owners, _ = timed(lambda: sockets.resolve_owners([state]), 3)
        owners_before, _ = timed(lambda: sockets.resolve_owners(
            [replace(state, connections=())]), 3)
        ss, _ = timed(lambda: subprocess.run(["ip", "netns", "exec", NAME, "ss", "-Htuna"],
                                             capture_output=True), 5)
        size = len(json.dumps(to_data(state), separators=(",", ":")))
        print(f"{args.n} connections over loopback ({2 * args.n} sockets), mean of {ROUNDS}:")
        print(f"  sockets collector, with connections      {now:8.2f} ms "
              f"({len(state.connections)} kept, omitted {dict(state.connections_omitted)})")
        print(f"  baseline: listening sockets only (before) {before:8.2f} ms")
        print(f"  baseline: ip netns exec ss -Htuna         {ss:8.2f} ms")
        print(f"  owners: one scan of /proc                 {owners:8.2f} ms")
        print(f"  baseline: the scan for the listener alone {owners_before:8.2f} ms")
        print(f"  the namespace's state in a snapshot       {size / 1024:8.1f} KiB")
    finally:
        if holder is not None:
            holder.stdin.close()
            holder.wait(timeout=10)
        if Path(f"/run/netns/{NAME}").exists():
            netns.delete_named(NAME)


if __name__ == "__main__":
    main()
