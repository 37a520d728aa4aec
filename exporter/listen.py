"""Starting an aiohttp application on an address, with the connection limits a public endpoint needs.

A client that opens connections and never finishes a request (slowloris: headers trickled a byte at a
time, a TLS handshake left half done, an idle keep-alive) would otherwise hold memory and a file
descriptor for as long as it likes. Here every connection is bounded in time and in number:

* the TLS handshake, and the closing handshake, must finish within ``handshake_timeout``;
* a request's headers must be complete within ``idle_timeout`` of the connection opening or of the
  previous response (aiohttp closes a connection that waits longer for its next request);
* the body has its own deadline, enforced by the handler that reads it, and the rest of a body left unread
  is drained for at most ``lingering`` seconds;
* at most ``max_connections`` connections are open at once. At the cap a new connection is still served:
  room is made by closing the connection that has waited longest without a request in progress (an idle
  keep-alive, headers still trickling in, nothing sent at all), which is the one the idle timeout would
  close next anyway. A connection whose request is being handled is never closed for room; only while
  every connection is busy with a request is the new one closed at once. So clients that merely hold
  connections open cannot lock others out, and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

# Why a connection was closed to hold the cap: to make room (evicted_idle) or because none could be
# closed (refused_at_cap).
CapClosure = Literal["evicted_idle", "refused_at_cap"]


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection deadlines (seconds) and the most connections served at once."""

    handshake_timeout: float = 5.0
    idle_timeout: float = 15.0
    max_connections: int = 512
    max_header_bytes: int = 8190
    max_headers: int = 64
    lingering: float = 1.0


class _Refused(asyncio.Protocol):
    """Stands in for a request handler when every connection is busy at the cap: closes at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def _longest_idle(handlers: Iterable[RequestHandler]) -> RequestHandler | None:
    """The handler that has waited longest without a request in progress, if any; None if every one has
    a request queued, being handled or its response being written (or is closing already).

    One pass, run only at the cap: about 60 us for 512 connections, a few percent of what a TLS handshake
    costs the server. aiohttp has no public API for this: these are the fields its own idle timeout reads
    (``RequestHandler._process_keepalive``). A handler waiting on ``_waiter`` has no request in progress,
    and ``_next_keepalive_close_time`` is when the idle timeout will close it, so the earliest is the one
    idle longest."""
    chosen: RequestHandler | None = None
    earliest = math.inf
    for handler in handlers:
        waiter = handler._waiter
        if waiter is None or waiter.done():
            continue
        deadline = handler._next_keepalive_close_time
        if deadline >= earliest:
            continue
        transport = handler.transport
        if transport is not None and not transport.is_closing():
            chosen, earliest = handler, deadline
    return chosen


class _LimitedSite(web.TCPSite):
    """A TCPSite whose listening socket applies :class:`ConnectionLimits` (aiohttp's own site exposes
    neither the handshake timeout nor a connection cap)."""

    __slots__ = ("_at_cap", "_limits", "_on_cap_closure")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        limits: ConnectionLimits,
        ssl_context: ssl.SSLContext | None,
        on_cap_closure: Callable[[CapClosure], None] | None,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self._limits = limits
        self._at_cap = False
        self._on_cap_closure = on_cap_closure

    def _protocol(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        # Connections still in their TLS handshake are not counted: the handshake timeout bounds them.
        # Connections being closed are, until they are gone.
        connections = server.connections
        if len(connections) < self._limits.max_connections:
            self._at_cap = False
            return server()
        if not self._at_cap:  # logged once per episode, not once per new connection
            log.warning(
                "connection limit reached; closing the longest-idle connection for each new one, "
                "and new ones while every connection has a request in progress",
                extra={"site": self.name, "limit": self._limits.max_connections},
            )
        self._at_cap = True
        idle = _longest_idle(connections)
        if idle is None:
            self._count("refused_at_cap")
            return _Refused()
        assert idle.transport is not None  # checked by _longest_idle
        # Aborted, not closed gracefully: the room is needed now, and nothing is in flight to lose.
        idle.transport.abort()
        self._count("evicted_idle")
        return server()

    def _count(self, closure: CapClosure) -> None:
        if self._on_cap_closure is not None:
            self._on_cap_closure(closure)

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        tls = self._ssl_context is not None
        self._server = await loop.create_server(
            self._protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self._limits.handshake_timeout if tls else None,
            # A peer that never answers the closing handshake would otherwise hold its connection 30 s.
            ssl_shutdown_timeout=self._limits.handshake_timeout if tls else None,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    shutdown_timeout: float = 10.0,
    limits: ConnectionLimits | None = None,
    on_cap_closure: Callable[[CapClosure], None] | None = None,
) -> tuple[web.AppRunner, int]:
    """Listen on ``host:port``; ``await runner.cleanup()`` stops accepting and waits for in-flight requests
    up to ``shutdown_timeout`` seconds. ``on_cap_closure`` is told of every connection closed to hold the
    connection cap (for a metric)."""
    limits = limits or ConnectionLimits()
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=limits.idle_timeout,
        max_field_size=limits.max_header_bytes,
        max_line_size=limits.max_header_bytes,
        max_headers=limits.max_headers,
        # How long the rest of an unread body (after a 408/413/415) is drained before closing.
        lingering_time=limits.lingering,
        # Bodies are read as sent: the webhook refuses encoded bodies (415) instead of inflating them.
        auto_decompress=False,
    )
    await runner.setup()
    site = _LimitedSite(
        runner, host, port, limits=limits, ssl_context=ssl_context, on_cap_closure=on_cap_closure
    )
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    return runner, bound
