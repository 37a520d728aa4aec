"""A bounded TTL cache with single-flight, for verification outcomes and tag->digest resolutions.

Verifying an image costs several registry round trips; a Deployment rollout sends one review per
ReplicaSet and Pod within milliseconds. Single-flight makes every concurrent request for one key wait on
the same computation, and the cache answers later ones without I/O. Entries expire after ``ttl`` seconds
(``negative_ttl`` for outcomes the caller marks negative, so a freshly signed image is picked up soon);
the least recently used entry is evicted when ``max_entries`` is reached.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

V = TypeVar("V")

Lookup = Literal["hit", "miss", "shared"]


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a failed computation's exception as seen: every caller may have stopped waiting (deadline
    passed), and asyncio would then log a traceback per task. Callers that do wait still get it raised."""
    if not task.cancelled():
        task.exception()


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class SingleFlightCache(Generic[V]):
    """``get_or_compute`` answers from the cache, joins a computation in flight, or starts one.

    Computations run as tasks owned by the cache, so a caller that stops waiting (its admission deadline
    passed) does not cancel the work other callers, and the cache, still want.
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        negative_ttl: float | None = None,
        is_negative: Callable[[V], bool] = lambda _value: False,
        should_cache: Callable[[V], bool] = lambda _value: True,
        clock: Callable[[], float] = time.monotonic,
        on_size_change: Callable[[int], None] = lambda _size: None,
    ) -> None:
        if max_entries < 1 or ttl <= 0:
            raise ValueError("cache needs max_entries >= 1 and ttl > 0")
        self._ttl = ttl
        self._negative_ttl = ttl if negative_ttl is None else negative_ttl
        self._max_entries = max_entries
        self._is_negative = is_negative
        self._should_cache = should_cache
        self._clock = clock
        self._on_size_change = on_size_change
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._in_flight: dict[Hashable, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: Hashable) -> V | None:
        """The cached value if present and fresh, without computing anything."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[key]
            self._on_size_change(len(self._entries))
            return None
        self._entries.move_to_end(key)
        return entry.value

    def lookup(
        self, key: Hashable, compute: Callable[[], Awaitable[V]]
    ) -> tuple[asyncio.Task[V] | V, Lookup]:
        """The cached value (``hit``), or the task computing it (``shared`` if running, else ``miss``)."""
        cached = self.peek(key)
        if cached is not None:
            return cached, "hit"
        task = self._in_flight.get(key)
        if task is not None:
            return task, "shared"
        task = asyncio.get_running_loop().create_task(self._compute(key, compute))
        task.add_done_callback(_retrieve)
        self._in_flight[key] = task
        return task, "miss"

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> tuple[V, Lookup]:
        """The value for ``key`` and how it was obtained; waiting can be bounded with asyncio.timeout."""
        found, how = self.lookup(key, compute)
        if isinstance(found, asyncio.Task):
            return await asyncio.shield(found), how
        return found, how

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await compute()
        finally:
            self._in_flight.pop(key, None)
        if self._should_cache(value):
            self._store(key, value)
        return value

    def _store(self, key: Hashable, value: V) -> None:
        ttl = self._negative_ttl if self._is_negative(value) else self._ttl
        self._entries[key] = _Entry(value, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        self._on_size_change(len(self._entries))

    async def close(self) -> None:
        """Cancel computations still running (at shutdown)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
