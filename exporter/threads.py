"""Blocking calls that may outlive their caller, run on daemon threads.

A Kubernetes watch blocks its thread for minutes. ``asyncio.to_thread`` would run it on the default
executor, whose threads ``asyncio.run`` joins at exit, so SIGTERM would wait for the watch to time out.
A daemon thread is simply abandoned at exit, and its result is delivered to the loop if anyone still waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _set_result(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # else the awaiting task was cancelled meanwhile
        future.set_result(result)


def _set_exception(future: asyncio.Future[T], error: BaseException) -> None:
    if not future.done():  # else the awaiting task was cancelled meanwhile
        future.set_exception(error)


async def run_in_daemon_thread(
    function: Callable[..., T], *args: Any, name: str = "trustwatch-blocking"
) -> T:
    """Run ``function(*args)`` on a new daemon thread and await its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def target() -> None:
        try:
            result = function(*args)
        except BaseException as exc:  # delivered to the awaiting task, not lost in the thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_set_exception, future, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_set_result, future, result)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future
