"""Serving the status endpoints from an event loop of their own, on a thread of their own.

The kubelet's probes and Prometheus's scrapes must be answered while the main loop is saturated by
admission traffic (a flood of large reviews keeps it busy for seconds at a time). Queued behind that work,
probes would time out, the kubelet would restart a pod that works, and monitoring would go blind exactly
during an attack. What the status endpoints read is safe to read from another thread: prometheus_client
metrics and the report store take their own locks, readiness checks read plain values, and the main
loop's own liveness is its heartbeat (:mod:`exporter.heartbeat`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web

from exporter.listen import CapClosure, start_site


class ThreadedServer:
    """One aiohttp application served by an event loop running on a daemon thread.

    :meth:`start` and :meth:`cleanup` are awaited from the main loop; everything of the application runs
    on the server's own loop.
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._runner: web.AppRunner | None = None

    async def start(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        shutdown_timeout: float,
        on_cap_closure: Callable[[CapClosure], None] | None = None,
    ) -> int:
        """Listen on ``host:port`` (errors such as an address in use are raised here); returns the port.
        ``on_cap_closure`` (see :func:`start_site`) is called on the server's thread."""
        self._thread.start()
        starting = asyncio.run_coroutine_threadsafe(
            start_site(app, host, port, shutdown_timeout=shutdown_timeout, on_cap_closure=on_cap_closure),
            self._loop,
        )
        try:
            runner, bound = await asyncio.wrap_future(starting)
        except BaseException:
            await self._stop_loop()
            raise
        self._runner = runner
        return bound

    async def cleanup(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the shutdown timeout), end the thread."""
        if self._runner is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop))
            self._runner = None
        await self._stop_loop()

    async def _stop_loop(self) -> None:
        if self._loop.is_closed():
            return
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._loop.shutdown_default_executor(), self._loop)
        )
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)
        self._loop.close()
