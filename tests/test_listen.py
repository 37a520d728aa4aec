"""The connection cap of exporter.listen on a real TLS site: at the cap a new connection is still served by
closing the one that has waited longest without a request in progress (silent, trickling its headers, or
an idle keep-alive); a connection whose request is being handled is never closed for room, and only when
every connection is busy is the new one refused. Both outcomes are counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter import listen, service
from exporter.admission.tls import generate_self_signed
from exporter.listen import CapClosure, ConnectionLimits, start_site
from exporter.metrics import ServiceMetrics

CAP = 8
WITHIN = 10.0  # every wait below ends as soon as its condition holds; this only bounds a failure


@dataclass
class Blocker:
    """A handler the test holds inside its request until it sets ``release``."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    entered: int = 0

    async def handle(self, _request: web.Request) -> web.Response:
        self.entered += 1
        await self.release.wait()
        return web.Response(text="released")


@dataclass
class Listener:
    runner: web.AppRunner
    port: int
    client_context: ssl.SSLContext
    metrics: ServiceMetrics
    blocker: Blocker

    def open_connections(self) -> int:
        server = self.runner.server
        assert server is not None
        return len(server.connections)

    def closures(self, reason: CapClosure) -> float:
        labels = {"site": "test", "reason": reason}
        return self.metrics.registry.get_sample_value("trustwatch_http_connections_closed_total", labels) or 0

    async def connect(self) -> Client:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.client_context, server_hostname="localhost"
        )
        return Client(reader, writer)

    async def connected(self, count: int) -> list[Client]:
        """``count`` connections opened one after the other, each registered by the server before the next
        opens (so their order is the order the server saw them in)."""
        clients = []
        for _ in range(count):
            before = self.open_connections()
            clients.append(await self.connect())
            await until(lambda: self.open_connections() > before)  # noqa: B023 (awaited in the iteration)
        return clients


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def get(self, path: str = "/", *headers: str) -> bytes:
        """One GET on this connection; the status line and body of the answer."""
        extra = "".join(f"{header}\r\n" for header in headers)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        async with asyncio.timeout(WITHIN):
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            return head.split(b"\r\n")[0] + b" " + await self.reader.readexactly(length)

    async def closed_by_server(self) -> bool:
        """True once the server closes the connection (within the deadline) without sending anything."""
        try:
            async with asyncio.timeout(WITHIN):
                return await self.reader.read() == b""
        except (ConnectionError, ssl.SSLError):
            return True

    def close(self) -> None:
        self.writer.close()


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (checked every 10 ms) to hold, failing after WITHIN seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while not condition():
        assert loop.time() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serving(directory: Path, limits: ConnectionLimits) -> AsyncIterator[Listener]:
    """A TLS site with ``/`` (answers at once) and ``/block`` (answers when the test releases it)."""
    pair = generate_self_signed(directory, ("localhost",))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pair.cert_file, pair.key_file)
    metrics = ServiceMetrics(CollectorRegistry())
    blocker = Blocker()

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def count(reason: CapClosure) -> None:
        metrics.http_connections_closed.labels(site="test", reason=reason).inc()

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_get("/block", blocker.handle)
    runner, port = await start_site(
        app, "127.0.0.1", 0, ssl_context=server_context, limits=limits, on_cap_closure=count
    )
    client_context = ssl.create_default_context(cafile=str(pair.ca_file))
    try:
        yield Listener(runner, port, client_context, metrics, blocker)
    finally:
        blocker.release.set()
        await runner.cleanup()


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Listener]:
    async with serving(tmp_path, ConnectionLimits(max_connections=CAP)) as running:
        yield running


async def silent(_client: Client) -> None:
    """Sends nothing at all."""


async def trickling(client: Client) -> None:
    """Has sent a request line and one header, never the end of the headers (slowloris)."""
    client.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    await client.writer.drain()


async def kept_alive(client: Client) -> None:
    """Had one request answered and waits for its next."""
    assert await client.get() == b"HTTP/1.1 200 OK ok"


@pytest.mark.parametrize("make_idle", [silent, trickling, kept_alive], ids=lambda f: f.__name__)
async def test_at_the_cap_a_new_client_is_served_and_the_longest_idle_connection_closed(
    listener: Listener, make_idle: Callable[[Client], object], caplog: pytest.LogCaptureFixture
) -> None:
    held = await listener.connected(CAP)
    for client in held:
        await make_idle(client)  # type: ignore[misc]
    assert listener.open_connections() == CAP

    newcomer = await listener.connect()
    assert await newcomer.get() == b"HTTP/1.1 200 OK ok"
    assert await held[0].closed_by_server()
    assert listener.closures("evicted_idle") == 1
    assert listener.closures("refused_at_cap") == 0
    # The others were left alone: the next oldest still gets its request answered.
    if make_idle is trickling:
        held[1].writer.write(b"X-Slow: 1\r\n\r\n")
        async with asyncio.timeout(WITHIN):
            assert (await held[1].reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
    else:
        assert await held[1].get() == b"HTTP/1.1 200 OK ok"

    # Each further newcomer makes room the same way; the cap holds and the episode is logged once.
    newcomers = [newcomer]
    for _ in range(3):
        newcomers.append(await listener.connect())
        assert await newcomers[-1].get() == b"HTTP/1.1 200 OK ok"
    assert listener.closures("evicted_idle") == 4
    await until(lambda: listener.open_connections() == CAP)
    warnings = [record.message for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("connection limit reached"), warnings
    for client in (*held, *newcomers):
        client.close()


async def test_the_connection_closed_is_the_one_idle_longest_not_the_one_opened_first(
    listener: Listener,
) -> None:
    first, second, *rest = await listener.connected(CAP)
    assert await first.get() == b"HTTP/1.1 200 OK ok"  # first is now the most recently active
    newcomer = await listener.connect()
    assert await newcomer.get() == b"HTTP/1.1 200 OK ok"
    assert await second.closed_by_server()
    assert await first.get() == b"HTTP/1.1 200 OK ok"
    assert listener.closures("evicted_idle") == 1
    for client in (first, *rest, newcomer):
        client.close()


async def test_connections_with_a_request_in_progress_are_never_closed_for_room(listener: Listener) -> None:
    blocker = listener.blocker
    busy = await listener.connected(CAP - 1)
    answers = [asyncio.create_task(client.get("/block")) for client in busy]
    await until(lambda: blocker.entered == CAP - 1)
    (idle,) = await listener.connected(1)

    # At the cap with one idle connection: the newcomer is served and the idle one makes room.
    newcomer = await listener.connect()
    assert await newcomer.get("/", "Connection: close") == b"HTTP/1.1 200 OK ok"
    assert await idle.closed_by_server()
    await until(lambda: listener.open_connections() == CAP - 1)

    # The last free slot taken by one more request in progress: every connection is busy, so a newcomer
    # is refused, and none of the busy ones is touched.
    (last,) = await listener.connected(1)
    answers.append(asyncio.create_task(last.get("/block")))
    await until(lambda: blocker.entered == CAP)
    refused = await listener.connect()
    assert await refused.closed_by_server()
    assert listener.closures("refused_at_cap") == 1
    assert listener.closures("evicted_idle") == 1
    assert not any(answer.done() for answer in answers)

    blocker.release.set()
    assert await asyncio.gather(*answers) == [b"HTTP/1.1 200 OK released"] * CAP
    # Now idle again, they make room for the next newcomer.
    newcomer = await listener.connect()
    assert await newcomer.get() == b"HTTP/1.1 200 OK ok"
    assert listener.closures("evicted_idle") == 2
    assert listener.closures("refused_at_cap") == 1
    for client in (*busy, last, newcomer, refused):
        client.close()


async def test_trustwatch_serve_counts_cap_closures_per_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listeners of ``trustwatch serve`` report into trustwatch_http_connections_closed_total, labelled
    with their site: here the status server, on its own thread as serve runs it, its cap lowered to 2."""
    default_limits = listen.ConnectionLimits
    monkeypatch.setattr(listen, "ConnectionLimits", lambda: default_limits(max_connections=2))
    metrics = ServiceMetrics(CollectorRegistry())

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    listener, url = await service._listen(
        app, "127.0.0.1:0", "--metrics-address", 1.0, own_thread="test-status", site="status", metrics=metrics
    )
    port = int(url.rsplit(":", 1)[1])
    clients = []
    try:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            clients.append(Client(reader, writer))
            assert await clients[-1].get() == b"HTTP/1.1 200 OK ok"
        assert await clients[0].closed_by_server()
        labels = {"site": "status", "reason": "evicted_idle"}
        assert metrics.registry.get_sample_value("trustwatch_http_connections_closed_total", labels) == 1
    finally:
        for client in clients:
            client.close()
        await listener.cleanup()


async def test_a_peer_that_never_answers_the_closing_handshake_is_let_go(tmp_path: Path) -> None:
    """A connection closed by the server (here by the idle timeout) waits for the peer's TLS close_notify
    for the handshake timeout only (Python's default is 30 s), so it stops counting against the cap."""
    async with serving(tmp_path, ConnectionLimits(handshake_timeout=0.5, idle_timeout=0.5)) as running:
        (client,) = await running.connected(1)
        transport = client.writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # never reads, so never answers the server's close_notify
        await until(lambda: running.open_connections() == 0)  # WITHIN = 10 s; it takes 30 s without the bound
        client.close()
