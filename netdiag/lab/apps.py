"""The small programs a lab runs inside its containers: the reference architecture's "pets" app.

    python -m netdiag.lab.apps web --port 80 --backend db:6379   HTTP front end; each GET
                                                                 increments a counter in db
    python -m netdiag.lab.apps kv --port 6379                    a key-value store speaking
                                                                 "INCR key" / "GET key" lines
    python -m netdiag.lab.apps echo --port 7                     TCP echo
    python -m netdiag.lab.apps udp-echo --port 7                 UDP echo
    python -m netdiag.lab.apps http --port 80                    HTTP server answering its name
    python -m netdiag.lab.apps sleep                             does nothing, forever

They use only the standard library and resolve names through the namespace's resolv.conf
(the lab starts them with `ip netns exec`, which puts /etc/netns/NAME/resolv.conf in place).
They listen on both families, as a server in a container usually does (one socket on `::`
that takes IPv4 too), so that a dual-stack network's IPv6 flows reach them; on IPv4 alone
where the namespace has no IPv6.
"""

from __future__ import annotations

import argparse
import signal
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BACKEND_TIMEOUT = 3.0


class _KvHandler(socketserver.StreamRequestHandler):
    counters: dict[str, int] = {}
    lock = threading.Lock()

    def handle(self) -> None:
        for raw in self.rfile:
            words = raw.decode(errors="replace").split()
            if len(words) != 2 or words[0].upper() not in ("INCR", "GET"):
                self.wfile.write(b"ERR expected INCR KEY or GET KEY\n")
                continue
            with self.lock:
                if words[0].upper() == "INCR":
                    self.counters[words[1]] = self.counters.get(words[1], 0) + 1
                value = self.counters.get(words[1], 0)
            self.wfile.write(f"{value}\n".encode())


class _EchoHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for raw in self.rfile:
            self.wfile.write(raw)


def _any_family() -> tuple[socket.AddressFamily, str]:
    """(family, address) of the wildcard to listen on: `::` where IPv6 is there, else IPv4."""
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return socket.AF_INET, "0.0.0.0"
    return socket.AF_INET6, "::"


class _DualStack:
    """A socketserver mix-in: the listening socket takes both families (an IPv6 wildcard
    socket with IPV6_V6ONLY off, whatever net.ipv6.bindv6only says)."""

    address_family, wildcard = _any_family()

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _TcpServer(_DualStack, socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class _HttpServer(_DualStack, ThreadingHTTPServer):
    allow_reuse_address = True


def _ask_backend(backend: str, line: str) -> str:
    host, _, port = backend.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=BACKEND_TIMEOUT) as conn:
        conn.sendall(line.encode() + b"\n")
        return conn.makefile().readline().strip()


def _http_handler(name: str, backend: str | None):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if backend:
                try:
                    visits = _ask_backend(backend, "INCR visits")
                    status, body = 200, f"pets: {visits} visits (counted by {backend})\n"
                except OSError as exc:
                    status, body = 502, f"pets: backend {backend} unreachable: {exc}\n"
            else:
                status, body = 200, f"{name}\n"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # keep the lab quiet
            pass

    return Handler


def _udp_echo(port: int) -> None:
    with socket.socket(_DualStack.address_family, socket.SOCK_DGRAM) as sock:
        if _DualStack.address_family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((_DualStack.wildcard, port))
        while True:
            data, peer = sock.recvfrom(65535)
            sock.sendto(data, peer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netdiag.lab.apps")
    parser.add_argument("app", choices=("web", "kv", "echo", "udp-echo", "http", "sleep"))
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--backend", help="NAME:PORT of the key-value store (web)")
    parser.add_argument("--name", default=socket.gethostname(), help="what http answers")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.app == "sleep":
        threading.Event().wait()
    elif args.app == "udp-echo":
        _udp_echo(args.port)
    elif args.app in ("web", "http"):
        _HttpServer((_DualStack.wildcard, args.port),
                    _http_handler(args.name, args.backend)).serve_forever()
    else:
        handler = _KvHandler if args.app == "kv" else _EchoHandler
        _TcpServer((_DualStack.wildcard, args.port), handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
