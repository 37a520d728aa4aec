"""run_in_daemon_thread: the result or the exception reaches the awaiting task; a waiter that went away is
not an error when the thread finishes later."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from exporter.threads import run_in_daemon_thread


def _where() -> tuple[str, bool]:
    thread = threading.current_thread()
    return thread.name, thread.daemon


def _fail() -> None:
    raise ValueError("disk went away")


async def test_the_result_comes_back_from_a_named_daemon_thread() -> None:
    assert await run_in_daemon_thread(_where, name="trustwatch-test") == ("trustwatch-test", True)
    assert await run_in_daemon_thread(divmod, 7, 2) == (3, 1)


async def test_the_exception_is_raised_in_the_awaiting_task() -> None:
    with pytest.raises(ValueError, match="disk went away"):
        await run_in_daemon_thread(_fail)


async def test_a_result_after_the_waiter_was_cancelled_is_dropped_quietly() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    started, release = threading.Event(), threading.Event()

    def blocking() -> str:
        started.set()
        release.wait(10)
        return "too late"

    waiter = asyncio.create_task(run_in_daemon_thread(blocking, name="trustwatch-late"))
    assert await asyncio.to_thread(started.wait, 10)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    (thread,) = [t for t in threading.enumerate() if t.name == "trustwatch-late"]
    release.set()
    await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive()
    # The thread handed its result to the loop before it ended; a callback queued now runs after it.
    after = loop.create_future()
    loop.call_soon(after.set_result, None)
    await after
    assert errors == []
