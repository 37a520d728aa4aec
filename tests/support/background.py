"""An asyncio loop on a background thread, for async servers that must keep serving while a test blocks.

Tests that drive a child process (``trustwatch serve``) wait synchronously; a fake API server living on the
test's own loop would stall meanwhile. Here it lives on its own loop::

    with BackgroundLoop() as background:
        server = background.enter(FakeKubeServer())      # awaits __aenter__ on the background loop
        background.call(server.put_object, report)       # runs a sync method on the loop thread
        background.run(server.wait_for(lambda: ...))     # awaits a coroutine there
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """A running event loop on a daemon thread; async context managers entered on it are exited at the end."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="test-background-loop", daemon=True
        )
        self._stack = contextlib.AsyncExitStack()

    def __enter__(self) -> BackgroundLoop:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.run(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Await ``coroutine`` on the background loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def enter(self, manager: contextlib.AbstractAsyncContextManager[T]) -> T:
        """Enter ``manager`` on the background loop; it is exited when this BackgroundLoop exits."""
        return self.run(self._stack.enter_async_context(manager))

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous ``function`` on the loop thread (where the server's state lives)."""

        async def invoke() -> T:
            return function(*args, **kwargs)

        return self.run(invoke())
