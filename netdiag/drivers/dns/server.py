"""One asyncio loop, in one thread, serving the embedded resolver of any number of sandboxes.

`attach` enters the sandbox's namespace in the calling thread just long enough to open a UDP
and a TCP socket on 127.0.0.11 (random ports) and install the NAT rules; the sockets stay bound
to that namespace, so the loop thread serves them from wherever it runs. Every query asks the
table source for the sandbox's current names, so endpoints joining or leaving are seen at once.
Names that are not local are forwarded from inside the sandbox by a small pool of worker threads
(forwarding blocks for up to 4 s per upstream and must not stall the loop). UDP is read with a
loop reader that drains the socket on each wake-up instead of asyncio's datagram transport,
which takes one datagram per loop turn — that alone doubles the queries per second.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dns.exception
import dns.message

from netdiag import netns
from netdiag.drivers.common.namespaces import namespace_path
from netdiag.drivers.dns import sandbox as sandbox_setup
from netdiag.drivers.dns.answer import fast_a_answer, local_answer, servfail, to_udp_wire
from netdiag.drivers.dns.forward import UPSTREAM_TIMEOUT, Upstream, forward
from netdiag.drivers.dns.records import NameTable, TableSource
from netdiag.errors import DriverError, NamespaceGone

log = logging.getLogger(__name__)
FORWARD_WORKERS = 8
TCP_BACKLOG = 128
DRAIN_LIMIT = 64  # datagrams handled per wake-up, so one busy sandbox cannot starve others
MAX_DATAGRAM = 4096


@dataclass(frozen=True, slots=True)
class ServedSandbox:
    """A sandbox being served: where, under which key its names are looked up, on which ports."""

    path: str  # the sandbox's namespace path
    key: str  # what the table source is asked with
    upstreams: tuple[Upstream, ...]
    udp_port: int
    tcp_port: int


@dataclass
class _Served:
    """The loop's handles for one sandbox (private, touched only on the loop thread)."""

    attachment: ServedSandbox
    udp: socket.socket | None = None
    tcp: asyncio.base_events.Server | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)


class EmbeddedDnsServer:
    """The resolver process: start it once, attach sandboxes, close it at the end."""

    def __init__(self, tables: TableSource, upstream_timeout: float = UPSTREAM_TIMEOUT):
        self._tables = tables
        self._timeout = upstream_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="netdiag-dns",
                                        daemon=True)
        self._pool = ThreadPoolExecutor(FORWARD_WORKERS, thread_name_prefix="netdiag-dns-fwd")
        self._served: dict[str, _Served] = {}
        self._thread.start()

    def __enter__(self) -> EmbeddedDnsServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- attaching sandboxes (any thread) ---------------------------------------------------

    def attach(self, path: str, upstreams: Sequence[Upstream] = (), key: str = "") -> ServedSandbox:
        """Serve 127.0.0.11 inside the sandbox at `path`; idempotent per path."""
        path = namespace_path(path)  # never the root namespace
        if path in self._served:
            self.detach(path)
        with netns.entered(path):
            sandbox_setup.loopback_up()
            udp, tcp = _open_sockets()
            try:
                attachment = ServedSandbox(path, key or path, tuple(upstreams),
                                        udp.getsockname()[1], tcp.getsockname()[1])
                sandbox_setup.install_nat(attachment.udp_port, attachment.tcp_port)
            except BaseException:
                udp.close()
                tcp.close()
                raise
        sandbox_setup.write_resolv_conf(path)
        served = _Served(attachment)
        self._served[path] = served
        asyncio.run_coroutine_threadsafe(self._start(served, udp, tcp), self._loop).result()
        return attachment

    def detach(self, path: str) -> None:
        """Stop serving the sandbox and remove its NAT rules and resolv.conf."""
        served = self._served.pop(path, None)
        if served is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(served), self._loop).result()
        try:
            with netns.entered(path):
                sandbox_setup.remove_nat()
        except NamespaceGone:
            pass  # the sandbox went first: nothing left in it to undo
        sandbox_setup.remove_resolv_conf(path)

    def attachments(self) -> tuple[ServedSandbox, ...]:
        return tuple(s.attachment for s in self._served.values())

    def close(self) -> None:
        for path in list(self._served):
            self.detach(path)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- the loop thread ------------------------------------------------------------------

    async def _start(self, served: _Served, udp: socket.socket, tcp: socket.socket) -> None:
        served.udp = udp
        self._loop.add_reader(udp, self._drain, served)
        served.tcp = await asyncio.start_server(
            lambda r, w: self._serve_tcp(served, r, w), sock=tcp)

    async def _stop(self, served: _Served) -> None:
        for task in list(served.tasks):
            task.cancel()
        if served.udp is not None:
            self._loop.remove_reader(served.udp)
            served.udp.close()
            served.udp = None
        if served.tcp is not None:
            served.tcp.close()
            await served.tcp.wait_closed()

    def _table(self, served: _Served) -> NameTable | None:
        try:
            return self._tables(served.attachment.key)
        except Exception:  # a broken table source must not take the resolver down
            log.exception("name table for %s failed", served.attachment.key)
            return None

    def _local(self, served: _Served, query: dns.message.Message,
               table: NameTable | None) -> dns.message.Message | None:
        return servfail(query) if table is None else local_answer(query, table)

    async def _forward(self, served: _Served, query: dns.message.Message,
                       tcp: bool) -> dns.message.Message:
        a = served.attachment
        if not a.upstreams:
            return servfail(query)
        return await self._loop.run_in_executor(self._pool, forward, query, a.upstreams, a.path,
                                                self._timeout, tcp)

    def _drain(self, served: _Served) -> None:
        # One table per wake-up: whatever was committed before the batch arrived is seen, and
        # a busy sandbox asks its table source once per batch rather than once per query.
        table = self._table(served)
        for _ in range(DRAIN_LIMIT):
            if served.udp is None:
                return
            try:
                data, addr = served.udp.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error queued for an earlier reply: go on
                continue
            self._on_datagram(served, data, addr, table)

    def _reply(self, served: _Served, wire: bytes, addr) -> None:
        if served.udp is None:
            return
        try:
            served.udp.sendto(wire, addr)
        except OSError:
            pass  # a full socket buffer or a vanished client: UDP clients ask again

    def _on_datagram(self, served: _Served, data: bytes, addr, table: NameTable | None) -> None:
        wire = fast_a_answer(data, table) if table is not None else None
        if wire is not None:
            self._reply(served, wire, addr)
            return
        query = _parse(data)
        if query is None:
            return
        # Not answered from the batch's table: it may predate a container that joined while
        # the batch was being served, so look at the live table before answering otherwise.
        response = self._local(served, query, self._table(served))
        if response is not None:  # local answers stay on the loop, without a task
            self._reply(served, to_udp_wire(response, query), addr)
            return
        task = self._loop.create_task(self._forward_udp(served, query, addr))
        served.tasks.add(task)
        task.add_done_callback(served.tasks.discard)

    async def _forward_udp(self, served: _Served, query: dns.message.Message, addr) -> None:
        response = await self._forward(served, query, tcp=False)
        self._reply(served, to_udp_wire(response, query), addr)

    async def _serve_tcp(self, served: _Served, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                query = _parse(await reader.readexactly(size))
                if query is None:
                    break
                response = self._local(served, query, self._table(served))
                if response is None:
                    response = await self._forward(served, query, tcp=True)
                wire = response.to_wire()
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _parse(data: bytes) -> dns.message.Message | None:
    try:
        return dns.message.from_wire(data)
    except dns.exception.DNSException:
        return None  # not DNS: drop it, as Docker does


def _open_sockets() -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on 127.0.0.11, random ports, in the calling thread's namespace."""
    host = sandbox_setup.RESOLVER_IP
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind((host, 0))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((host, 0))
        tcp.listen(TCP_BACKLOG)
    except OSError as exc:
        udp.close()
        tcp.close()
        raise DriverError(f"cannot listen on {host} in the sandbox: {exc.strerror}") from None
    udp.setblocking(False)
    tcp.setblocking(False)
    return udp, tcp
