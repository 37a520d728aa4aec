"""Starting an aiohttp application on an address, with the connection limits a public endpoint needs.

A client that opens connections and never finishes a request (slowloris: headers trickled a byte at a
time, a TLS handshake left half done, an idle keep-alive) would otherwise hold memory and a file
descriptor for as long as it likes. Here every connection is bounded in time and in number:

* the TLS handshake must finish within ``handshake_timeout``;
* a request's headers must be complete within ``idle_timeout`` of the connection opening or of the
  previous response (aiohttp closes a connection that waits longer for its next request);
* the body has its own deadline, enforced by the handler that reads it, and the rest of a body left unread
  is drained for at most ``lingering`` seconds;
* beyond ``max_connections`` open connections a new one is closed at once, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)


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
    """Stands in for a request handler when the connection cap is reached: closes at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _LimitedSite(web.TCPSite):
    """A TCPSite whose listening socket applies :class:`ConnectionLimits` (aiohttp's own site exposes
    neither the handshake timeout nor a connection cap)."""

    __slots__ = ("_at_cap", "_limits")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        limits: ConnectionLimits,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self._limits = limits
        self._at_cap = False

    def _protocol(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        # Connections still in their TLS handshake are not counted: the handshake timeout bounds them.
        if len(server.connections) >= self._limits.max_connections:
            if not self._at_cap:  # logged once per episode, not once per refused connection
                log.warning(
                    "connection limit reached; closing new connections",
                    extra={"site": self.name, "limit": self._limits.max_connections},
                )
            self._at_cap = True
            return _Refused()
        self._at_cap = False
        handler: RequestHandler = server()
        return handler

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self._limits.handshake_timeout if self._ssl_context else None,
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
) -> tuple[web.AppRunner, int]:
    """Listen on ``host:port``; ``await runner.cleanup()`` stops accepting and waits for in-flight requests
    up to ``shutdown_timeout`` seconds."""
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
    site = _LimitedSite(runner, host, port, limits, ssl_context)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    return runner, bound
