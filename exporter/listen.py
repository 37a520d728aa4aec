"""Starting an aiohttp application on an address, reporting the port actually bound (port 0 resolved)."""

from __future__ import annotations

import ssl

from aiohttp import web


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    shutdown_timeout: float = 10.0,
) -> tuple[web.AppRunner, int]:
    """Listen on ``host:port``; ``await runner.cleanup()`` stops accepting and waits for in-flight requests
    up to ``shutdown_timeout`` seconds."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    return runner, bound
