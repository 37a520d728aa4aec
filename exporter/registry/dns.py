"""Resolving registry hosts on threads of their own, with a deadline.

``getaddrinfo`` blocks; aiohttp's default resolver runs it on the event loop's default executor, which
the report writer, directory scans and policy reloads share. Images name registry hosts, and whoever
creates Pods chooses images: a few hundred hosts that never answer would hold every worker thread for
minutes. Here lookups run on a small pool of daemon threads used for nothing else (a stuck lookup never
delays shutdown), each lookup waits at most ``timeout`` seconds, and a lookup whose caller gave up while
it was queued is never started.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

DNS_THREADS = 4
DNS_TIMEOUT = 2.0

_Lookup = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]]


class _DaemonPool:
    """``size`` daemon threads running queued calls; results are delivered to the waiting future."""

    def __init__(self, size: int, name: str) -> None:
        self._queue: queue.SimpleQueue[_Lookup] = queue.SimpleQueue()
        for number in range(size):
            threading.Thread(target=self._work, name=f"{name}-{number}", daemon=True).start()

    def _work(self) -> None:
        while True:
            loop, future, call = self._queue.get()
            if future.done():  # the caller timed out while this waited in the queue
                continue
            try:
                outcome: tuple[Any, BaseException | None] = (call(), None)
            except BaseException as exc:  # delivered to the caller
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_deliver, future, outcome)

    async def run(self, call: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((loop, future, call))
        return await future


def _deliver(future: asyncio.Future[Any], outcome: tuple[Any, BaseException | None]) -> None:
    if future.done():
        return
    value, error = outcome
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class BoundedResolver(AbstractResolver):
    """aiohttp resolver: ``getaddrinfo`` on the dedicated pool, at most ``timeout`` seconds per lookup."""

    _pool: _DaemonPool | None = None
    _pool_lock = threading.Lock()

    def __init__(self, timeout: float = DNS_TIMEOUT) -> None:
        with BoundedResolver._pool_lock:  # one pool per process, however many clients
            if BoundedResolver._pool is None:
                BoundedResolver._pool = _DaemonPool(DNS_THREADS, "trustwatch-dns")
        # ThreadedResolver turns getaddrinfo's answer into aiohttp's records; only the call is replaced.
        self._threaded = ThreadedResolver(_PoolLoop(BoundedResolver._pool, timeout))  # type: ignore[arg-type]

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return await self._threaded.resolve(host, port, family)

    async def close(self) -> None:
        return None


class _PoolLoop:
    """The one event-loop method ThreadedResolver uses, ``getaddrinfo``, run on the pool with a timeout."""

    def __init__(self, pool: _DaemonPool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout

    async def getaddrinfo(self, host: str, port: int, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._pool.run(lambda: socket.getaddrinfo(host, port, **kwargs))
        except TimeoutError:
            raise socket.gaierror(
                socket.EAI_AGAIN, f"no DNS answer for {host} within {self._timeout:g}s"
            ) from None
